//! sremote-gateway (work in progress)
