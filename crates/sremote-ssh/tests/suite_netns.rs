//! The shared connector test-suite against the network-namespace host, as an unprivileged
//! user (so that `push_unwritable_is_permission_denied` really runs). Skipped without root.
mod common;

use sremote_core::Connector;
use sremote_core::testsuite::Fixture;

async fn fixture() -> Fixture<common::Hosted<sremote_testkit::NetnsHost>> {
    let Some(connector) = common::netns().await else {
        panic!("network-namespace hosts are not available here (needs root and `ip netns`)");
    };
    Fixture {
        connector,
        scratch: sremote_testkit::unique_name("scratch"),
        unwritable: Some("/root".into()),
    }
}

sremote_core::connector_tests!(fixture);
