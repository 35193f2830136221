//! # sremote-jobs
//!
//! Detached calls that survive the client and the connection, batches of them, and batch
//! systems (Slurm, SGE, PBS) — results are never lost.
//!
//! ```no_run
//! # async fn demo() -> Result<(), sremote_jobs::JobError> {
//! use std::time::Duration;
//! use sremote_core::{LocalConnector, RemoteClient};
//! use sremote_jobs::{JobsExt, Resources, Scheduler};
//!
//! let client = RemoteClient::new(LocalConnector::new());
//! // Detached on the host; a restarted program submitting the same call reattaches.
//! let job = client.submit(client.call::<()>("job", "run").arg(["sleep", "5"])).await?;
//! println!("job {} is {:?}", job.id(), job.status().await?.state);
//! let code: i32 = job.result().await?.value;
//!
//! // Through Slurm, with resources; the smallest fitting partition is chosen when a
//! // HostConfig lists them.
//! let resources = Resources { cores_per_node: Some(4), time: Some(Duration::from_secs(3600)), ..Default::default() };
//! let job = client
//!     .submit(client.call::<()>("subprocess", "run").arg(["hostname"]))
//!     .scheduler(Scheduler::Slurm)
//!     .resources(resources)
//!     .await?;
//!
//! // A batch: bounded concurrency, results in input order, every error reported.
//! let mut batch = client.map("os", "getenv", ["HOME", "USER"].map(|v| sremote_core::args![v])).concurrency(2);
//! let values: Vec<Option<String>> = batch.run().await?.into_values().map_err(|e| sremote_jobs::JobError::Usage(e.to_string()))?;
//! # let _ = (code, job, values); Ok(()) }
//! ```
//!
//! On the host a job is a directory `<sremote>/jobs/<id>/` (private) written by the
//! endpoint's `job` commands: the request, an atomically replaced `status.json`, the
//! live `log`, and `response.json`. The local [`JobStore`] (SQLite) remembers every job.
#![warn(missing_docs, missing_debug_implementations)]

mod batch;
mod error;
mod job;
mod remote;
pub mod sacct;
pub mod scheduler;
mod store;
mod submit;
pub mod units;

pub use batch::{Batch, BatchError, BatchResults};
pub use error::{FailureClass, JobError};
pub use job::{DEFAULT_GRACE, Job, JobStatus, LogChunk};
pub use scheduler::{HostConfig, Partition, Resources, Scheduler, choose_partition};
pub use store::{Claim, JobFilter, JobRecord, JobState, JobStore, Submitted};
pub use submit::{JobOptions, Submit, call_hash, new_job_id};

use sremote_core::{CallArgs, CallBuilder, Connector, RemoteClient};

/// Jobs for [`RemoteClient`]: `use sremote_jobs::JobsExt;` then `client.submit(call)`,
/// `client.map(…)`, `client.job(id)`.
pub trait JobsExt<C: Connector + 'static> {
    /// Submit `call` as a detached job (see [`Submit`] for scheduler, resources, files,
    /// `force`). If the same call (host, module, function, arguments, input files) was
    /// submitted before, the job is reattached instead.
    fn submit<T>(&self, call: CallBuilder<'_, C, T>) -> Submit<C>;

    /// `module.function` over every item of `items` (each an argument list), as jobs.
    fn map<I, A>(&self, module: &str, function: &str, items: I) -> Batch<C>
    where
        I: IntoIterator<Item = A>,
        A: Into<CallArgs>;

    /// The job `id` from `store` (default store when `None`).
    fn job(&self, id: &str, store: Option<&JobStore>) -> Result<Job<C>, JobError>;

    /// Decide partitions and such from the host: `sinfo` for Slurm; empty otherwise.
    fn discover_host_config(
        &self,
        scheduler: Scheduler,
    ) -> impl Future<Output = Result<HostConfig, JobError>> + Send;
}

impl<C: Connector + 'static> JobsExt<C> for RemoteClient<C> {
    fn submit<T>(&self, call: CallBuilder<'_, C, T>) -> Submit<C> {
        Submit {
            client: self.clone(),
            request: call.into_request(),
            files: Vec::new(),
            options: JobOptions::default(),
            batch: None,
            host_code: None,
        }
    }

    fn map<I, A>(&self, module: &str, function: &str, items: I) -> Batch<C>
    where
        I: IntoIterator<Item = A>,
        A: Into<CallArgs>,
    {
        Batch::new(self, module, function, items)
    }

    fn job(&self, id: &str, store: Option<&JobStore>) -> Result<Job<C>, JobError> {
        let store = match store {
            Some(s) => s.clone(),
            None => JobStore::open_default()?,
        };
        let record = store.get(id)?;
        Ok(Job::new(self.clone(), store, record, true))
    }

    async fn discover_host_config(&self, scheduler: Scheduler) -> Result<HostConfig, JobError> {
        if scheduler != Scheduler::Slurm {
            return Ok(HostConfig::default());
        }
        let argv: Vec<String> = ["sinfo", "-h", "-o", "%P %c %l %m %G"]
            .map(String::from)
            .to_vec();
        let out = remote::command(self, &argv, None, None).await?;
        if !out.success() {
            return Err(JobError::remote(
                self.host(),
                "list partitions with sinfo",
                out.stderr_text(),
                "name a partition yourself (Resources::partition, --partition)",
            ));
        }
        Ok(HostConfig {
            partitions: scheduler::parse_sinfo(&String::from_utf8_lossy(&out.stdout)),
            sge_pe: None,
        })
    }
}
