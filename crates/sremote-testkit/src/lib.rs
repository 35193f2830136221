//! sremote-testkit (work in progress)
