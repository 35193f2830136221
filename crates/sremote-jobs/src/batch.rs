//! Batches: one function over many inputs, as jobs ([`Batch`]).

use std::fmt;

use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sremote_core::{CallArgs, CallOutput, Connector, Error, RemoteClient};

use crate::error::JobError;
use crate::scheduler::{HostConfig, Resources, Scheduler};
use crate::store::{Claim, JobRecord, JobStore, Submitted};
use crate::submit::{JobOptions, Submit, dispatch};

/// `module.function` over many argument lists, each a job: at most `concurrency` in
/// flight, results in input order, every item's error reported (not only the first).
/// Made by [`JobsExt::map`](crate::JobsExt::map).
///
/// Running a batch again (say, after the program restarted) reattaches to the jobs of
/// the same calls: items that succeeded are collected, not run again.
/// [`retry_failed`](Self::retry_failed) submits again the items whose last run failed.
pub struct Batch<C> {
    client: RemoteClient<C>,
    module: String,
    function: String,
    items: Vec<Result<Vec<Value>, String>>,
    options: JobOptions,
    concurrency: usize,
    id: String,
    failed: Vec<bool>,
}

impl<C: Connector> fmt::Debug for Batch<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch")
            .field("id", &self.id)
            .field("call", &format!("{}.{}", self.module, self.function))
            .field("items", &self.items.len())
            .field("concurrency", &self.concurrency)
            .finish()
    }
}

/// The outcome of every item of a batch, in input order.
#[derive(Debug)]
pub struct BatchResults<T> {
    /// One result per input item.
    pub results: Vec<Result<CallOutput<T>, JobError>>,
    /// The job id of each item (`None` if it could not be submitted).
    pub jobs: Vec<Option<String>>,
}

impl<T> BatchResults<T> {
    /// How many items succeeded.
    pub fn succeeded(&self) -> usize {
        self.results.iter().filter(|r| r.is_ok()).count()
    }

    /// The failed items: (input index, error).
    pub fn errors(&self) -> Vec<(usize, &JobError)> {
        self.results
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.as_ref().err().map(|e| (i, e)))
            .collect()
    }

    /// The values in input order, or every failure at once.
    pub fn into_values(self) -> Result<Vec<T>, BatchError> {
        let total = self.results.len();
        let mut values = Vec::with_capacity(total);
        let mut failures = Vec::new();
        for (i, r) in self.results.into_iter().enumerate() {
            match r {
                Ok(out) => values.push(out.value),
                Err(e) => failures.push((i, e)),
            }
        }
        if failures.is_empty() {
            Ok(values)
        } else {
            Err(BatchError { failures, total })
        }
    }
}

/// Items of a batch that failed, all of them.
#[derive(Debug, thiserror::Error)]
pub struct BatchError {
    /// (input index, error) of every failed item.
    pub failures: Vec<(usize, JobError)>,
    /// Items in the batch.
    pub total: usize,
}

impl fmt::Display for BatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} of {} items failed — fix them and call retry_failed():",
            self.failures.len(),
            self.total
        )?;
        for (i, e) in &self.failures {
            write!(f, "\n  item {i}: {e}")?;
        }
        Ok(())
    }
}

impl<C: Connector + 'static> Batch<C> {
    pub(crate) fn new<I, A>(
        client: &RemoteClient<C>,
        module: &str,
        function: &str,
        items: I,
    ) -> Self
    where
        I: IntoIterator<Item = A>,
        A: Into<CallArgs>,
    {
        let items: Vec<Result<Vec<Value>, String>> =
            items.into_iter().map(|a| a.into().0).collect();
        let mut h = Sha256::new();
        h.update(client.host().as_bytes());
        h.update([0]);
        h.update(module.as_bytes());
        h.update([0]);
        h.update(function.as_bytes());
        for item in &items {
            h.update([0]);
            h.update(format!("{item:?}").as_bytes());
        }
        let id = format!(
            "b{}",
            h.finalize()
                .iter()
                .take(8)
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        let n = items.len();
        Batch {
            client: client.clone(),
            module: module.to_string(),
            function: function.to_string(),
            items,
            options: JobOptions::default(),
            concurrency: 4,
            id,
            failed: vec![false; n],
        }
    }

    /// At most `n` items in flight (submitted and not finished) at once (default 4).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }
    /// Run every item under `scheduler`.
    pub fn scheduler(mut self, scheduler: Scheduler) -> Self {
        self.options.scheduler = scheduler;
        self
    }
    /// Ask the batch system for `resources` for every item.
    pub fn resources(mut self, resources: Resources) -> Self {
        self.options.resources = resources;
        self
    }
    /// The host's partitions.
    pub fn host_config(mut self, config: HostConfig) -> Self {
        self.options.host_config = config;
        self
    }
    /// Record the jobs in `store`.
    pub fn store(mut self, store: JobStore) -> Self {
        self.options.store = Some(store.clone());
        self
    }
    /// The batch's id (stable for the same host, call and inputs).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Submit (or reattach to) every item and collect the results, in input order.
    pub async fn run<T: DeserializeOwned + Send + 'static>(
        &mut self,
    ) -> Result<BatchResults<T>, JobError> {
        let force = vec![false; self.items.len()];
        self.go(force).await
    }

    /// Submit again the items that failed in the last [`run`](Self::run) (or retry), and
    /// collect every item's result again (those that succeeded are only collected).
    pub async fn retry_failed<T: DeserializeOwned + Send + 'static>(
        &mut self,
    ) -> Result<BatchResults<T>, JobError> {
        let force = self.failed.clone();
        self.go(force).await
    }

    async fn go<T: DeserializeOwned + Send + 'static>(
        &mut self,
        force: Vec<bool>,
    ) -> Result<BatchResults<T>, JobError> {
        let store = match &self.options.store {
            Some(s) => s.clone(),
            None => JobStore::open_default()?,
        };
        let mut options = self.options.clone();
        options.store = Some(store.clone());
        // One look at the host's code for every item (they call the same function).
        let probe = self
            .client
            .call::<Value>(&self.module, &self.function)
            .into_request()?;
        let host_code = crate::submit::host_code_id(&self.client, &probe).await?;
        let (writer, ops) = tokio::sync::mpsc::unbounded_channel();
        let shared = std::sync::Arc::new(Shared {
            client: self.client.clone(),
            module: self.module.clone(),
            function: self.function.clone(),
            batch: self.id.clone(),
            host_code,
            store: store.clone(),
            options,
            writer,
        });
        let work = self
            .items
            .iter()
            .cloned()
            .zip(force)
            .enumerate()
            .map(move |(i, (args, force))| run_item::<C, T>(shared.clone(), i, args, force));
        // The last item pulled drops the last writer: `group_commit` then ends.
        let items = futures_util::stream::iter(work)
            .buffer_unordered(self.concurrency)
            .collect::<Vec<_>>();
        let (mut done, ()) = futures_util::future::join(items, group_commit(&store, ops)).await;
        done.sort_by_key(|(i, _, _)| *i);
        let mut results = Vec::with_capacity(done.len());
        let mut jobs = Vec::with_capacity(done.len());
        for (i, id, r) in done {
            self.failed[i] = r.is_err();
            jobs.push(id);
            results.push(r);
        }
        Ok(BatchResults { results, jobs })
    }
}

/// What every item of one run of a batch shares. The items' futures and the stream that
/// makes them hold it: once the last is gone, so is the last writer of the group commit.
struct Shared<C> {
    client: RemoteClient<C>,
    module: String,
    function: String,
    /// The batch's id.
    batch: String,
    /// The host's code, looked at once for every item.
    host_code: Value,
    store: JobStore,
    options: JobOptions,
    writer: tokio::sync::mpsc::UnboundedSender<Op>,
}

/// Item `i` of a batch: submitted (or found already done, unless `force`), then its
/// result awaited. Returns `i`, the job's id when it got one, and the result.
async fn run_item<C: Connector + 'static, T: DeserializeOwned + Send + 'static>(
    s: std::sync::Arc<Shared<C>>,
    i: usize,
    args: Result<Vec<Value>, String>,
    force: bool,
) -> (usize, Option<String>, Result<CallOutput<T>, JobError>) {
    let mut options = s.options.clone();
    options.force = force;
    let (module, function) = (&s.module, &s.function);
    let request = match args {
        Ok(args) => s
            .client
            .call::<Value>(module, function)
            .args(args)
            .into_request(),
        Err(e) => Err(Error::Usage(format!(
            "item {i} of {module}.{function}: an argument cannot be sent: {e}"
        ))),
    };
    let submit = Submit {
        client: s.client.clone(),
        request,
        files: Vec::new(),
        options,
        batch: Some((s.batch.clone(), i as u64)),
        host_code: Some(s.host_code.clone()),
    };
    let submitted = async {
        let (client, files, options, fresh) = submit.prepare().await?;
        let claim = GroupWriter::ask(&s.writer, |reply| {
            Op::Claim(Box::new(fresh), options.force, reply)
        })
        .await?;
        let record = async |sub: Submitted| {
            GroupWriter::ask(&s.writer, |reply| Op::Submitted(sub, reply)).await
        };
        dispatch(client, &s.store, claim, &files, &options, record).await
    };
    let job = match submitted.await {
        Ok(job) => job,
        Err(e) => return (i, None, Err(e)),
    };
    let id = job.id();
    (i, Some(id), job.result::<T>().await)
}

/// A write the items of a batch ask for; [`group_commit`] does those waiting together in
/// one transaction.
enum Op {
    Claim(
        Box<JobRecord>,
        bool,
        tokio::sync::oneshot::Sender<Result<Claim, JobError>>,
    ),
    Submitted(
        Submitted,
        tokio::sync::oneshot::Sender<Result<(), JobError>>,
    ),
}

/// The items' side of [`group_commit`].
struct GroupWriter;

impl GroupWriter {
    async fn ask<T>(
        writer: &tokio::sync::mpsc::UnboundedSender<Op>,
        op: impl FnOnce(tokio::sync::oneshot::Sender<Result<T, JobError>>) -> Op,
    ) -> Result<T, JobError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let gone = || JobError::Usage("the batch's store writer stopped".into());
        writer.send(op(reply)).map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

/// Most writes in one transaction.
const GROUP: usize = 2000;

/// Record the batch's jobs: every write asked for while the last transaction ran goes into
/// the next one (claims, then submissions), so a batch of many quick items costs a few
/// transactions, not one per item and write. Ends when every item is done.
async fn group_commit(store: &JobStore, mut ops: tokio::sync::mpsc::UnboundedReceiver<Op>) {
    while let Some(first) = ops.recv().await {
        let mut group = vec![first];
        while group.len() < GROUP {
            match ops.try_recv() {
                Ok(op) => group.push(op),
                Err(_) => break,
            }
        }
        let (mut claims, mut claim_replies) = (Vec::new(), Vec::new());
        let (mut subs, mut sub_replies) = (Vec::new(), Vec::new());
        for op in group {
            match op {
                Op::Claim(rec, force, reply) => {
                    claims.push((*rec, force));
                    claim_replies.push(reply);
                }
                Op::Submitted(s, reply) => {
                    subs.push(s);
                    sub_replies.push(reply);
                }
            }
        }
        if !claims.is_empty() {
            match store.claim_many(&claims) {
                Ok(found) => {
                    for (reply, claim) in claim_replies.into_iter().zip(found) {
                        let _ = reply.send(Ok(claim));
                    }
                }
                Err(e) => claim_replies.into_iter().for_each(|r| {
                    let _ = r.send(Err(copy_error(&e)));
                }),
            }
        }
        if !subs.is_empty() {
            let done = store.set_submitted_many(&subs);
            for reply in sub_replies {
                let _ = reply.send(done.as_ref().map(|_| ()).map_err(copy_error));
            }
        }
    }
}

/// A store error for each of the items of a failed group write.
fn copy_error(e: &JobError) -> JobError {
    match e {
        JobError::Store {
            path,
            action,
            detail,
            hint,
        } => JobError::Store {
            path: path.clone(),
            action: action.clone(),
            detail: detail.clone(),
            hint: hint.clone(),
        },
        other => match other.hint() {
            Some(hint) => JobError::usage(other.message(), hint),
            None => JobError::Usage(other.message()),
        },
    }
}
