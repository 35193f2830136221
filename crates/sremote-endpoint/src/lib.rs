//! sremote-endpoint library (work in progress)
