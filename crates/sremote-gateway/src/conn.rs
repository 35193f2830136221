//! Connection limits, before any HTTP is parsed: a cap on open connections, and the stream
//! wrapper that lets the cap close a connection that has not sent anything.
//!
//! When the cap is reached, a new connection makes room by closing the *oldest connection
//! that has not sent a single byte* (an idle socket held open, the cheapest attack on a
//! server); if every connection has spoken, the new one is closed instead. Together with
//! a timeout for the first byte and hyper's header-read timeout (which also closes
//! keep-alive connections idle between requests) a flood of idle sockets can neither exhaust the open-files limit nor keep a
//! login out.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use axum_server::accept::Accept;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// One open connection, as the limiter sees it.
#[derive(Debug)]
struct Slot {
    accepted: Instant,
    /// Whether the peer has sent at least one byte.
    spoke: AtomicBool,
    /// Set by the limiter to close the connection; the reader sees end-of-file.
    evicted: AtomicBool,
    /// The task waiting to read, woken on eviction.
    waker: Mutex<Option<Waker>>,
}

impl Slot {
    fn evict(&self) {
        self.evicted.store(true, Ordering::SeqCst);
        let waker = self.waker.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

#[derive(Debug, Default)]
struct Registry {
    next: u64,
    live: HashMap<u64, Arc<Slot>>,
}

/// The cap on open connections, shared by every accepted connection.
#[derive(Debug)]
pub struct ConnLimiter {
    max: usize,
    /// A connection that sends no byte within this long is closed (hyper's header-read
    /// timer only starts with the first byte).
    silent_timeout: Duration,
    registry: Mutex<Registry>,
}

impl ConnLimiter {
    /// At most `max` connections open at once; one silent for `silent_timeout` is closed.
    pub fn new(max: usize, silent_timeout: Duration) -> Arc<ConnLimiter> {
        Arc::new(ConnLimiter {
            max: max.max(1),
            silent_timeout,
            registry: Mutex::new(Registry::default()),
        })
    }

    /// The configured cap.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.lock().live.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admit a new connection, closing the oldest silent one when full; `None` when full
    /// of connections that have all spoken.
    fn admit(self: &Arc<Self>) -> Option<ConnGuard> {
        let mut reg = self.lock();
        if reg.live.len() >= self.max {
            let victim = reg
                .live
                .iter()
                .filter(|(_, s)| !s.spoke.load(Ordering::SeqCst))
                .min_by_key(|(_, s)| s.accepted)
                .map(|(id, _)| *id)?;
            if let Some(slot) = reg.live.remove(&victim) {
                slot.evict();
            }
        }
        let id = reg.next;
        reg.next += 1;
        let slot = Arc::new(Slot {
            accepted: Instant::now(),
            spoke: AtomicBool::new(false),
            evicted: AtomicBool::new(false),
            waker: Mutex::new(None),
        });
        reg.live.insert(id, slot.clone());
        Some(ConnGuard {
            limiter: self.clone(),
            id,
            slot,
        })
    }
}

/// A connection's place under the cap, given back when the connection is dropped.
#[derive(Debug)]
struct ConnGuard {
    limiter: Arc<ConnLimiter>,
    id: u64,
    slot: Arc<Slot>,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.limiter.lock().live.remove(&self.id);
    }
}

/// A TCP stream counted by the [`ConnLimiter`]; reads end (EOF) once it is evicted.
#[derive(Debug)]
pub struct Tracked {
    inner: TcpStream,
    guard: ConnGuard,
    /// Until the first byte arrives: when the connection is closed for silence.
    silence: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let slot = self.guard.slot.clone();
        *slot.waker.lock().unwrap_or_else(|p| p.into_inner()) = Some(cx.waker().clone());
        if slot.evicted.load(Ordering::SeqCst) {
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(res, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            slot.spoke.store(true, Ordering::SeqCst);
            self.silence = None;
        }
        if res.is_pending()
            && let Some(silence) = self.silence.as_mut()
            && silence.as_mut().poll(cx).is_ready()
        {
            // Nothing sent within the timeout: end-of-file, and hyper closes.
            return Poll::Ready(Ok(()));
        }
        res
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// An acceptor that admits connections under the [`ConnLimiter`] (setting `TCP_NODELAY`),
/// then hands them to `inner` (TLS, or nothing).
#[derive(Debug, Clone)]
pub struct LimitAcceptor<A> {
    limiter: Arc<ConnLimiter>,
    inner: A,
}

impl<A> LimitAcceptor<A> {
    /// Admit under `limiter`, then accept with `inner`.
    pub fn new(limiter: Arc<ConnLimiter>, inner: A) -> Self {
        LimitAcceptor { limiter, inner }
    }
}

type AcceptFuture<T> = Pin<Box<dyn Future<Output = io::Result<T>> + Send>>;

impl<A, S> Accept<TcpStream, S> for LimitAcceptor<A>
where
    A: Accept<Tracked, S>,
    A::Future: Send + 'static,
    A::Stream: Send + 'static,
    A::Service: Send + 'static,
{
    type Stream = A::Stream;
    type Service = A::Service;
    type Future = AcceptFuture<(A::Stream, A::Service)>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let _ = stream.set_nodelay(true);
        match self.limiter.admit() {
            Some(guard) => {
                let silence = tokio::time::sleep(self.limiter.silent_timeout);
                let tracked = Tracked {
                    inner: stream,
                    guard,
                    silence: Some(Box::pin(silence)),
                };
                Box::pin(self.inner.accept(tracked, service))
            }
            // Dropping the stream closes it at once.
            None => Box::pin(std::future::ready(Err(io::Error::other(
                "connection limit reached",
            )))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_limiter_evicts_the_oldest_silent_connection_only() {
        let l = ConnLimiter::new(2, Duration::from_secs(1));
        let a = l.admit().expect("a");
        let b = l.admit().expect("b");
        b.slot.spoke.store(true, Ordering::SeqCst);
        let c = l.admit().expect("c evicts a");
        assert!(a.slot.evicted.load(Ordering::SeqCst));
        assert!(!b.slot.evicted.load(Ordering::SeqCst));
        assert_eq!(l.open(), 2);
        c.slot.spoke.store(true, Ordering::SeqCst);
        assert!(
            l.admit().is_none(),
            "everyone has spoken: the new one is refused"
        );
        drop(b);
        assert!(l.admit().is_some(), "room again");
        drop(a);
        assert_eq!(
            l.open(),
            1,
            "an evicted guard does not free someone else's slot"
        );
    }
}
