//! Turning what ssh says into typed [`ConnectorError`]s with a hint.

use sremote_core::{ConnectorError, ConnectorErrorKind as Kind};

/// Classify the log of a failed `ssh` master start.
pub(crate) fn connect_error(host: &str, text: &str) -> ConnectorError {
    let text = text.trim();
    let lower = text.to_ascii_lowercase();
    let (kind, hint) = if lower.contains("host key verification failed")
        || lower.contains("remote host identification has changed")
        || lower.contains("host key for") && lower.contains("has changed")
    {
        (
            Kind::HostKey,
            "the host's key is not the one in known_hosts (or is unknown under the strict policy): if the \
             host was really reinstalled, remove the old key with `ssh-keygen -R HOST` and connect again; \
             otherwise someone may be intercepting the connection",
        )
    } else if lower.contains("permission denied")
        || lower.contains("too many authentication failures")
    {
        (
            Kind::Auth,
            "check the user name and the key (SshConnector::builder().keyfile(..) or IdentityFile in \
             ~/.ssh/config), and that its public key is in ~/.ssh/authorized_keys on the host",
        )
    } else {
        (
            Kind::Connect,
            "check the host name and port, that sshd runs on the host, and that the network reaches it \
             (try `ssh -v` with the same destination)",
        )
    };
    let detail = if text.is_empty() {
        "ssh exited without a message".to_string()
    } else {
        text.to_string()
    };
    ConnectorError::new(kind, host, "connect")
        .detail(detail)
        .hint(hint)
}

pub(crate) fn disconnected(host: &str, action: &str) -> ConnectorError {
    ConnectorError::new(Kind::Disconnected, host, action)
        .detail("the SSH connection broke before the operation finished")
        .hint("check that the host is up and sshd runs; the next operation reconnects by itself")
}

/// Map an `openssh` error that happened while starting or talking to a remote process.
pub(crate) fn ssh_error(host: &str, action: &str, err: openssh::Error) -> ConnectorError {
    match err {
        openssh::Error::Disconnected => disconnected(host, action),
        openssh::Error::InvalidCommand => ConnectorError::new(Kind::InvalidInput, host, action)
            .detail("the command contains a NUL byte")
            .hint("remove the NUL byte"),
        other => {
            let mut detail = other.to_string();
            let mut source = std::error::Error::source(&other);
            while let Some(s) = source {
                detail.push_str(": ");
                detail.push_str(&s.to_string());
                source = s.source();
            }
            // Out of descriptors reads like a dead master ("multiplex server: Too many
            // open files"): it is not, and the fix is another.
            if crate::limits::out_of_files_text(&detail) {
                return crate::limits::out_of_files(host, action, &detail).with_source(other);
            }
            // A master connection that died under us shows up as a failure to reach the
            // multiplex socket, or a broken/reset stream: the connection is gone.
            let gone = [
                "multiplex server",
                "Broken pipe",
                "Connection reset",
                "unexpected end of file",
            ]
            .iter()
            .any(|m| detail.contains(m));
            if gone {
                return disconnected(host, action)
                    .detail(format!(
                        "the SSH connection broke before the operation finished ({detail})"
                    ))
                    .with_source(other);
            }
            ConnectorError::new(Kind::Other, host, action)
                .detail(detail)
                .with_source(other)
        }
    }
}

/// The server refused to open another channel (sshd `MaxSessions`): nothing was started.
pub(crate) fn is_refused(err: &openssh::Error) -> bool {
    std::error::Error::source(err).is_some_and(|s| s.to_string().contains("open refused"))
}

pub(crate) fn invalid(host: &str, action: &str, what: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::new(Kind::InvalidInput, host, action).detail(what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_ssh_messages() {
        let e = connect_error("u@h:22", "u@127.0.0.1: Permission denied (publickey).");
        assert_eq!(e.kind, Kind::Auth);
        assert!(
            e.to_string().contains("u@h:22")
                && e.to_string().contains("Permission denied (publickey)")
        );
        let banner = "@@@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n...\nHost key verification failed.";
        assert_eq!(connect_error("h", banner).kind, Kind::HostKey);
        assert_eq!(connect_error("h", "No ED25519 host key is known for x and you have requested strict checking.\r\nHost key verification failed.").kind, Kind::HostKey);
        assert_eq!(
            connect_error(
                "h",
                "ssh: connect to host 127.0.0.1 port 1: Connection refused"
            )
            .kind,
            Kind::Connect
        );
        assert_eq!(
            connect_error("h", "").detail,
            "ssh exited without a message"
        );
    }
}
