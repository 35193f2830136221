//! The shared connector test-suite against `LocalConnector`, with a throwaway home.
use sremote_core::LocalConnector;
use sremote_core::testsuite::Fixture;

async fn fixture() -> Fixture<LocalConnector> {
    let home = tempfile::Builder::new()
        .prefix("sremote-local-home-")
        .tempdir()
        .unwrap()
        .keep();
    Fixture {
        connector: LocalConnector::with_home(home),
        scratch: "scratch dir".to_string(),
        // Even root may not create files here.
        unwritable: Some("/sys/kernel".to_string()),
    }
}

sremote_core::connector_tests!(fixture);
