//! sremote-rest (work in progress)
