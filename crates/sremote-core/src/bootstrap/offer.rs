//! A session start that finds no endpoint offers to install one in the same remote
//! program (`crate::trust::guarded`): it prints [`NEED`](super::NEED) and the bootstrap
//! probe, then waits for `LENGTH SHA256\n` and the binary on its stdin, puts it in place
//! and starts it. This module reads the offer, decides whether the client takes it, and
//! sends the binary: a fresh host's first call is then one remote program after the login,
//! where bootstrap takes three (the failed start, the install, the session).

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{EndpointArtifact, HostFacts, PROBE_END, older_endpoints, parse_offered_probe};
use crate::client::{RemoteClient, lock};
use crate::connector::Connector;

/// The most probe text an offer may carry (a `.location` file and many old endpoints fit
/// easily); more is not the offer this client's start prints.
const MOST: usize = 64 << 10;

/// Read the probe that follows [`NEED`](super::NEED) on a session start's stdout, up to
/// its end line: the host's facts. An error when the stream ends first, or the probe is
/// too long or has no OS and arch (not the offer of this client's start).
pub(crate) async fn read_offer(r: &mut (impl AsyncBufRead + Unpin)) -> io::Result<HostFacts> {
    // Bounded before reading: a line without an end never grows the buffer past MOST.
    let mut r = r.take(MOST as u64);
    let mut text = String::new();
    loop {
        let before = text.len();
        if r.read_line(&mut text).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the offer to install the endpoint ended early or is too long",
            ));
        }
        if text[before..].trim_end() == PROBE_END {
            break;
        }
    }
    parse_offered_probe(&text).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "the offer's probe names no OS and arch",
        )
    })
}

/// Take the offer: send `LENGTH SHA256\n` and the binary to the start's stdin.
pub(crate) async fn send(
    stdin: &mut (impl AsyncWrite + Unpin),
    artifact: &EndpointArtifact,
) -> io::Result<()> {
    let bytes = artifact.bytes();
    let header = format!("{} {}\n", bytes.len(), artifact.sha256);
    stdin.write_all(header.as_bytes()).await?;
    stdin.write_all(bytes).await?;
    stdin.flush().await
}

/// What the client sends for an offer, decided by [`RemoteClient::offer`]; `taken` is set
/// once it chose to send one (the install then happened if the session opens).
#[derive(Debug, Default)]
pub(crate) struct Decision {
    pub(crate) taken: AtomicBool,
}

impl<C: Connector> RemoteClient<C> {
    /// The endpoint to send when a session start for `endpoint` offers to install it on
    /// a host with `facts`; `None` declines (the start then exits 127 and the bootstrap
    /// that follows uses the facts). Taken only for a plain first install: automatic
    /// bootstrap on, the endpoint this client would install under that very path, no
    /// custom directories to record or make (`.location`, tmp dir), and no older
    /// endpoints for the full bootstrap to clean up.
    pub(crate) fn offer(
        &self,
        facts: &HostFacts,
        endpoint: &str,
        decision: &Decision,
    ) -> Option<EndpointArtifact> {
        let settings = lock(&self.inner.settings);
        let plain = settings.auto_bootstrap
            && settings.sremote_dir.is_none()
            && settings.tmp_dir.is_none()
            && facts.location.is_none()
            && older_endpoints(&facts.binaries).is_empty();
        if !plain {
            return None;
        }
        let source = settings.endpoint.clone();
        drop(settings);
        let state = lock(&self.inner.state);
        if state.discovered_dir.is_some() || state.discovered_tmp.is_some() {
            return None;
        }
        drop(state);
        let artifact = source.resolve(&facts.target(), self.host()).ok()?;
        let same_path = endpoint == format!("{}/bin/{}", self.sremote_dir(), artifact.install_name);
        let missing = facts.installed_sha256.as_deref() != Some(artifact.sha256.as_str());
        if !(same_path && missing) {
            return None;
        }
        decision.taken.store(true, Ordering::SeqCst);
        Some(artifact)
    }

    /// The offered install happened (the session it started opened): count it as a
    /// bootstrap (calls that failed before it need not bootstrap again).
    pub(crate) fn installed_by_offer(&self) {
        lock(&self.inner.state).generation += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An offer's probe is read up to its end line; a stream that ends first, or a line
    /// that never ends, is an error without buffering more than [`MOST`].
    #[tokio::test]
    async fn an_offer_is_read_to_its_end_line_and_no_further() {
        let offer = b"sremote-probe:os=Linux\nsremote-probe:arch=x86_64\nsremote-probe:end\nSRMT";
        let mut r = &offer[..];
        let facts = read_offer(&mut r).await.unwrap();
        assert_eq!(facts.target(), "linux-x86_64");
        assert_eq!(r, b"SRMT", "what follows the offer stays unread");
        let mut cut = &b"sremote-probe:os=Linux\n"[..];
        assert!(read_offer(&mut cut).await.is_err());
        let endless = vec![b'x'; 4 * MOST];
        let mut r = &endless[..];
        assert!(read_offer(&mut r).await.is_err());
        assert_eq!(r.len(), 3 * MOST, "read no more than the bound");
    }
}
