//! [`DelayProxy`]: TCP forwarders on loopback that hold every byte back for a fixed time
//! in each direction (a slow network inside a test) and count the connections open.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::{Error, Sshd, failed, write};

/// One listening port per target on `127.0.0.1`, each forwarding to its target port on
/// `127.0.0.1` with `delay` added one way (so a round trip costs `2 × delay` more).
///
/// A connection counts as open from its accept until the *client* closes its side (the
/// server's answer may still be on its way): what a client bounded to N connections
/// controls. Threads (four per connection) end with their connections; the listeners
/// end when the proxy is dropped.
#[derive(Debug)]
pub struct DelayProxy {
    /// The listening ports, in the order of the targets given.
    pub ports: Vec<u16>,
    count: Arc<Count>,
    stop: Arc<AtomicBool>,
}

#[derive(Debug, Default)]
struct Count {
    open: AtomicUsize,
    peak: AtomicUsize,
    total: AtomicUsize,
}

impl Count {
    fn opened(&self) {
        let now = self.open.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        self.total.fetch_add(1, Ordering::SeqCst);
    }

    fn closed(&self) {
        self.open.fetch_sub(1, Ordering::SeqCst);
    }
}

impl DelayProxy {
    /// Start forwarding to each of `targets` (ports on `127.0.0.1`).
    pub fn start(targets: &[u16], delay: Duration) -> Result<DelayProxy, Error> {
        let count = Arc::new(Count::default());
        let stop = Arc::new(AtomicBool::new(false));
        let mut ports = Vec::new();
        for &target in targets {
            let l = TcpListener::bind("127.0.0.1:0")
                .map_err(|e| failed(format!("bind 127.0.0.1:0: {e}")))?;
            ports.push(l.local_addr().map_err(failed)?.port());
            let (count, stop) = (count.clone(), stop.clone());
            thread::spawn(move || serve(&l, target, delay, &count, &stop));
        }
        Ok(DelayProxy { ports, count, stop })
    }

    /// The most connections that were open at once so far.
    pub fn peak_open(&self) -> usize {
        self.count.peak.load(Ordering::SeqCst)
    }

    /// The connections open now.
    pub fn open_now(&self) -> usize {
        self.count.open.load(Ordering::SeqCst)
    }

    /// The connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.count.total.load(Ordering::SeqCst)
    }

    /// Write an ssh_config to `path` with host `alias` reaching `sshd` through the port at
    /// `index` in [`ports`](DelayProxy::ports): the sshd's user, key and known_hosts (its
    /// host key checked under the sshd's own address).
    pub fn ssh_config(
        &self,
        index: usize,
        sshd: &Sshd,
        alias: &str,
        path: &Path,
    ) -> Result<(), Error> {
        let config = format!(
            "Host {alias}\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n  IdentityFile {key}\n  \
             IdentitiesOnly yes\n  UserKnownHostsFile {kh}\n  HostKeyAlias [127.0.0.1]:{real}\n  \
             StrictHostKeyChecking yes\n  BatchMode yes\n  LogLevel ERROR\n",
            port = self.ports[index],
            user = sshd.user,
            key = sshd.client_key.display(),
            kh = sshd.known_hosts.display(),
            real = sshd.port,
        );
        write(path, &config, 0o644)
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake each accept() so its thread sees `stop`.
        for &p in &self.ports {
            let _ = TcpStream::connect(("127.0.0.1", p));
        }
    }
}

fn serve(l: &TcpListener, target: u16, delay: Duration, count: &Arc<Count>, stop: &AtomicBool) {
    for client in l.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
            continue;
        };
        let _ = (client.set_nodelay(true), server.set_nodelay(true));
        count.opened();
        let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
            count.closed();
            continue;
        };
        let up = count.clone();
        pump(client, s2, delay, Some(up));
        pump(server, c2, delay, None);
    }
}

/// Copy `from` to `to`, each chunk written `delay` after it was read; at the end of
/// `from`, shut `to` for writing (and note the connection closed when `closes` is given:
/// the client's side).
fn pump(mut from: TcpStream, to: TcpStream, delay: Duration, closes: Option<Arc<Count>>) {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx
                        .send((Instant::now() + delay, buf[..n].to_vec()))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
        if let Some(c) = closes {
            c.closed();
        }
    });
    thread::spawn(move || {
        let mut to = to;
        for (due, bytes) in rx {
            thread::sleep(due.saturating_duration_since(Instant::now()));
            if to.write_all(&bytes).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}
