//! [`HostPool`]: the same work on many hosts at once, with bounded concurrency and one
//! result per host (a host that fails does not stop the others).

use std::future::Future;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{CallArgs, CallOutput, Connector, Error, RemoteClient};

/// What one host gave back.
#[derive(Debug)]
pub struct HostResult<T> {
    /// The host's name as its connector gives it.
    pub host: String,
    /// The call's result on that host.
    pub result: Result<T, Error>,
}

/// Clients for many hosts, used together.
///
/// ```no_run
/// # async fn demo() -> Result<(), sremote_core::Error> {
/// use sremote_core::{args, HostPool, LocalConnector, RemoteClient};
/// let pool = HostPool::new([RemoteClient::new(LocalConnector::new())]).parallel(8);
/// for r in pool.call_all::<String>("os", "getenv", args!["HOME"]).await {
///     match r.result {
///         Ok(out) => println!("{}: {}", r.host, out.value),
///         Err(e) => eprintln!("{}: {e}", r.host),
///     }
/// }
/// // Any work per host: each closure gets its host's client.
/// let cpus = pool.map(|c| async move { Ok(c.call::<u64>("os", "cpu_count").await?.value) }).await;
/// # let _ = cpus; Ok(()) }
/// ```
pub struct HostPool<C> {
    clients: Vec<RemoteClient<C>>,
    parallel: usize,
}

impl<C> Clone for HostPool<C> {
    fn clone(&self) -> Self {
        HostPool {
            clients: self.clients.clone(),
            parallel: self.parallel,
        }
    }
}

impl<C: Connector> std::fmt::Debug for HostPool<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hosts: Vec<&str> = self.clients.iter().map(|c| c.host()).collect();
        f.debug_struct("HostPool")
            .field("hosts", &hosts)
            .field("parallel", &self.parallel)
            .finish()
    }
}

impl<C: Connector + 'static> HostPool<C> {
    /// A pool of `clients` (e.g. `RemoteClient<Arc<dyn Connector>>` for mixed transports);
    /// by default at most 16 hosts are worked on at once.
    pub fn new(clients: impl IntoIterator<Item = RemoteClient<C>>) -> Self {
        HostPool {
            clients: clients.into_iter().collect(),
            parallel: 16,
        }
    }

    /// Work on at most `n` hosts at once (at least 1).
    pub fn parallel(mut self, n: usize) -> Self {
        self.parallel = n.max(1);
        self
    }

    /// The clients, in the order given.
    pub fn clients(&self) -> &[RemoteClient<C>] {
        &self.clients
    }

    /// Run `f` with each host's client; results in the order of the clients. A panic in
    /// `f` becomes that host's [`Error::Usage`].
    pub async fn map<T, F, Fut>(&self, f: F) -> Vec<HostResult<T>>
    where
        F: Fn(RemoteClient<C>) -> Fut,
        Fut: Future<Output = Result<T, Error>> + Send + 'static,
        T: Send + 'static,
    {
        let limit = Arc::new(tokio::sync::Semaphore::new(self.parallel));
        let mut tasks = tokio::task::JoinSet::new();
        for (i, client) in self.clients.iter().enumerate() {
            let fut = f(client.clone());
            let limit = limit.clone();
            tasks.spawn(async move {
                let _permit = limit.acquire_owned().await;
                let r = tokio::spawn(fut).await.unwrap_or_else(|e| {
                    Err(Error::Usage(format!(
                        "the work for this host panicked: {e}"
                    )))
                });
                (i, r)
            });
        }
        let mut out: Vec<Option<Result<T, Error>>> = self.clients.iter().map(|_| None).collect();
        while let Some(done) = tasks.join_next().await {
            if let Ok((i, r)) = done {
                out[i] = Some(r);
            }
        }
        self.clients
            .iter()
            .zip(out)
            .map(|(c, r)| HostResult {
                host: c.host().to_string(),
                result: r
                    .unwrap_or_else(|| Err(Error::Usage("the work for this host was lost".into()))),
            })
            .collect()
    }

    /// Call `module.function(*args)` on every host; one result per host, in order.
    pub async fn call_all<T>(
        &self,
        module: &str,
        function: &str,
        args: impl Into<CallArgs>,
    ) -> Vec<HostResult<CallOutput<T>>>
    where
        T: DeserializeOwned + Send + 'static,
    {
        let args: Result<Vec<Value>, String> = args.into().0;
        let (module, function) = (module.to_string(), function.to_string());
        self.map(move |client| {
            let (args, module, function) = (args.clone(), module.clone(), function.clone());
            async move {
                let args = args.map_err(|e| {
                    Error::Usage(format!(
                        "{module}.{function}: an argument cannot be sent: {e}"
                    ))
                })?;
                client.do_remote_call::<T>(&module, &function, args).await
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LocalConnector;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn results_per_host_in_order() {
        let mk = || RemoteClient::new(LocalConnector::new());
        let pool = HostPool::new([mk(), mk(), mk()]).parallel(2);
        let n = std::sync::atomic::AtomicUsize::new(0);
        let seen = Arc::new(n);
        let r = pool
            .map(move |_c| {
                let seen = seen.clone();
                async move {
                    let i = seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if i == 1 {
                        Err(Error::Usage("second fails".into()))
                    } else {
                        Ok(i)
                    }
                }
            })
            .await;
        assert_eq!(r.len(), 3);
        assert_eq!(r.iter().filter(|h| h.result.is_err()).count(), 1);
        assert!(r.iter().all(|h| h.host == "local"));
    }
}
