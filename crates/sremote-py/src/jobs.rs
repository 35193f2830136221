//! Detached jobs from Python: the native half of `sremote.Job` / `Client.submit` (the
//! Python half, ExPyRe's API, is `python/sremote/jobs.py`). A binding over `sremote-jobs`:
//! the same SQLite store as `sremote submit` / `sremote jobs …` (`$SREMOTE_JOBS_DB`, else
//! `~/.local/share/sremote/jobs.sqlite3`), the same identity (reattach) and schedulers.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use pyo3::exceptions::{PyTimeoutError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use serde_json::Value;
use sremote_core::Connector;
use sremote_core::protocol::ShippedModule;
use sremote_hosts::config::{HostSpec, SchedulerKind};
use sremote_jobs::JobError as CoreJobError;
use sremote_jobs::units::{parse_duration, parse_size};
use sremote_jobs::{
    HostConfig, Job, JobFilter, JobRecord, JobState, JobStatus, JobStore, JobsExt, Partition,
    Resources, Scheduler,
};

use crate::client::Client;
use crate::errors::{SremoteError, UsageError};
use crate::runtime;
use crate::values::{Arg, Returned, to_arg};

pyo3::create_exception!(
    sremote,
    JobError,
    SremoteError,
    "A job operation failed: the job store, the batch system, or the job's directory on the host. `.job_id`, `.host` when known."
);
pyo3::create_exception!(
    sremote,
    JobDiedError,
    JobError,
    "The job ended without a result. `.failure_class` (walltime, memory, node_failure, preempted, cancelled, killed, crashed, vanished, lost, other), `.reason`, `.job_id`, `.host`."
);
pyo3::create_exception!(
    sremote,
    JobCancelledError,
    JobError,
    "The job was cancelled (by this client or another one using the same job store). `.job_id`, `.host`."
);

/// ExPyRe's resource keys (and two of sremote's), as `resources=` accepts them.
const RESOURCE_KEYS: &str = "max_time, num_nodes, num_cores, partitions, max_mem, gpus, header";

type CoreJob = Job<Arc<dyn Connector>>;

/// Register the job classes, exceptions and functions in the extension module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("JobError", py.get_type::<JobError>())?;
    m.add("JobDiedError", py.get_type::<JobDiedError>())?;
    m.add("JobCancelledError", py.get_type::<JobCancelledError>())?;
    m.add_class::<NativeJob>()?;
    m.add_function(wrap_pyfunction!(submit_job, m)?)?;
    m.add_function(wrap_pyfunction!(open_job, m)?)?;
    m.add_function(wrap_pyfunction!(job_records, m)?)?;
    m.add_function(wrap_pyfunction!(job_store_path, m)?)?;
    Ok(())
}

/// A job error as the matching Python exception.
pub fn job_err(e: CoreJobError) -> PyErr {
    let e = match e {
        CoreJobError::Call(c) => return crate::errors::to_py(c),
        e => e,
    };
    let text = e.to_string();
    let hint = e.hint();
    Python::attach(|py| {
        let with = |err: PyErr, fields: &[(&str, Option<&str>)]| {
            let value = err.value(py);
            for (k, v) in fields {
                let _ = value.setattr(*k, *v);
            }
            err
        };
        let err = match e {
            CoreJobError::NotFinished { .. } => PyTimeoutError::new_err(text),
            CoreJobError::Usage(_) => UsageError::new_err(text),
            CoreJobError::Died {
                id,
                host,
                class,
                reason,
            } => with(
                JobDiedError::new_err(text),
                &[
                    ("job_id", Some(&id)),
                    ("host", Some(&host)),
                    ("failure_class", Some(class.as_str())),
                    ("reason", Some(&reason)),
                ],
            ),
            CoreJobError::Cancelled { id, host } => with(
                JobCancelledError::new_err(text),
                &[("job_id", Some(&id)), ("host", Some(&host))],
            ),
            CoreJobError::NotFound { id, .. } => with(
                JobError::new_err(text),
                &[("job_id", Some(&id)), ("host", None)],
            ),
            CoreJobError::Remote { host, .. } => with(
                JobError::new_err(text),
                &[("job_id", None), ("host", Some(&host))],
            ),
            _ => with(JobError::new_err(text), &[("job_id", None), ("host", None)]),
        };
        with(err, &[("hint", hint.as_deref())])
    })
}

/// The store at `path` (default: the CLI's), opened once per path and process.
fn store(path: Option<&str>) -> PyResult<JobStore> {
    static STORES: OnceLock<Mutex<HashMap<PathBuf, JobStore>>> = OnceLock::new();
    let path = path
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(JobStore::default_path);
    let mut stores = STORES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(s) = stores.get(&path) {
        return Ok(s.clone());
    }
    let s = JobStore::open(&path).map_err(job_err)?;
    stores.insert(path, s.clone());
    Ok(s)
}

/// `scheduler=`: a name, else the host's `scheduler` in the hosts config, else direct.
fn scheduler_of(name: Option<&str>, spec: &HostSpec) -> PyResult<Scheduler> {
    Ok(match name.map(str::to_ascii_lowercase).as_deref() {
        Some("slurm") => Scheduler::Slurm,
        Some("sge") => Scheduler::Sge,
        Some("pbs") => Scheduler::Pbs,
        Some("direct") => Scheduler::Direct,
        Some(other) => {
            return Err(PyValueError::new_err(format!(
                "scheduler={other:?}: use 'slurm', 'sge', 'pbs', 'direct' or None (the host's \
                 `scheduler` in the hosts config, else direct)"
            )));
        }
        None => match spec.scheduler {
            Some(SchedulerKind::Slurm) => Scheduler::Slurm,
            Some(SchedulerKind::Sge) => Scheduler::Sge,
            Some(SchedulerKind::Pbs) => Scheduler::Pbs,
            Some(SchedulerKind::Direct) | None => Scheduler::Direct,
        },
    })
}

/// The host's `partitions` and `sge_pe` from the hosts config, as the CLI reads them.
fn host_config(spec: &HostSpec) -> PyResult<HostConfig> {
    let bad = |p: &str, key: &str, value: &str, form: &str| {
        PyValueError::new_err(format!(
            "hosts config: host {}: partition {p:?}: {key} = {value:?} is not {form} — fix \
             [hosts.{}] in the config file",
            spec.name, spec.name
        ))
    };
    let mut partitions = Vec::new();
    for p in &spec.partitions {
        let max_time = match p.max_time.as_deref() {
            None => None,
            Some(t) if sremote_jobs::units::is_unlimited(t) => None,
            Some(t) => Some(
                parse_duration(t)
                    .map_err(|_| bad(&p.name, "max_time", t, "a duration (e.g. 30m, 12h)"))?,
            ),
        };
        let max_memory = match p.max_memory.as_deref() {
            None => None,
            Some(m) if sremote_jobs::units::is_unlimited(m) => None,
            Some(m) => Some(
                parse_size(m).map_err(|_| bad(&p.name, "max_memory", m, "a size (e.g. 64G)"))?,
            ),
        };
        partitions.push(Partition {
            name: p.name.clone(),
            cores: p.cores.unwrap_or(u32::MAX),
            max_time,
            max_memory,
            gpus: p.gpus.unwrap_or(0),
        });
    }
    Ok(HostConfig {
        partitions,
        sge_pe: spec.sge_pe.clone(),
    })
}

/// `resources=` (ExPyRe's keys) as `Resources`, and the partitions it allows.
fn resources_of(d: Option<&Bound<'_, PyDict>>) -> PyResult<(Resources, Vec<String>)> {
    let mut r = Resources::default();
    let mut allowed = Vec::new();
    let Some(d) = d else {
        return Ok((r, allowed));
    };
    let mut total_cores: Option<u32> = None;
    for (k, v) in d.iter() {
        let key: String = k
            .extract()
            .map_err(|_| PyTypeError::new_err("resources: keys must be str"))?;
        let bad = |form: &str| {
            PyValueError::new_err(format!(
                "resources[{key:?}] = {}: expected {form}",
                v.repr().map(|r| r.to_string()).unwrap_or_default()
            ))
        };
        let count = || match v.extract::<u32>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(bad("a whole number of at least 1")),
        };
        match key.as_str() {
            "max_time" => r.time = Some(duration_value(&v).map_err(|e| bad(&e))?),
            "num_nodes" => r.nodes = Some(count()?),
            "num_cores" => total_cores = Some(count()?),
            "gpus" => {
                r.gpus = Some(
                    v.extract::<u32>()
                        .map_err(|_| bad("a whole number of GPUs per node"))?,
                )
            }
            "max_mem" => r.memory = Some(size_value(&v).map_err(|e| bad(&e))?),
            "partitions" => {
                allowed = strings(&v).ok_or_else(|| bad("a partition name or a list of them"))?;
                if allowed.iter().any(|p| p.trim().is_empty()) || allowed.is_empty() {
                    return Err(bad("partition names that are not empty"));
                }
            }
            "header" => {
                r.extra_header = strings(&v)
                    .ok_or_else(|| bad("a batch-script header line or a list of them"))?;
            }
            other => {
                return Err(PyValueError::new_err(format!(
                    "resources: unknown key {other:?}; the keys are {RESOURCE_KEYS} (ExPyRe's names)"
                )));
            }
        }
    }
    if let Some(total) = total_cores {
        // ExPyRe's num_cores is the job's total: spread over num_nodes.
        r.cores_per_node = Some(total.div_ceil(r.nodes.unwrap_or(1)));
    }
    Ok((r, allowed))
}

/// A duration: `'1h'`, `'30m'`, `'1:30:00'` or seconds; `Err` says what was expected.
fn duration_value(v: &Bound<'_, PyAny>) -> Result<Duration, String> {
    const FORM: &str = "a duration: '1h', '30m', '1:30:00' or seconds";
    if let Ok(s) = v.extract::<String>() {
        parse_duration(&s)
    } else if let Ok(secs) = v.extract::<f64>() {
        Duration::try_from_secs_f64(secs).map_err(|_| FORM.to_string())
    } else {
        Err(FORM.to_string())
    }
}

/// A size: `'4G'`, `'512MB'` or bytes; `Err` says what was expected.
fn size_value(v: &Bound<'_, PyAny>) -> Result<u64, String> {
    if let Ok(s) = v.extract::<String>() {
        parse_size(&s)
    } else {
        v.extract::<u64>()
            .map_err(|_| "a size: '4G', '512MB' or bytes".to_string())
    }
}

/// A string or a list of strings.
fn strings(v: &Bound<'_, PyAny>) -> Option<Vec<String>> {
    match v.extract::<String>() {
        Ok(s) => Some(vec![s]),
        Err(_) => v.extract::<Vec<String>>().ok(),
    }
}

/// Apply `partitions=`: one name is used as given; several restrict the host's known
/// partitions to those (the smallest that fits is chosen), or go to the batch system as a
/// list (`a,b`: Slurm and Grid Engine take the first that can run the job) when none of
/// them is known.
fn apply_partitions(r: &mut Resources, config: &mut HostConfig, allowed: Vec<String>) {
    match allowed.len() {
        0 => {}
        1 => r.partition = allowed.into_iter().next(),
        _ => {
            let known: Vec<Partition> = config
                .partitions
                .iter()
                .filter(|p| allowed.contains(&p.name))
                .cloned()
                .collect();
            if known.is_empty() {
                r.partition = Some(allowed.join(","));
            } else {
                config.partitions = known;
            }
        }
    }
}

fn unix_seconds(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

fn record_dict<'py>(py: Python<'py>, r: &JobRecord) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("id", &r.id)?;
    d.set_item("host", r.destination.as_deref().unwrap_or(&r.host))?;
    d.set_item("connection", &r.host)?;
    d.set_item("state", r.state.as_str())?;
    d.set_item("name", &r.name)?;
    d.set_item("module", &r.request.module)?;
    d.set_item("function", &r.request.function)?;
    d.set_item("scheduler", r.scheduler.as_str())?;
    d.set_item("scheduler_id", &r.scheduler_id)?;
    d.set_item("partition", &r.resources.partition)?;
    d.set_item("remote_dir", &r.remote_dir)?;
    d.set_item("failure_class", r.failure_class.map(|c| c.as_str()))?;
    d.set_item("failure", &r.failure)?;
    d.set_item("processed", r.processed)?;
    d.set_item("submitted", unix_seconds(r.submitted_ms))?;
    d.set_item("finished", r.finished_ms.map(unix_seconds))?;
    Ok(d)
}

fn status_dict<'py>(py: Python<'py>, st: &JobStatus) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("state", st.state.as_str())?;
    d.set_item("terminal", st.state.is_terminal())?;
    d.set_item("failure_class", st.failure.as_ref().map(|f| f.0.as_str()))?;
    d.set_item("failure", st.failure.as_ref().map(|f| f.1.as_str()))?;
    d.set_item("scheduler", &st.scheduler)?;
    d.set_item("log_bytes", st.log_bytes)?;
    d.set_item("ran_on", &st.ran_on)?;
    Ok(d)
}

/// A job as the extension sees it; `sremote.Job` (jobs.py) wraps it.
#[pyclass(module = "sremote._sremote", name = "NativeJob", frozen)]
pub struct NativeJob {
    job: CoreJob,
    store: JobStore,
}

#[pymethods]
impl NativeJob {
    /// The job id (also its directory's name on the host).
    #[getter]
    fn id(&self) -> String {
        self.job.id()
    }

    /// The host as the job was submitted to (a configured name or destination).
    #[getter]
    fn host(&self) -> String {
        let r = self.job.record();
        r.destination.unwrap_or(r.host)
    }

    /// Whether `submit` found this call submitted before and reattached to it.
    #[getter]
    fn reattached(&self) -> bool {
        self.job.reattached()
    }

    /// The store's record as it is now (another process may have changed it): id, host,
    /// state, name, module, function, scheduler, …
    fn record<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let r = self.store.get(&self.job.id()).map_err(job_err)?;
        record_dict(py, &r)
    }

    /// Ask the host (and its batch system) where the job is.
    fn status<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let job = self.job.clone();
        let st = runtime::wait_all(py, async move { job.status().await })?.map_err(job_err)?;
        status_dict(py, &st)
    }

    /// The value and the response's own output, once the job is over (waits otherwise).
    fn result<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let job = self.job.clone();
        let out = runtime::wait_all(py, async move { job.result::<Returned>().await })?
            .map_err(job_err)?;
        let value = out.value.into_python(py)?;
        PyTuple::new(
            py,
            [
                value.into_bound(py),
                PyString::new(py, &out.stdout).into_any(),
                PyString::new(py, &out.stderr).into_any(),
            ],
        )
    }

    /// Log bytes from `offset` on (at most 4 MiB): `(bytes, next_offset)`.
    fn log<'py>(&self, py: Python<'py>, offset: u64) -> PyResult<Bound<'py, PyTuple>> {
        let job = self.job.clone();
        let chunk =
            runtime::wait_all(py, async move { job.logs(offset).await })?.map_err(job_err)?;
        PyTuple::new(
            py,
            [
                PyBytes::new(py, &chunk.data).into_any(),
                chunk.next.into_pyobject(py)?.into_any(),
            ],
        )
    }

    /// Mark the result handled (`sremote jobs rm --processed` removes such jobs).
    fn mark_processed(&self) -> PyResult<()> {
        self.job.mark_processed().map_err(job_err)
    }

    /// Cancel: SIGTERM, SIGKILL after `grace` seconds, and the batch system's cancel.
    #[pyo3(signature = (grace=10.0))]
    fn cancel<'py>(&self, py: Python<'py>, grace: f64) -> PyResult<Bound<'py, PyDict>> {
        let grace = Duration::try_from_secs_f64(grace)
            .map_err(|e| PyValueError::new_err(format!("grace={grace}: {e}")))?;
        let job = self.job.clone();
        let st = runtime::wait_all(py, async move { job.cancel_with_grace(grace).await })?
            .map_err(job_err)?;
        status_dict(py, &st)
    }

    /// Remove the job's directory on the host and its record (cancel a running job first).
    fn clean(&self, py: Python<'_>) -> PyResult<()> {
        let job = self.job.clone();
        runtime::wait_all(py, async move { job.clean().await })?.map_err(job_err)
    }

    fn __repr__(&self) -> String {
        let r = self.job.record();
        format!(
            "<NativeJob {} {}.{} on {} ({})>",
            r.id,
            r.request.module,
            r.request.function,
            r.destination.as_deref().unwrap_or(&r.host),
            r.state
        )
    }
}

/// Submit `module.function(*args, **kwargs)` as a job (see `Client.submit` in jobs.py).
#[pyfunction]
#[pyo3(signature = (client, module, function, args, kwargs=None, code=Vec::new(),
                    resources=None, scheduler=None, name=None, files=Vec::new(), force=false,
                    store_path=None))]
#[expect(
    clippy::too_many_arguments,
    reason = "mirrors the Python keyword arguments one to one"
)]
fn submit_job(
    py: Python<'_>,
    client: &Bound<'_, Client>,
    module: String,
    function: String,
    args: &Bound<'_, PyAny>,
    kwargs: Option<&Bound<'_, PyDict>>,
    code: Vec<(String, String)>,
    resources: Option<&Bound<'_, PyDict>>,
    scheduler: Option<String>,
    name: Option<String>,
    files: Vec<(PathBuf, String)>,
    force: bool,
    store_path: Option<String>,
) -> PyResult<NativeJob> {
    let c = client.get();
    let core = c.live()?.clone();
    let spec = c.spec.clone();
    let scheduler = scheduler_of(scheduler.as_deref(), &spec)?;
    let (mut resources, allowed) = resources_of(resources)?;
    let mut config = match scheduler {
        Scheduler::Direct => HostConfig::default(),
        _ => host_config(&spec)?,
    };
    let (call_args, call_kwargs) = call_arguments(args, kwargs)?;
    let modules: Vec<ShippedModule> = code
        .into_iter()
        .map(|(n, source)| ShippedModule::new(n, source))
        .collect();
    let store = store(store_path.as_deref())?;
    let keep = store.clone();
    // How the CLI (or another program) reaches this host again: the connection's own spec,
    // and the hosts-config entry it came from (`$SREMOTE_CONFIG` or the default file).
    let hosts_config = std::env::var_os("SREMOTE_CONFIG")
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from);
    let reach =
        sremote_hosts::connect::reach_of(&spec, core.connector().as_ref(), hosts_config.as_deref());
    let fut = async move {
        if scheduler == Scheduler::Slurm && allowed.len() != 1 && config.partitions.is_empty() {
            // No partitions configured: the smallest that fits from sinfo, as the CLI does.
            if let Ok(found) = core.discover_host_config(scheduler).await {
                config.partitions = found.partitions;
            }
        }
        apply_partitions(&mut resources, &mut config, allowed);
        let mut call = core.call::<Value>(&module, &function);
        for a in call_args {
            call = call.arg(a);
        }
        for (k, v) in call_kwargs {
            call = call.kwarg(k, v);
        }
        let mut submit = core
            .submit(call)
            .code(modules)
            .scheduler(scheduler)
            .resources(resources)
            .host_config(config)
            .force(force)
            .store(store.clone())
            .destination(&spec.name)
            .reach(reach);
        for (path, remote) in files {
            submit = submit.file(path, remote);
        }
        if let Some(n) = name {
            submit = submit.name(n);
        }
        submit.await
    };
    let job = runtime::wait_all(py, fut)?.map_err(job_err)?;
    Ok(NativeJob { job, store: keep })
}

/// The call's positional and keyword arguments, converted while the GIL is held.
#[expect(
    clippy::type_complexity,
    reason = "a pair of argument lists, used once"
)]
fn call_arguments(
    args: &Bound<'_, PyAny>,
    kwargs: Option<&Bound<'_, PyDict>>,
) -> PyResult<(Vec<Arg>, Vec<(String, Arg)>)> {
    let mut call_args: Vec<Arg> = Vec::new();
    for (i, a) in args.try_iter()?.enumerate() {
        call_args.push(to_arg(&a?, &format!("argument {}", i + 1))?);
    }
    let mut call_kwargs: Vec<(String, Arg)> = Vec::new();
    if let Some(kw) = kwargs {
        for (k, v) in kw.iter() {
            let key: String = k
                .extract()
                .map_err(|_| PyTypeError::new_err("kwargs: keys must be str"))?;
            let arg = to_arg(&v, &format!("keyword argument {key:?}"))?;
            call_kwargs.push((key, arg));
        }
    }
    Ok((call_args, call_kwargs))
}

/// The job `id` of the store, reached through `client`.
#[pyfunction]
#[pyo3(signature = (client, id, store_path=None))]
fn open_job(
    client: &Bound<'_, Client>,
    id: &str,
    store_path: Option<String>,
) -> PyResult<NativeJob> {
    let core = client.get().live()?.clone();
    let store = store(store_path.as_deref())?;
    let job = core.job(id, Some(&store)).map_err(job_err)?;
    Ok(NativeJob { job, store })
}

/// The store's records (oldest first): all, or those of `host` / in `state`; `id` picks one.
#[pyfunction]
#[pyo3(signature = (host=None, state=None, id=None, store_path=None))]
fn job_records<'py>(
    py: Python<'py>,
    host: Option<String>,
    state: Option<String>,
    id: Option<String>,
    store_path: Option<String>,
) -> PyResult<Bound<'py, PyList>> {
    let store = store(store_path.as_deref())?;
    let records = match id {
        Some(id) => vec![store.get(&id).map_err(job_err)?],
        None => {
            let state = match state.as_deref() {
                None => None,
                Some(s) => Some(JobState::parse(s).ok_or_else(|| {
                    PyValueError::new_err(format!(
                        "state={s:?}: use submitting, queued, running, succeeded, failed, cancelled or died"
                    ))
                })?),
            };
            let filter = JobFilter {
                host,
                state,
                ..Default::default()
            };
            store.list(&filter).map_err(job_err)?
        }
    };
    let list = PyList::empty(py);
    for r in &records {
        list.append(record_dict(py, r)?)?;
    }
    Ok(list)
}

/// The SQLite file of the store (`store_path`, else the default one the CLI uses).
#[pyfunction]
#[pyo3(signature = (store_path=None))]
fn job_store_path(store_path: Option<String>) -> PyResult<String> {
    Ok(store(store_path.as_deref())?.path().display().to_string())
}
