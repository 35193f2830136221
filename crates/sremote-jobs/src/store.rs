//! The local job store: one SQLite file (WAL) that several processes use at once.
//!
//! Every write is a short `BEGIN IMMEDIATE` transaction (the write lock is taken up
//! front, so two writers never deadlock upgrading read locks), with a 60 s busy timeout
//! and a retry on top: eight programs submitting at once never see "database is locked".

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::{Deserialize, Serialize};
use sremote_core::Reach;
use sremote_core::protocol::Request;
use sremote_core::protocol::job::State;

use crate::error::{FailureClass, JobError};
use crate::scheduler::{Resources, Scheduler};

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Recorded locally; being sent to the host.
    Submitting,
    /// On the host, waiting to start (batch queue).
    Queued,
    /// Running.
    Running,
    /// Finished with a value.
    Succeeded,
    /// Finished with an error (the call's typed error is in the result).
    Failed,
    /// Cancelled on request.
    Cancelled,
    /// Ended without a result (see [`FailureClass`]).
    Died,
}

/// The state the job's directory records ([`State`]), as the store's.
impl From<State> for JobState {
    fn from(s: State) -> JobState {
        match s {
            State::Queued => JobState::Queued,
            State::Running => JobState::Running,
            State::Succeeded => JobState::Succeeded,
            State::Failed => JobState::Failed,
            State::Cancelled => JobState::Cancelled,
            State::Died => JobState::Died,
        }
    }
}

impl JobState {
    /// The state on the host; `None` while the job is only recorded here (submitting).
    pub fn on_host(self) -> Option<State> {
        State::ALL.into_iter().find(|&s| JobState::from(s) == self)
    }

    /// `submitting`, `queued`, `running`, … (the host's names, [`State::as_str`]).
    pub fn as_str(self) -> &'static str {
        self.on_host().map_or("submitting", State::as_str)
    }

    /// Parse [`as_str`](Self::as_str)'s names.
    pub fn parse(s: &str) -> Option<JobState> {
        match s {
            "submitting" => Some(JobState::Submitting),
            s => State::ALL
                .into_iter()
                .find(|st| st.as_str() == s)
                .map(JobState::from),
        }
    }

    /// Succeeded, failed, cancelled or died: it will not change any more.
    pub fn is_terminal(self) -> bool {
        self.on_host().is_some_and(State::is_terminal)
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One job as the store records it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobRecord {
    /// The job id (also the name of its directory on the host).
    pub id: String,
    /// The host, as its connector names it.
    pub host: String,
    /// How to reach the host again (what the user typed, e.g. an ssh alias), if known.
    pub destination: Option<String>,
    /// SHA-256 of host, module, function, arguments and input files.
    pub call_hash: String,
    /// The call.
    pub request: Request,
    /// Where it runs.
    pub scheduler: Scheduler,
    /// What it asked the batch system for.
    pub resources: Resources,
    /// A name for people and the batch system.
    pub name: String,
    /// The job directory on the host (absolute), once created.
    pub remote_dir: Option<String>,
    /// The batch system's job id.
    pub scheduler_id: Option<String>,
    /// The last state seen.
    pub state: JobState,
    /// Why it died.
    pub failure_class: Option<FailureClass>,
    /// What the runner or the batch system said about an end without a result.
    pub failure: Option<String>,
    /// The result was handled ([`Job::mark_processed`](crate::Job::mark_processed)).
    pub processed: bool,
    /// The batch (a `map`) this job belongs to, and its index in the input.
    pub batch: Option<(String, u64)>,
    /// Unix milliseconds.
    pub submitted_ms: u64,
    /// Unix milliseconds of the last change.
    pub updated_ms: u64,
    /// Unix milliseconds when the job was seen finished.
    pub finished_ms: Option<u64>,
    /// How to connect to the host again from any front end (connector, destination, user,
    /// port, ssh config file, hosts-config entry and file); `None` for jobs recorded
    /// before it was kept.
    pub reach: Option<Reach>,
}

/// Which jobs [`JobStore::list`] returns.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// Only jobs on this host (connector name or destination).
    pub host: Option<String>,
    /// Only jobs in this state.
    pub state: Option<JobState>,
    /// Only jobs of this batch.
    pub batch: Option<String>,
    /// Only jobs whose result was (true) or was not (false) processed.
    pub processed: Option<bool>,
    /// Only the newest this many (still listed oldest first); `None`: all.
    pub limit: Option<usize>,
}

/// What [`JobStore::claim`] found.
#[derive(Debug, Clone)]
pub enum Claim {
    /// The same call was submitted before: reattach to it.
    Existing(JobRecord),
    /// A new record (state `submitting`): submit it.
    New(JobRecord),
}

/// The local record of jobs. Cheap to clone; safe to use from several threads and
/// several processes at once.
#[derive(Clone)]
pub struct JobStore {
    inner: Arc<Mutex<Connection>>,
    path: Arc<PathBuf>,
}

impl std::fmt::Debug for JobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobStore")
            .field("path", &self.path)
            .finish()
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    destination TEXT,
    call_hash TEXT NOT NULL,
    module TEXT NOT NULL,
    function TEXT NOT NULL,
    request TEXT NOT NULL,
    scheduler TEXT NOT NULL,
    resources TEXT NOT NULL,
    name TEXT NOT NULL,
    remote_dir TEXT,
    scheduler_id TEXT,
    state TEXT NOT NULL,
    failure_class TEXT,
    failure TEXT,
    processed INTEGER NOT NULL DEFAULT 0,
    batch TEXT,
    batch_index INTEGER,
    submitted_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    finished_ms INTEGER
);
CREATE INDEX IF NOT EXISTS jobs_by_call ON jobs (host, call_hash, submitted_ms);
CREATE INDEX IF NOT EXISTS jobs_by_batch ON jobs (batch, batch_index);
PRAGMA user_version = 1;
";

/// Version 2: the reach spec of each job, and indexes for listing by state, host,
/// destination, processed and time, each ending in the list order (`submitted_ms,
/// batch_index, id`) so that the newest N come straight off the index (by batch and by
/// call hash — `(host, call_hash, submitted_ms)` — version 1 has). Applied in one
/// transaction; no row is rewritten.
const MIGRATE_V2: &str = "
ALTER TABLE jobs ADD COLUMN reach TEXT;
CREATE INDEX IF NOT EXISTS jobs_by_time ON jobs (submitted_ms, batch_index, id);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, submitted_ms, batch_index, id);
CREATE INDEX IF NOT EXISTS jobs_by_host ON jobs (host, submitted_ms, batch_index, id);
CREATE INDEX IF NOT EXISTS jobs_by_destination ON jobs (destination, submitted_ms, batch_index, id);
CREATE INDEX IF NOT EXISTS jobs_by_processed ON jobs (processed, submitted_ms, batch_index, id);
PRAGMA user_version = 2;
";

/// The schema version this code reads and writes.
const VERSION: i64 = 2;

/// The list order.
const ORDER: &str = "submitted_ms, batch_index, id";
const ORDER_DESC: &str = "submitted_ms DESC, batch_index DESC, id DESC";

const COLUMNS: &str = "id, host, destination, call_hash, request, scheduler, resources, name, remote_dir, \
     scheduler_id, state, failure_class, failure, processed, batch, batch_index, submitted_ms, updated_ms, finished_ms, reach";

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn now_i64() -> i64 {
    now_ms() as i64
}

/// A record older than this still `submitting` was abandoned by a crashed submitter.
const STALE_SUBMIT: Duration = Duration::from_secs(120);

impl JobStore {
    /// The default store: `$SREMOTE_JOBS_DB` if set, else `jobs.sqlite3` in the platform
    /// data dir (`$XDG_DATA_HOME/sremote`, `~/.local/share/sremote`, or
    /// `~/Library/Application Support/sremote` on macOS).
    pub fn default_path() -> PathBuf {
        if let Some(p) = std::env::var_os("SREMOTE_JOBS_DB").filter(|p| !p.is_empty()) {
            return PathBuf::from(p);
        }
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let base = if cfg!(target_os = "macos") {
            home.join("Library/Application Support")
        } else {
            std::env::var_os("XDG_DATA_HOME")
                .filter(|p| !p.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| home.join(".local/share"))
        };
        base.join("sremote").join("jobs.sqlite3")
    }

    /// Open the store at [`default_path`](Self::default_path).
    pub fn open_default() -> Result<JobStore, JobError> {
        Self::open(Self::default_path())
    }

    /// Open (creating if needed) the store at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<JobStore, JobError> {
        let path = path.as_ref().to_path_buf();
        let err = |action: &str, e: &dyn std::fmt::Display| store_error(&path, action, e);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| err("create its directory", &e))?;
        }
        let conn = retry_busy(|| {
            let conn = Connection::open(&path)?;
            conn.busy_timeout(Duration::from_secs(60))?;
            conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0))?;
            conn.execute_batch("PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;")?;
            Ok(conn)
        })
        .map_err(|e| err("open", &e))?;
        let store = JobStore {
            inner: Arc::new(Mutex::new(conn)),
            path: Arc::new(path),
        };
        store.migrate()?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&*store.path, std::fs::Permissions::from_mode(0o600));
        }
        Ok(store)
    }

    /// Create the tables, or bring an older store up to [`VERSION`] keeping every job.
    /// Checked again inside the write transaction: two processes opening an old store at
    /// once migrate it once.
    fn migrate(&self) -> Result<(), JobError> {
        let version: i64 = self.read("read the schema version", |c| {
            c.query_row("PRAGMA user_version", [], |r| r.get(0))
        })?;
        if version > VERSION {
            return Err(JobError::Store {
                path: self.path.display().to_string(),
                action: "open".into(),
                detail: format!(
                    "the store has schema version {version}; this sremote knows up to {VERSION}"
                ),
                hint: "use the newer sremote that wrote it, or set SREMOTE_JOBS_DB to use another file"
                    .into(),
            });
        }
        if version == VERSION {
            return Ok(());
        }
        self.write("migrate the store to schema version 2", |tx| {
            let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            if version < 1 {
                tx.execute_batch(SCHEMA)?;
            }
            if version < 2 {
                tx.execute_batch(MIGRATE_V2)?;
            }
            Ok(())
        })
    }

    /// The SQLite file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read<T>(
        &self,
        action: &str,
        f: impl Fn(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, JobError> {
        let conn = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        retry_busy(|| f(&conn)).map_err(|e| store_error(&self.path, action, &e))
    }

    fn write<T>(
        &self,
        action: &str,
        f: impl Fn(&rusqlite::Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T, JobError> {
        let mut conn = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        retry_busy(|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let out = f(&tx)?;
            tx.commit()?;
            Ok(out)
        })
        .map_err(|e| store_error(&self.path, action, &e))
    }

    /// Reattach or record: the newest job of the same call on the same host, unless
    /// `force`; else `fresh` is inserted (state `submitting`). One transaction, so two
    /// programs submitting the same call at once get one job.
    pub fn claim(&self, fresh: JobRecord, force: bool) -> Result<Claim, JobError> {
        self.write("record a job", |tx| claim_in(tx, &fresh, force))
    }

    /// [`claim`](Self::claim) for many records (each with its `force`) in one transaction:
    /// what a batch records at once.
    pub fn claim_many(&self, items: &[(JobRecord, bool)]) -> Result<Vec<Claim>, JobError> {
        self.write("record jobs", |tx| {
            items
                .iter()
                .map(|(fresh, force)| claim_in(tx, fresh, *force))
                .collect()
        })
    }

    /// Insert a record (tests, imports).
    pub fn insert(&self, record: &JobRecord) -> Result<(), JobError> {
        self.write("insert a job", |tx| insert(tx, record))
    }

    /// Insert many records in one transaction (imports, benchmarks).
    pub fn insert_many(&self, records: &[JobRecord]) -> Result<(), JobError> {
        self.write("insert jobs", |tx| {
            records.iter().try_for_each(|r| insert(tx, r))
        })
    }

    /// The newest job of the call `call_hash` on `host` (what a resubmission reattaches to).
    pub fn find_call(&self, host: &str, call_hash: &str) -> Result<Option<JobRecord>, JobError> {
        self.read("look up a call", |c| find_call(c, host, call_hash))
    }

    /// The job `id`.
    pub fn get(&self, id: &str) -> Result<JobRecord, JobError> {
        let sql = format!("SELECT {COLUMNS} FROM jobs WHERE id = ?1");
        self.read("read a job", |c| {
            c.query_row(&sql, params![id], row_to_record).optional()
        })?
        .ok_or_else(|| JobError::NotFound {
            id: id.to_string(),
            path: self.path.display().to_string(),
        })
    }

    /// Jobs matching `filter`, oldest first (the newest `filter.limit` of them). Collects
    /// them all: for long lists use [`for_each`](Self::for_each).
    pub fn list(&self, filter: &JobFilter) -> Result<Vec<JobRecord>, JobError> {
        let mut all = Vec::new();
        self.for_each(filter, |r| {
            all.push(r);
            true
        })?;
        Ok(all)
    }

    /// How many jobs match `filter`, counting up to `at_most` (a cheap "are there more
    /// than the newest N?").
    pub fn count(&self, filter: &JobFilter, at_most: usize) -> Result<usize, JobError> {
        let mut f = filter.clone();
        f.limit = Some(at_most);
        let (sql, args) = list_sql(&f);
        let sql = format!("SELECT COUNT(*) FROM ({sql})");
        self.read("count jobs", |c| {
            c.prepare_cached(&sql)?
                .query_row(rusqlite::params_from_iter(args.iter()), |r| {
                    r.get::<_, i64>(0)
                })
        })
        .map(|n| n as usize)
    }

    /// Hand the jobs matching `filter` to `f` one at a time, oldest first (the newest
    /// `filter.limit` of them), straight from SQLite: memory does not grow with the store.
    /// `f` returns `false` to stop. `f` must not use this store (the connection is held).
    pub fn for_each(
        &self,
        filter: &JobFilter,
        mut f: impl FnMut(JobRecord) -> bool,
    ) -> Result<(), JobError> {
        let (sql, args) = list_sql(filter);
        let conn = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut emitted = false;
        // Busy (a WAL recovery) is retried only before the first row went out.
        retry_busy(|| {
            if emitted {
                return Ok(());
            }
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut rows = stmt.query(rusqlite::params_from_iter(args.iter()))?;
            while let Some(row) = rows.next()? {
                emitted = true;
                if !f(row_to_record(row)?) {
                    break;
                }
            }
            Ok(())
        })
        .map_err(|e| store_error(&self.path, "list jobs", &e))
    }

    /// Record where the job went on the host.
    pub fn set_submitted(
        &self,
        id: &str,
        remote_dir: &str,
        scheduler_id: Option<&str>,
        state: JobState,
    ) -> Result<(), JobError> {
        self.write("record a submission", |tx| {
            set_submitted_in(tx, id, remote_dir, scheduler_id, state)
        })
    }

    /// [`set_submitted`](Self::set_submitted) for many jobs in one transaction: (id,
    /// remote dir, batch id, state) each.
    pub fn set_submitted_many(&self, items: &[Submitted]) -> Result<(), JobError> {
        self.write("record submissions", |tx| {
            items.iter().try_for_each(|s| {
                set_submitted_in(tx, &s.id, &s.remote_dir, s.scheduler_id.as_deref(), s.state)
            })
        })
    }

    /// Record the state seen (and why it died).
    pub fn set_state(
        &self,
        id: &str,
        state: JobState,
        failure: Option<(FailureClass, &str)>,
    ) -> Result<(), JobError> {
        let finished = state.is_terminal().then(now_ms);
        self.write("record a job's state", |tx| {
            tx.execute(
                "UPDATE jobs SET state = ?2, failure_class = ?3, failure = ?4, updated_ms = ?5, \
                 finished_ms = COALESCE(finished_ms, ?6) WHERE id = ?1",
                params![
                    id,
                    state.as_str(),
                    failure.map(|f| f.0.as_str()),
                    failure.map(|f| f.1),
                    now_i64(),
                    finished.map(|v| v as i64)
                ],
            )
        })
        .map(drop)
    }

    /// Mark the job's result as handled (`jobs rm --processed` removes such jobs).
    pub fn mark_processed(&self, id: &str) -> Result<(), JobError> {
        self.write("mark a job processed", |tx| {
            tx.execute(
                "UPDATE jobs SET processed = 1, updated_ms = ?2 WHERE id = ?1",
                params![id, now_i64()],
            )
        })
        .map(drop)
    }

    /// Forget the job `id` (its files on the host are not touched).
    pub fn remove(&self, id: &str) -> Result<(), JobError> {
        self.write("remove a job", |tx| {
            tx.execute("DELETE FROM jobs WHERE id = ?1", params![id])
        })
        .map(drop)
    }
}

/// Where a submitted job went ([`JobStore::set_submitted_many`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    /// The job id.
    pub id: String,
    /// The job directory on the host.
    pub remote_dir: String,
    /// The batch system's id.
    pub scheduler_id: Option<String>,
    /// Its state now.
    pub state: JobState,
}

fn find_call(c: &Connection, host: &str, call_hash: &str) -> rusqlite::Result<Option<JobRecord>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM jobs WHERE host = ?1 AND call_hash = ?2 ORDER BY submitted_ms DESC LIMIT 1"
    );
    c.prepare_cached(&sql)?
        .query_row(params![host, call_hash], row_to_record)
        .optional()
}

fn claim_in(
    tx: &rusqlite::Transaction<'_>,
    fresh: &JobRecord,
    force: bool,
) -> rusqlite::Result<Claim> {
    if !force && let Some(existing) = find_call(tx, &fresh.host, &fresh.call_hash)? {
        let stale = existing.state == JobState::Submitting
            && now_ms().saturating_sub(existing.updated_ms) > STALE_SUBMIT.as_millis() as u64;
        if !stale {
            return Ok(Claim::Existing(existing));
        }
        // Its submitter died half-way: take it over under the same id.
        tx.prepare_cached("UPDATE jobs SET updated_ms = ?2 WHERE id = ?1")?
            .execute(params![existing.id, now_i64()])?;
        return Ok(Claim::New(existing));
    }
    insert(tx, fresh)?;
    Ok(Claim::New(fresh.clone()))
}

fn set_submitted_in(
    tx: &rusqlite::Transaction<'_>,
    id: &str,
    remote_dir: &str,
    scheduler_id: Option<&str>,
    state: JobState,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "UPDATE jobs SET remote_dir = ?2, scheduler_id = ?3, state = ?4, updated_ms = ?5 WHERE id = ?1",
    )?
    .execute(params![id, remote_dir, scheduler_id, state.as_str(), now_i64()])
    .map(drop)
}

/// The query of [`JobStore::for_each`]: only the conditions given (so SQLite picks the
/// index of that column), newest `limit` taken off the index and turned oldest first. A
/// host matches by connector name or destination: two queries, one per index, put
/// together (an `OR` would read the whole table to order it).
fn list_sql(filter: &JobFilter) -> (String, Vec<rusqlite::types::Value>) {
    use rusqlite::types::Value as V;
    let mut cond = Vec::new();
    let mut args = Vec::new();
    if let Some(s) = filter.state {
        args.push(V::Text(s.as_str().into()));
        cond.push(format!("state = ?{}", args.len()));
    }
    if let Some(b) = &filter.batch {
        args.push(V::Text(b.clone()));
        cond.push(format!("batch = ?{}", args.len()));
    }
    if let Some(p) = filter.processed {
        args.push(V::Integer(p.into()));
        cond.push(format!("processed = ?{}", args.len()));
    }
    let limit = filter
        .limit
        .map(|n| format!(" LIMIT {n}"))
        .unwrap_or_default();
    let select = |extra: Option<String>| {
        let all: Vec<String> = extra.into_iter().chain(cond.iter().cloned()).collect();
        let filter_sql = if all.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", all.join(" AND "))
        };
        match filter.limit {
            None => format!("SELECT {COLUMNS} FROM jobs{filter_sql}"),
            Some(_) => format!(
                "SELECT {COLUMNS} FROM (SELECT {COLUMNS} FROM jobs{filter_sql} ORDER BY {ORDER_DESC}{limit})"
            ),
        }
    };
    let rows = match &filter.host {
        None => select(None),
        Some(h) => {
            args.push(V::Text(h.clone()));
            let n = args.len();
            format!(
                "{} UNION ALL {}",
                select(Some(format!("host = ?{n}"))),
                select(Some(format!("destination = ?{n} AND host <> ?{n}")))
            )
        }
    };
    let sql = match filter.limit {
        None => format!("{rows} ORDER BY {ORDER}"),
        Some(_) => format!(
            "SELECT {COLUMNS} FROM (SELECT {COLUMNS} FROM ({rows}) ORDER BY {ORDER_DESC}{limit}) ORDER BY {ORDER}"
        ),
    };
    (sql, args)
}

fn insert(tx: &rusqlite::Transaction<'_>, r: &JobRecord) -> rusqlite::Result<()> {
    tx.prepare_cached(
        &format!("INSERT INTO jobs (module, function, {COLUMNS}) VALUES (?21, ?22, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)"),
    )?.execute(
        params![
            r.id,
            r.host,
            r.destination,
            r.call_hash,
            to_json(&r.request),
            r.scheduler.as_str(),
            to_json(&r.resources),
            r.name,
            r.remote_dir,
            r.scheduler_id,
            r.state.as_str(),
            r.failure_class.map(FailureClass::as_str),
            r.failure,
            r.processed,
            r.batch.as_ref().map(|b| b.0.as_str()),
            r.batch.as_ref().map(|b| b.1 as i64),
            r.submitted_ms as i64,
            r.updated_ms as i64,
            r.finished_ms.map(|v| v as i64),
            r.reach.as_ref().map(Reach::to_json),
            r.request.module,
            r.request.function,
        ],
    )
    .map(drop)
}

fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

fn row_to_record(row: &rusqlite::Row<'_>) -> rusqlite::Result<JobRecord> {
    let bad = |i: usize, what: String| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, what.into())
    };
    let request: String = row.get(4)?;
    let request: Request =
        serde_json::from_str(&request).map_err(|e| bad(4, format!("request: {e}")))?;
    let scheduler: String = row.get(5)?;
    let resources: String = row.get(6)?;
    let state: String = row.get(10)?;
    let batch: Option<String> = row.get(14)?;
    let batch_index: Option<i64> = row.get(15)?;
    Ok(JobRecord {
        id: row.get(0)?,
        host: row.get(1)?,
        destination: row.get(2)?,
        call_hash: row.get(3)?,
        request,
        scheduler: scheduler.parse().map_err(|e: String| bad(5, e))?,
        resources: serde_json::from_str(&resources)
            .map_err(|e| bad(6, format!("resources: {e}")))?,
        name: row.get(7)?,
        remote_dir: row.get(8)?,
        scheduler_id: row.get(9)?,
        state: JobState::parse(&state)
            .ok_or_else(|| bad(10, format!("unknown state {state:?}")))?,
        failure_class: row
            .get::<_, Option<String>>(11)?
            .as_deref()
            .and_then(FailureClass::parse),
        failure: row.get(12)?,
        processed: row.get(13)?,
        batch: batch.map(|b| (b, batch_index.unwrap_or(0).max(0) as u64)),
        submitted_ms: row.get::<_, i64>(16)? as u64,
        updated_ms: row.get::<_, i64>(17)? as u64,
        finished_ms: row.get::<_, Option<i64>>(18)?.map(|v| v as u64),
        // An unreadable spec is as good as none: the host name is still there.
        reach: row
            .get::<_, Option<String>>(19)?
            .and_then(|t| Reach::from_json(&t).ok()),
    })
}

/// Run `f` again while SQLite says busy/locked (on top of its busy timeout), for up to
/// two minutes.
fn retry_busy<T>(mut f: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(5);
    loop {
        match f() {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) && started.elapsed() < Duration::from_secs(120) =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(200));
            }
            other => return other,
        }
    }
}

fn store_error(path: &Path, action: &str, e: &dyn std::fmt::Display) -> JobError {
    JobError::Store {
        path: path.display().to_string(),
        action: action.to_string(),
        detail: e.to_string(),
        hint: "check that the file is writable and not on a network file system (SQLite WAL needs local \
               locking); set SREMOTE_JOBS_DB to use another file"
            .into(),
    }
}
