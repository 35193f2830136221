//! sremote-ssh (work in progress)
