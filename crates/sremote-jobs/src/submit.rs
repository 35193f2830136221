//! Submitting a call as a job: [`Submit`].

use std::future::{Future, IntoFuture};
use std::path::PathBuf;
use std::pin::Pin;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sremote_core::protocol::job::{Created, JOBS_DIR, SubmitAnswer, WORK_DIR};
use sremote_core::protocol::{ErrorKind, Request, ShippedModule};
use sremote_core::{Connector, Error, Reach, RemoteClient, Source};

use crate::error::JobError;
use crate::job::Job;
use crate::remote;
use crate::scheduler::{
    HostConfig, JobScript, Resources, Scheduler, choose_partition, parse_submit_output, render,
};
use crate::store::{Claim, JobRecord, JobState, JobStore, Submitted, now_ms};

/// Options of a submission, shared by [`Submit`] and [`Batch`](crate::Batch).
#[derive(Debug, Clone, Default)]
pub struct JobOptions {
    /// Where the job runs (default: detached on the host).
    pub scheduler: Scheduler,
    /// What it asks the batch system for.
    pub resources: Resources,
    /// The host's partitions etc., for choosing a partition.
    pub host_config: HostConfig,
    /// A name for people and the batch system (default `module.function`).
    pub name: Option<String>,
    /// Submit again even if the same call was submitted before.
    pub force: bool,
    /// The store (default: [`JobStore::open_default`]).
    pub store: Option<JobStore>,
    /// How to reach the host again (recorded for `sremote jobs …`), e.g. an ssh alias.
    pub destination: Option<String>,
    /// How to connect to the host again from any front end; default: what the client's
    /// connector reports ([`Connector::reach`]), with the client's sremote dir.
    pub reach: Option<Reach>,
}

/// A call being submitted as a job; `.await` it to get the [`Job`]. Made by
/// [`JobsExt::submit`](crate::JobsExt::submit).
#[must_use = "a submission does nothing until it is awaited"]
pub struct Submit<C> {
    pub(crate) client: RemoteClient<C>,
    pub(crate) request: Result<Request, Error>,
    pub(crate) files: Vec<(PathBuf, String)>,
    pub(crate) options: JobOptions,
    pub(crate) batch: Option<(String, u64)>,
    /// The host's identity of the called module's code ([`host_code_id`]), when the
    /// caller asked for it already (a batch asks once for all its items).
    pub(crate) host_code: Option<Value>,
}

impl<C: Connector> std::fmt::Debug for Submit<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Submit")
            .field("request", &self.request.as_ref().ok())
            .field("options", &self.options)
            .finish()
    }
}

impl<C: Connector + 'static> Submit<C> {
    /// Run under `scheduler` (default [`Scheduler::Direct`]).
    pub fn scheduler(mut self, scheduler: Scheduler) -> Self {
        self.options.scheduler = scheduler;
        self
    }
    /// Ask the batch system for `resources`.
    pub fn resources(mut self, resources: Resources) -> Self {
        self.options.resources = resources;
        self
    }
    /// The host's partitions (see [`choose_partition`](crate::choose_partition)).
    pub fn host_config(mut self, config: HostConfig) -> Self {
        self.options.host_config = config;
        self
    }
    /// Name the job (default `module.function`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.options.name = Some(name.into());
        self
    }
    /// Submit even if the same call was submitted before (default: reattach to it).
    pub fn force(mut self, force: bool) -> Self {
        self.options.force = force;
        self
    }
    /// Record the job in `store` instead of the default one.
    pub fn store(mut self, store: JobStore) -> Self {
        self.options.store = Some(store);
        self
    }
    /// Record how to reach the host again (e.g. the ssh alias the user typed).
    pub fn destination(mut self, destination: impl Into<String>) -> Self {
        self.options.destination = Some(destination.into());
        self
    }
    /// Record how to connect to the host again (default: the connector's own
    /// [`Connector::reach`]); front ends add the hosts-config entry it came from.
    pub fn reach(mut self, reach: Reach) -> Self {
        self.options.reach = Some(reach);
        self
    }
    /// Copy the local file `path` into the job's working directory as `name` before it
    /// starts. Its content is part of the call's identity (reattach).
    pub fn file(mut self, path: impl Into<PathBuf>, name: impl Into<String>) -> Self {
        self.files.push((path.into(), name.into()));
        self
    }
    /// Ship Python modules with the job (functions the host does not have), dependencies
    /// first; each must carry its source. Their hashes are part of the job's identity.
    pub fn code(mut self, modules: impl IntoIterator<Item = ShippedModule>) -> Self {
        if let Ok(r) = &mut self.request {
            r.code.extend(modules);
        }
        self
    }
    /// All options at once.
    pub fn options(mut self, options: JobOptions) -> Self {
        self.options = options;
        self
    }

    async fn run(self) -> Result<Job<C>, JobError> {
        let store = match &self.options.store {
            Some(s) => s.clone(),
            None => JobStore::open_default()?,
        };
        let (client, files, options, fresh) = self.prepare().await?;
        let claim = store.claim(fresh, options.force)?;
        let record = async |rec: Submitted| {
            store.set_submitted(
                &rec.id,
                &rec.remote_dir,
                rec.scheduler_id.as_deref(),
                rec.state,
            )
        };
        dispatch(client, &store, claim, &files, &options, record).await
    }

    /// Check the call and make its fresh record (state `submitting`, not stored yet).
    pub(crate) async fn prepare(
        self,
    ) -> Result<
        (
            RemoteClient<C>,
            Vec<(PathBuf, String)>,
            JobOptions,
            JobRecord,
        ),
        JobError,
    > {
        let Submit {
            client,
            request,
            files,
            options,
            batch,
            host_code,
        } = self;
        let request = request?;
        let host = client.host().to_string();
        check_shipped_code(&request, &host)?;
        let host_code = match host_code {
            Some(v) => v,
            None => host_code_id(&client, &request).await?,
        };
        let file_hashes = input_file_hashes(&files)?;
        // The host as the user named it when they did (two configured names for one
        // machine are two places to run), else the connection's host name.
        let identity = match &options.destination {
            Some(d) if d != &host => format!("{d} ({host})"),
            _ => host.clone(),
        };
        let hash = call_hash(&identity, &request, &file_hashes, &host_code);
        let partition = match options.scheduler {
            Scheduler::Direct => None,
            _ => choose_partition(&options.resources, &options.host_config.partitions).map_err(
                |e| {
                    JobError::usage(
                        format!(
                            "submit {}.{} to {host}: {}",
                            request.module, request.function, e.message
                        ),
                        e.hint,
                    )
                },
            )?,
        };
        let mut resources = options.resources.clone();
        resources.partition = partition.clone();
        let now = now_ms();
        let fresh = JobRecord {
            id: new_job_id(),
            host: host.clone(),
            destination: options.destination.clone(),
            call_hash: hash,
            request: request.clone(),
            scheduler: options.scheduler,
            resources,
            name: options
                .name
                .clone()
                .unwrap_or_else(|| format!("{}.{}", request.module, request.function)),
            remote_dir: None,
            scheduler_id: None,
            state: JobState::Submitting,
            failure_class: None,
            failure: None,
            processed: false,
            batch,
            submitted_ms: now,
            updated_ms: now,
            finished_ms: None,
            reach: reach_of(&client, &options),
        };
        Ok((client, files, options, fresh))
    }
}

/// `{"name", "sha256"}` of each input file (part of the call's identity); a name that is
/// not a plain file name, or a file that cannot be read, is refused.
fn input_file_hashes(files: &[(PathBuf, String)]) -> Result<Vec<Value>, JobError> {
    let mut hashes = Vec::new();
    for (path, name) in files {
        if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
            return Err(JobError::Usage(format!(
                "input file name {name:?} must be a plain file name (no `/`)"
            )));
        }
        let bytes = std::fs::read(path).map_err(|e| {
            JobError::Usage(format!("cannot read input file {}: {e}", path.display()))
        })?;
        hashes.push(json!({ "name": name, "sha256": hex(&Sha256::digest(&bytes)) }));
    }
    Ok(hashes)
}

/// What to record about reaching the host: the options' spec, else the connector's, with
/// the client's sremote dir when it is not the default one.
fn reach_of<C: Connector>(client: &RemoteClient<C>, options: &JobOptions) -> Option<Reach> {
    let mut reach = options
        .reach
        .clone()
        .or_else(|| client.connector().reach())?;
    let dir = client.sremote_dir();
    if reach.endpoint_dir.is_none() && dir != ".sremote" {
        reach.endpoint_dir = Some(dir);
    }
    Some(reach)
}

/// Send a claimed job to the host (unless it was there already: reattach) and record
/// where it went with `record` (one write each, or batched by the caller).
pub(crate) async fn dispatch<C: Connector + 'static>(
    client: RemoteClient<C>,
    store: &JobStore,
    claim: Claim,
    files: &[(PathBuf, String)],
    options: &JobOptions,
    record: impl AsyncFnOnce(Submitted) -> Result<(), JobError>,
) -> Result<Job<C>, JobError> {
    let mut rec = match claim {
        Claim::Existing(rec) => return Ok(Job::new(client, store.clone(), rec, true)),
        Claim::New(rec) => rec,
    };
    match send(&client, &rec, files, &options.host_config).await {
        Ok((dir, sid, state)) => {
            record(Submitted {
                id: rec.id.clone(),
                remote_dir: dir.clone(),
                scheduler_id: sid.clone(),
                state,
            })
            .await?;
            rec.remote_dir = Some(dir);
            rec.scheduler_id = sid;
            rec.state = state;
        }
        Err(e) if remote::transient(&e) => {
            // The job may have started before the connection broke: keep the record
            // (`submitting`) so that submitting the same call again finds this job id
            // and `job create` (idempotent) settles it, instead of running it twice.
            let dir = job_dir(&client, &rec.id);
            let _ = store.set_submitted(&rec.id, &dir, None, JobState::Submitting);
            return Err(e);
        }
        Err(e) => {
            // Refused: nothing runs. Forget the record so the next submission tries again.
            let _ = store.remove(&rec.id);
            return Err(e);
        }
    }
    Ok(Job::new(client, store.clone(), rec, false))
}

impl<C: Connector + 'static> IntoFuture for Submit<C> {
    type Output = Result<Job<C>, JobError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

/// The job's directory on the host, as the client names it (relative to the home when the
/// sremote dir is).
pub(crate) fn job_dir<C: Connector>(client: &RemoteClient<C>, id: &str) -> String {
    format!("{}/{JOBS_DIR}/{id}", client.sremote_dir())
}

/// Create the job dir on the host, push the input files, start the job (directly or
/// through the batch system). Returns the absolute dir, the batch id and the state.
async fn send<C: Connector>(
    client: &RemoteClient<C>,
    rec: &JobRecord,
    files: &[(PathBuf, String)],
    config: &HostConfig,
) -> Result<(String, Option<String>, JobState), JobError> {
    let dir = job_dir(client, &rec.id);
    let start_now = rec.scheduler == Scheduler::Direct && files.is_empty();
    let created = create(client, rec, &dir, start_now).await?;
    for (path, name) in files {
        let to = format!("{dir}/{WORK_DIR}/{name}");
        client
            .connector()
            .push(Source::file(path).mode(0o600), &to)
            .await
            .map_err(Error::Transport)?;
    }
    let abs_dir = created.dir;
    match rec.scheduler {
        Scheduler::Direct => {
            if !start_now {
                let action = format!("start job {}", rec.id);
                remote::endpoint(client, &["job", "start", &abs_dir], None, &[], &action).await?;
            }
            Ok((abs_dir, None, JobState::Running))
        }
        sched => {
            let script = JobScript {
                scheduler: sched,
                id: &rec.id,
                name: &rec.name,
                dir: &abs_dir,
                exe: &created.exe,
                resources: &rec.resources,
                config,
                setup: &client.setup(),
            };
            let sid = submit_batch(client, &script).await?;
            Ok((abs_dir, Some(sid), JobState::Queued))
        }
    }
}

/// `job create DIR` with the request (on stdin, or pushed first when the connector cannot
/// feed stdin), `--start` when the job can start at once: what the endpoint made.
async fn create<C: Connector>(
    client: &RemoteClient<C>,
    rec: &JobRecord,
    dir: &str,
    start_now: bool,
) -> Result<Created, JobError> {
    let body = serde_json::to_vec(&rec.request).map_err(|e| {
        JobError::Usage(format!(
            "the request of job {} cannot be encoded: {e}",
            rec.id
        ))
    })?;
    let action = format!(
        "create job {} ({}.{})",
        rec.id, rec.request.module, rec.request.function
    );
    let req_file = format!("{}/tmp/job-{}.json", client.sremote_dir(), rec.id);
    let stdin = client.connector().supports_stdin();
    if !stdin {
        client
            .connector()
            .push(Source::bytes(&body).mode(0o600).scratch(), &req_file)
            .await
            .map_err(Error::Transport)?;
    }
    let mut args = vec!["job", "create", dir, if stdin { "-" } else { &req_file }];
    if start_now {
        args.push("--start");
    }
    let body = stdin.then_some(&body[..]);
    let out = remote::endpoint(client, &args, body, &[], &action).await?;
    let mut created: Created = remote::parse_answer(&out.stdout, client.host(), &action)?;
    if created.dir.is_empty() {
        created.dir = dir.to_string();
    }
    Ok(created)
}

/// Hand the job to the batch system through the endpoint (`job submit`), which records the
/// batch system's answer in the job dir and hands a repeated submission of this job (after
/// a lost answer, or by a process taking over) the recorded one: never two batch jobs.
/// Returns the batch system's job id.
async fn submit_batch<C: Connector>(
    client: &RemoteClient<C>,
    script: &JobScript<'_>,
) -> Result<String, JobError> {
    let host = client.host();
    let sub = render(script)?;
    let program = &sub.argv[0];
    let action = format!("submit job {} with `{program}`", script.id);
    let mut args = vec!["job", "submit", script.dir, "--"];
    args.extend(sub.argv.iter().map(String::as_str));
    let out = remote::endpoint(client, &args, Some(sub.script.as_bytes()), &[], &action).await?;
    let answer: SubmitAnswer = remote::parse_answer(&out.stdout, host, &action)?;
    match answer.code {
        0 => {}
        127 => {
            return Err(JobError::remote(
                host,
                format!("run `{program}`"),
                format!(
                    "`{program}` is not installed on the host (or not in PATH): {}",
                    answer.stderr
                ),
                "submit to the batch system the host has, or use Scheduler::Direct",
            ));
        }
        code => {
            return Err(JobError::remote(
                host,
                action,
                format!("exit {:?}: {}", Some(code), answer.stderr),
                "check the resources and partition against the cluster's limits",
            ));
        }
    }
    if answer.is_again() {
        tracing::info!(job = %script.id, "the batch system had this job already: reattached");
    }
    parse_submit_output(script.scheduler, &answer.stdout).ok_or_else(|| {
        JobError::remote(
            host,
            &action,
            format!("no job id in its output: {:?}", answer.stdout),
            "check the batch system",
        )
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A job runs later, maybe after the host's code cache was cleaned: its request must carry
/// every shipped module's source (never only the hash), and each hash must be the source's.
fn check_shipped_code(request: &Request, host: &str) -> Result<(), JobError> {
    for m in &request.code {
        let what = format!(
            "submit {}.{} to {host}: shipped module `{}`",
            request.module, request.function, m.name
        );
        let Some(source) = &m.source else {
            return Err(JobError::usage(
                format!(
                    "{what} has no source (only its hash); a job runs later and needs the source"
                ),
                "build the request with the module's source (ShippedModule::new)",
            ));
        };
        let sha = hex(&Sha256::digest(source.as_bytes()));
        if !sha.eq_ignore_ascii_case(&m.sha256) {
            return Err(JobError::usage(
                format!(
                    "{what}: sha256 {} is not the SHA-256 of its source ({sha})",
                    m.sha256
                ),
                "build it with ShippedModule::new",
            ));
        }
    }
    Ok(())
}

/// What the host's code of `request.module` is (the endpoint's `sys.code_id`): the endpoint's
/// version and SHA-256 for its own modules, a plugin's SHA-256, a Python module file's
/// SHA-256 — asked with the request's environment, so it is what the job will import. A
/// module shipped with the request is identified by its hash already: `null`. An endpoint
/// without `sys.code_id` (a custom one built before it existed) gives `null` too, with a
/// warning: its jobs are identified without the host's code, as before.
pub(crate) async fn host_code_id<C: Connector>(
    client: &RemoteClient<C>,
    request: &Request,
) -> Result<Value, JobError> {
    let shipped = |name: &str| request.code.iter().any(|m| m.name == name);
    let bare = request
        .module
        .strip_prefix("py:")
        .unwrap_or(&request.module);
    if shipped(bare) {
        return Ok(Value::Null);
    }
    let mut call = client.call::<Value>("sys", "code_id").arg(&request.module);
    for (k, v) in &request.env {
        call = call.env(k, v);
    }
    match call.await {
        Ok(out) => Ok(out.value["id"].clone()),
        Err(Error::RemoteExec(e)) if e.kind == ErrorKind::FunctionNotFound => {
            tracing::warn!(
                host = client.host(),
                module = %request.module,
                "the endpoint has no sys.code_id (a custom endpoint built with an older \
                 sremote-endpoint?): the job's identity leaves out the host's code; rebuild it \
                 to have changed code rerun"
            );
            Ok(Value::Null)
        }
        Err(Error::RemoteExec(e)) => Err(JobError::remote(
            client.host(),
            format!(
                "identify the code of module `{}` (sys.code_id)",
                request.module
            ),
            e.message,
            "check that the host's python3 works (`sremote call HOST sys probe`), or submit a \
             module that does not need it",
        )),
        // Transport, bootstrap: as any call's error (a dropped connection is retried).
        Err(e) => Err(JobError::Call(e)),
    }
}

/// The identity of a call: SHA-256 of host, module, function, args, kwargs, input files
/// (name and content hash), the shipped code (name and hash of each module) and the
/// host's code of the module (`host_code`, from [`host_code_id`]), as canonical JSON
/// (sorted keys). Changed code — shipped, or the module file on the host — is a new job.
pub fn call_hash(host: &str, request: &Request, files: &[Value], host_code: &Value) -> String {
    let code: Vec<Value> = request
        .code
        .iter()
        .map(|m| json!({ "name": m.name, "sha256": m.sha256.to_ascii_lowercase() }))
        .collect();
    let identity = json!({
        "host": host,
        "module": request.module,
        "function": request.function,
        "args": request.args,
        "kwargs": request.kwargs,
        "files": files,
        "code": code,
        "host_code": host_code,
    });
    let mut canonical = String::new();
    canonical_json(&identity, &mut canonical);
    hex(&Sha256::digest(canonical.as_bytes()))
}

fn canonical_json(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical_json(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// A new job id: milliseconds since the epoch and 32 random bits, base 36 and hex
/// (`mi8x3k2a-9f3c1b7e`): sortable by time, safe as a file name and a batch job name.
pub fn new_job_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(N.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    h.write_u64(now_ms());
    let mut ms = now_ms();
    let mut base36 = Vec::new();
    while ms > 0 {
        base36.push(b"0123456789abcdefghijklmnopqrstuvwxyz"[(ms % 36) as usize]);
        ms /= 36;
    }
    base36.reverse();
    format!(
        "{}-{:08x}",
        String::from_utf8_lossy(&base36),
        h.finish() as u32
    )
}
