//! The shared connector test-suite against a real loopback sshd (as the current user).
mod common;

sremote_core::connector_tests!(common::loopback_fixture);
