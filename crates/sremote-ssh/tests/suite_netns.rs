//! The shared connector test-suite against the network-namespace host, as an unprivileged
//! user (so that `push_unwritable_is_permission_denied` really runs). Where this machine
//! cannot make such a host (not root), the cases run against the loopback sshd instead.
mod common;

use sremote_core::Connector;
use sremote_core::testsuite::Fixture;

async fn fixture() -> Fixture<Box<dyn Connector>> {
    let scratch = sremote_testkit::unique_name("scratch");
    match common::netns().await {
        Some(host) => Fixture {
            connector: Box::new(host),
            scratch,
            unwritable: Some("/root".into()),
        },
        None => {
            eprintln!("(no network-namespace host here: this case runs against the loopback sshd)");
            Fixture {
                connector: Box::new(common::loopback().await),
                scratch,
                unwritable: None,
            }
        }
    }
}

sremote_core::connector_tests!(fixture);
