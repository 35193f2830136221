//! [`Job`]: a handle on a detached call.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_core::Stream;
use serde::de::DeserializeOwned;
use sremote_core::protocol::Response;
use sremote_core::{CallOutput, Connector, RemoteClient};

use crate::error::{FailureClass, JobError};
use crate::remote::{self, DirStatus};
use crate::scheduler::{Scheduler, SchedulerState};
use crate::store::{JobRecord, JobState, JobStore};
use sremote_core::protocol::job::{DiedReason, EXITED, SCHEDULER_OUT_FILE, State};

/// A job's state as last seen, with the details of a failure.
#[derive(Debug, Clone, PartialEq)]
pub struct JobStatus {
    /// Where the job is.
    pub state: JobState,
    /// Why it died (class and the runner's or the batch system's words).
    pub failure: Option<(FailureClass, String)>,
    /// What the batch system said (`PENDING (Priority)`, …), when asked.
    pub scheduler: Option<String>,
    /// Size of the job's log on the host, bytes.
    pub log_bytes: u64,
    /// The machine the job ran on (a compute node for batch jobs).
    pub ran_on: Option<String>,
}

/// A piece of a job's log: `data` is the log's bytes `offset..next`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogChunk {
    /// Where `data` starts in the log.
    pub offset: u64,
    /// The bytes.
    pub data: Vec<u8>,
    /// Where the next read starts (`offset + data.len()`): keep it to resume.
    pub next: u64,
}

/// A detached call on a host: follow it, cancel it, collect its result. Made by
/// [`JobsExt::submit`](crate::JobsExt::submit) or [`JobsExt::job`](crate::JobsExt::job).
/// Cheap to clone.
pub struct Job<C> {
    pub(crate) client: RemoteClient<C>,
    pub(crate) store: JobStore,
    pub(crate) record: Arc<Mutex<JobRecord>>,
    /// The job was found in the store (the same call was submitted before).
    pub(crate) reattached: bool,
}

/// How long a batch job killed without a word (its runner gone, no result) waits for the
/// batch system's accounting record, which names the cause (e.g. a time limit), before it
/// is settled as `vanished`: Grid Engine's `qacct` can lag the job's end by seconds.
const ACCOUNTING_LAG: Duration = Duration::from_secs(60);

/// Where [`Job::logs_follow`] is: the next byte, the back-off, when output or a
/// connection was last seen.
struct Cursor {
    next: u64,
    done: bool,
    idle: Duration,
    quiet_since: Instant,
    failing_since: Option<Instant>,
}

/// Whether the job's directory settles it (succeeded, failed or cancelled there): no need
/// to ask the batch system.
fn settled(d: &DirStatus) -> bool {
    matches!(
        d.status.state,
        State::Succeeded | State::Failed | State::Cancelled
    )
}

impl<C> Clone for Job<C> {
    fn clone(&self) -> Self {
        Job {
            client: self.client.clone(),
            store: self.store.clone(),
            record: self.record.clone(),
            reattached: self.reattached,
        }
    }
}

impl<C: Connector> std::fmt::Debug for Job<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = self.record();
        f.debug_struct("Job")
            .field("id", &r.id)
            .field("host", &r.host)
            .field("state", &r.state)
            .finish()
    }
}

/// Default time between SIGTERM and SIGKILL when a job is cancelled.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);

impl<C: Connector> Job<C> {
    pub(crate) fn new(
        client: RemoteClient<C>,
        store: JobStore,
        record: JobRecord,
        reattached: bool,
    ) -> Self {
        Job {
            client,
            store,
            record: Arc::new(Mutex::new(record)),
            reattached,
        }
    }

    /// The job id.
    pub fn id(&self) -> String {
        self.record().id
    }

    /// The store's record of the job, as last seen.
    pub fn record(&self) -> JobRecord {
        self.record
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether [`submit`](crate::JobsExt::submit) found this call already submitted and
    /// reattached instead of submitting it again.
    pub fn reattached(&self) -> bool {
        self.reattached
    }

    /// The client the job talks through.
    pub fn client(&self) -> &RemoteClient<C> {
        &self.client
    }

    fn host(&self) -> String {
        self.client.host().to_string()
    }

    fn refresh(&self) -> Result<JobRecord, JobError> {
        let fresh = self.store.get(&self.id())?;
        *self.record.lock().unwrap_or_else(|p| p.into_inner()) = fresh.clone();
        Ok(fresh)
    }

    fn dir(&self, rec: &JobRecord) -> Result<String, JobError> {
        rec.remote_dir.clone().ok_or_else(|| {
            JobError::Usage(format!(
                "job {} on {} is still being submitted (by this or another program); try again in a moment",
                rec.id, rec.host
            ))
        })
    }

    async fn dir_status(&self, dir: &str) -> Result<DirStatus, JobError> {
        let action = format!("read the status of job {}", self.id());
        let out =
            remote::endpoint(&self.client, &["job", "status", dir], None, &[], &action).await?;
        remote::parse_answer(&out.stdout, self.client.host(), &action)
    }

    /// Ask the host (and its batch system) where the job is. Terminal states are final and
    /// answered from the store without asking the host.
    pub async fn status(&self) -> Result<JobStatus, JobError> {
        let rec = self.refresh()?;
        let from_record = |rec: &JobRecord| JobStatus {
            state: rec.state,
            failure: rec
                .failure_class
                .map(|c| (c, rec.failure.clone().unwrap_or_default())),
            scheduler: None,
            log_bytes: 0,
            ran_on: None,
        };
        if rec.state.is_terminal() || rec.remote_dir.is_none() {
            return Ok(from_record(&rec));
        }
        let dir = self.dir(&rec)?;
        let mut d = self.dir_status(&dir).await?;
        let mut st = JobStatus {
            state: JobState::Queued,
            failure: None,
            scheduler: None,
            log_bytes: d.log_bytes,
            ran_on: d.status.host.clone(),
        };
        let settled_by_dir = settled(&d);
        match (rec.scheduler, rec.scheduler_id.as_deref()) {
            (Scheduler::Direct, _) | (_, None) => self.apply_dir(&mut st, &d),
            _ if settled_by_dir => self.apply_dir(&mut st, &d),
            (sched, Some(sid)) => {
                let ss = remote::scheduler_state(&self.client, sched, sid).await?;
                st.scheduler = Some(format!("{ss:?}"));
                match ss {
                    SchedulerState::Pending(_) => st.state = JobState::Queued,
                    SchedulerState::Running => st.state = JobState::Running,
                    finished => {
                        // The runner may have written its final state just now.
                        d = self.dir_status(&dir).await?;
                        st.log_bytes = d.log_bytes;
                        self.apply_batch_end(&mut st, &d, finished, sid);
                    }
                }
            }
        }
        if st.state != rec.state || st.state.is_terminal() {
            let failure = st.failure.as_ref().map(|(c, m)| (*c, m.as_str()));
            self.store.set_state(&rec.id, st.state, failure)?;
            self.refresh()?;
        }
        Ok(st)
    }

    /// A batch job the batch system no longer runs (`finished`: what it says, `d`: the
    /// job's directory read after it said so): settled by the dir when the runner wrote
    /// its end, else by the batch system's reason, else died (crashed, or lost).
    fn apply_batch_end(
        &self,
        st: &mut JobStatus,
        d: &DirStatus,
        finished: SchedulerState,
        sid: &str,
    ) {
        let died = |st: &mut JobStatus, why: (FailureClass, String)| {
            st.state = JobState::Died;
            st.failure = Some(why);
        };
        let over_in_dir = d.status.state == State::Died;
        match finished {
            _ if settled(d) => self.apply_dir(st, d),
            SchedulerState::Finished(Some((FailureClass::Cancelled, _))) if d.cancel_requested => {
                st.state = JobState::Cancelled
            }
            SchedulerState::Finished(Some(why)) => died(st, why),
            SchedulerState::Finished(None) if over_in_dir => died(st, remote::died(&d.status)),
            SchedulerState::Unknown
                if d.status.died_reason() == Some(DiedReason::Vanished)
                    && d.status.finished_unix_ms.is_some_and(|t| {
                        crate::store::now_ms().saturating_sub(t) < ACCOUNTING_LAG.as_millis() as u64
                    }) =>
            {
                // Killed without a word (a batch limit's SIGKILL), and the batch system
                // has not written its accounting record yet: not settled until it has, or
                // until ACCOUNTING_LAG passed.
                st.state = JobState::Running;
                st.scheduler = Some("finishing: waiting for the batch system's accounting".into());
            }
            SchedulerState::Finished(None) => died(
                st,
                (
                    FailureClass::Crashed,
                    format!(
                        "the batch job ended without writing a result (see {SCHEDULER_OUT_FILE} in \
                         the job dir)"
                    ),
                ),
            ),
            _ if over_in_dir => died(st, remote::died(&d.status)),
            _ => died(
                st,
                (
                    FailureClass::Lost,
                    format!("the batch system no longer knows job {sid} and it left no result"),
                ),
            ),
        }
    }

    fn apply_dir(&self, st: &mut JobStatus, d: &DirStatus) {
        let s = &d.status;
        st.state = s.state.into();
        if st.state == JobState::Died {
            st.failure = Some(remote::died(s));
        }
        if st.state == JobState::Failed {
            // The job's own error, kept in the store: `exited` (a program's exit code,
            // the end of its stderr) or the call's error kind and message.
            let class = match s.reason.as_deref() {
                Some(EXITED) => FailureClass::Exited,
                _ => FailureClass::Raised,
            };
            let text = match (s.reason.as_deref(), &s.message) {
                (Some(EXITED) | None, Some(m)) => m.clone(),
                (Some(kind), Some(m)) => format!("{kind}: {m}"),
                (_, None) => "the call failed".into(),
            };
            st.failure = Some((class, text));
        }
    }

    /// Wait until the job is over, at most `timeout` (`None`: as long as it takes).
    /// Polls the host with a growing interval (50 ms to 1 s); a dropped connection is
    /// retried. When time runs out the error is [`JobError::NotFinished`]; the job goes on.
    pub async fn wait(&self, timeout: Option<Duration>) -> Result<JobStatus, JobError> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(50);
        let mut failing_since: Option<Instant> = None;
        loop {
            match self.status().await {
                Ok(st) if st.state.is_terminal() => return Ok(st),
                Ok(st)
                    if st.state == JobState::Submitting
                        && self.record().updated_ms + 120_000 < crate::store::now_ms() =>
                {
                    let rec = self.record();
                    return Err(JobError::Usage(format!(
                        "job {} on {} was never fully submitted (its submitter stopped half-way); submit the \
                         same call again to take it over",
                        rec.id, rec.host
                    )));
                }
                Ok(st) => {
                    failing_since = None;
                    if let Some(t) = timeout
                        && started.elapsed() >= t
                    {
                        return Err(JobError::NotFinished {
                            id: self.id(),
                            host: self.host(),
                            state: st.state,
                            waited: crate::units::format_duration(started.elapsed()),
                        });
                    }
                }
                Err(e)
                    if remote::transient(&e)
                        && failing_since.is_none_or(|t| t.elapsed() < Duration::from_secs(120)) =>
                {
                    failing_since.get_or_insert_with(Instant::now);
                    tracing::info!(job = %self.id(), error = %e, "status failed; retrying");
                }
                Err(e) => return Err(e),
            }
            let left = timeout
                .map(|t| t.saturating_sub(started.elapsed()))
                .unwrap_or(pause);
            tokio::time::sleep(pause.min(left).max(Duration::from_millis(10))).await;
            pause = (pause * 3 / 2).min(Duration::from_secs(1));
        }
    }

    /// Wait for the job, then its value: the call's own error if it failed (a program
    /// job that exited non-zero: kind `Raised`, `data.exit_code`, its output in the
    /// error), [`JobError::Died`] or [`JobError::Cancelled`] if it ended without a result.
    /// The value comes with everything the job printed (`stdout`, `stderr`).
    pub async fn result<T: DeserializeOwned>(&self) -> Result<CallOutput<T>, JobError> {
        self.result_within(None).await
    }

    /// [`result`](Self::result), waiting at most `timeout` for the job to end (`None`: as
    /// long as it takes); then [`JobError::NotFinished`], and the job goes on.
    pub async fn result_within<T: DeserializeOwned>(
        &self,
        timeout: Option<Duration>,
    ) -> Result<CallOutput<T>, JobError> {
        let started = Instant::now();
        let st = self.wait(timeout).await?;
        let rec = self.record();
        match st.state {
            JobState::Succeeded | JobState::Failed => {
                let dir = self.dir(&rec)?;
                let action = format!("collect the result of job {}", rec.id);
                let out =
                    remote::endpoint(&self.client, &["job", "result", &dir], None, &[], &action)
                        .await?;
                let response = Response::parse(&out.stdout).map_err(|e| {
                    JobError::remote(
                        &rec.host,
                        &action,
                        e,
                        "the job's response.json is damaged; submit it again (force)",
                    )
                })?;
                Ok(self
                    .client
                    .decode_response(response, &rec.request, started.elapsed())?)
            }
            JobState::Cancelled => Err(JobError::Cancelled {
                id: rec.id,
                host: rec.host,
            }),
            _ => {
                let (class, reason) = st
                    .failure
                    .unwrap_or((FailureClass::Other, "no reason given".into()));
                Err(JobError::Died {
                    id: rec.id,
                    host: rec.host,
                    class,
                    reason,
                })
            }
        }
    }

    /// The log from byte `from` on (at most 4 MiB per call; call again from `next`).
    pub async fn logs(&self, from: u64) -> Result<LogChunk, JobError> {
        let rec = self.record();
        let dir = self.dir(&rec)?;
        let from_s = from.to_string();
        let action = format!("read the log of job {}", rec.id);
        let out = remote::endpoint(
            &self.client,
            &["job", "log", &dir, "--from", &from_s],
            None,
            &[],
            &action,
        )
        .await?;
        let next = from + out.stdout.len() as u64;
        Ok(LogChunk {
            offset: from,
            data: out.stdout,
            next,
        })
    }

    /// One poll: the directory status and the log bytes from `from`.
    async fn poll(&self, dir: &str, from: u64) -> Result<(DirStatus, LogChunk), JobError> {
        let from_s = from.to_string();
        let action = format!("follow the log of job {}", self.id());
        let out = remote::endpoint(
            &self.client,
            &["job", "poll", dir, "--from", &from_s],
            None,
            &[],
            &action,
        )
        .await?;
        let split = out
            .stdout
            .iter()
            .position(|&b| b == b'\n')
            .unwrap_or(out.stdout.len());
        let status: DirStatus = remote::parse_answer(&out.stdout[..split], &self.host(), &action)?;
        let data = out.stdout.get(split + 1..).unwrap_or_default().to_vec();
        let sent = status.log_sent.unwrap_or(0);
        if data.len() as u64 != sent {
            // A cut connection: retried by the follower from the same offset.
            return Err(JobError::Call(sremote_core::Error::Transport(
                sremote_core::ConnectorError::new(
                    sremote_core::ConnectorErrorKind::Disconnected,
                    self.host(),
                    action,
                )
                .detail(format!("expected {sent} log bytes, got {}", data.len())),
            )));
        }
        let next = from + data.len() as u64;
        Ok((
            status,
            LogChunk {
                offset: from,
                data,
                next,
            },
        ))
    }

    /// Whether following the log can stop: the job is over and every byte of its log was
    /// sent. A batch job killed hard never says so in its dir: after 2 s without output the
    /// batch system is asked (through [`status`](Self::status)).
    async fn log_over(&self, cur: &mut Cursor, polled: &DirStatus) -> Result<bool, JobError> {
        if polled.status.state.is_terminal() && cur.next >= polled.log_bytes {
            return Ok(true);
        }
        if cur.quiet_since.elapsed() <= Duration::from_secs(2) {
            return Ok(false);
        }
        cur.quiet_since = Instant::now();
        match self.status().await {
            Ok(st) if st.state.is_terminal() => Ok(cur.next >= st.log_bytes.max(polled.log_bytes)),
            Ok(_) => Ok(false),
            Err(e) if remote::transient(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Follow the log from byte `from` until the job is over: a stream of chunks, each
    /// starting where the previous ended. A dropped connection is retried (for up to two
    /// minutes) from the last byte received, so nothing is lost or repeated; the stream
    /// ends after the last byte of a finished job.
    pub fn logs_follow(
        &self,
        from: u64,
    ) -> impl Stream<Item = Result<LogChunk, JobError>> + Send + '_
    where
        C: 'static,
    {
        let start = Cursor {
            next: from,
            done: false,
            idle: Duration::from_millis(50),
            quiet_since: Instant::now(),
            failing_since: None,
        };
        futures_util::stream::unfold(start, move |mut cur| async move {
            if cur.done {
                return None;
            }
            loop {
                let dir = match self.refresh().and_then(|rec| self.dir(&rec)) {
                    Ok(d) => d,
                    Err(e) => {
                        cur.done = true;
                        return Some((Err(e), cur));
                    }
                };
                match self.poll(&dir, cur.next).await {
                    Ok((status, chunk)) => {
                        cur.failing_since = None;
                        if !chunk.data.is_empty() {
                            cur.next = chunk.next;
                            cur.idle = Duration::from_millis(50);
                            cur.quiet_since = Instant::now();
                            return Some((Ok(chunk), cur));
                        }
                        match self.log_over(&mut cur, &status).await {
                            Ok(true) => return None,
                            Ok(false) => {}
                            Err(e) => {
                                cur.done = true;
                                return Some((Err(e), cur));
                            }
                        }
                        tokio::time::sleep(cur.idle).await;
                        cur.idle = (cur.idle * 3 / 2).min(Duration::from_millis(500));
                    }
                    Err(e) if remote::transient(&e) => {
                        let since = *cur.failing_since.get_or_insert_with(Instant::now);
                        if since.elapsed() > Duration::from_secs(120) {
                            cur.done = true;
                            return Some((Err(e), cur));
                        }
                        tracing::info!(job = %self.id(), error = %e, "log follow interrupted; retrying");
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                    Err(e) => {
                        cur.done = true;
                        return Some((Err(e), cur));
                    }
                }
            }
        })
    }

    /// Cancel the job, in this order: SIGTERM to everything it started, SIGKILL after
    /// [`DEFAULT_GRACE`], then the batch system's cancel (`scancel`, `qdel`) so that its
    /// accounting says cancelled; then wait until it is over. A finished job is left as it
    /// is.
    pub async fn cancel(&self) -> Result<JobStatus, JobError> {
        self.cancel_with_grace(DEFAULT_GRACE).await
    }

    /// [`cancel`](Self::cancel) with another grace period.
    ///
    /// The request is recorded in the job's directory, where the job's runner sees it
    /// (and the endpoint signals the runner at once when the job runs on the endpoint's
    /// host); the runner sends SIGTERM to everything the job started and SIGKILL after
    /// `grace`. A batch job's runner then waits for the batch system's cancel, which this
    /// sends once the job's processes ended (or the grace period and 5 s ran out): it
    /// removes a job still queued and anything left, and makes the batch system's
    /// accounting say cancelled.
    pub async fn cancel_with_grace(&self, grace: Duration) -> Result<JobStatus, JobError> {
        let rec = self.refresh()?;
        if rec.state.is_terminal() {
            return self.status().await;
        }
        let dir = self.dir(&rec)?;
        let g = format!("{:.3}", grace.as_secs_f64());
        let action = format!("cancel job {}", rec.id);
        let batch_cancel: Vec<String> = match (rec.scheduler, rec.scheduler_id.as_deref()) {
            (Scheduler::Slurm, Some(sid)) => vec!["scancel".into(), sid.into()],
            (Scheduler::Sge | Scheduler::Pbs, Some(sid)) => vec!["qdel".into(), sid.into()],
            _ => Vec::new(),
        };
        // 1. Record the request (the runner sees it on any node of a shared file system)
        //    and SIGTERM the runner when it runs here. A batch job's runner is told to
        //    linger until the batch system's cancel (step 3).
        let linger = format!("{}", (grace + Duration::from_secs(30)).as_secs());
        let mut args = vec!["job", "cancel", dir.as_str(), "--grace", g.as_str()];
        if !batch_cancel.is_empty() {
            args.extend(["--linger", linger.as_str()]);
        }
        let out = remote::endpoint(&self.client, &args, None, &[], &action).await?;
        let signalled = serde_json::from_slice::<DirStatus>(&out.stdout)
            .ok()
            .and_then(|s| s.signalled)
            .unwrap_or(false);
        if !batch_cancel.is_empty() {
            // 2. A running job: wait for its processes to end (SIGKILL after the grace).
            if self
                .status()
                .await
                .is_ok_and(|s| s.state == JobState::Running)
            {
                let _ = self.wait(Some(grace + Duration::from_secs(5))).await;
            }
            // 3. The batch system's cancel.
            let out = remote::command(&self.client, &batch_cancel, None, None).await?;
            if !out.success() {
                tracing::info!(job = %rec.id, stderr = %out.stderr_text(), "batch cancel said no");
                if !signalled {
                    // No longer known to the batch system: stop it directly.
                    remote::endpoint(
                        &self.client,
                        &["job", "cancel", &dir, "--grace", &g],
                        None,
                        &[],
                        &action,
                    )
                    .await?;
                }
            }
        }
        match self.wait(Some(grace + Duration::from_secs(30))).await {
            Err(JobError::NotFinished { .. }) => Err(JobError::remote(
                &rec.host,
                action,
                "the job did not stop within the grace period and 30 s more",
                "check the host: `sremote jobs show ID`, the batch system's queue",
            )),
            other => other,
        }
    }

    /// Mark the result as handled: `sremote jobs rm --processed` then removes the job.
    pub fn mark_processed(&self) -> Result<(), JobError> {
        self.store.mark_processed(&self.id())?;
        self.refresh().map(drop)
    }

    /// Remove the job's directory on the host and its record in the store. A job not
    /// over yet (queued or running, also in a batch system) is refused with
    /// [`JobError::Unfinished`]: [`cancel`](Self::cancel) it first, or use
    /// [`cancel_and_clean`](Self::cancel_and_clean).
    pub async fn clean(&self) -> Result<(), JobError> {
        let mut rec = self.refresh()?;
        if !rec.state.is_terminal() && rec.remote_dir.is_some() {
            // The store may be behind the host: ask it (and the batch system).
            let st = self.status().await?;
            rec = self.record();
            if !st.state.is_terminal() {
                return Err(JobError::Unfinished {
                    id: rec.id,
                    host: rec.host,
                    state: st.state,
                });
            }
        }
        if let Some(dir) = &rec.remote_dir {
            let action = format!("remove job {}", rec.id);
            let out =
                remote::endpoint(&self.client, &["job", "rm", dir], None, &[7], &action).await?;
            if out.exit_code == Some(7) {
                // Running on the host although its state said otherwise.
                return Err(JobError::Unfinished {
                    id: rec.id,
                    host: rec.host,
                    state: JobState::Running,
                });
            }
        }
        self.store.remove(&rec.id)
    }

    /// [`cancel`](Self::cancel) the job (SIGTERM, SIGKILL after [`DEFAULT_GRACE`], the
    /// batch system's cancel), then [`clean`](Self::clean) it.
    pub async fn cancel_and_clean(&self) -> Result<(), JobError> {
        let rec = self.refresh()?;
        if !rec.state.is_terminal() {
            self.cancel().await?;
        }
        self.clean().await
    }
}
