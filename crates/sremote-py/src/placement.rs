//! `sremote.Client("@lab", needs={"gpu_mem": "1.5G", "disk": "3G"})`: the pick happens at
//! connect — the pool's hosts are probed at once and the best that fits is connected
//! (see `sremote_hosts::place`).

use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use sremote_core::Error;
use sremote_hosts::config::Config;
use sremote_hosts::connect::{self, NewtAuth};
use sremote_hosts::needs::Needs;
use sremote_hosts::place::{self, DEFAULT_CACHE, DEFAULT_DEADLINE, Placement};

use crate::errors::to_py;
use crate::runtime;

/// `needs=` as a dict of need → value (`{"gpu_mem": "1.5G", "cpus": 8, "module":
/// ["numpy", "torch"]}`); keys as for `--needs` (`_` or `-`).
pub(crate) fn parse(needs: &Bound<'_, PyDict>) -> PyResult<Needs> {
    let mut out = Needs::default();
    for (k, v) in needs.iter() {
        let key: String = k.extract()?;
        let values: Vec<Bound<'_, PyAny>> = match v.cast::<PyList>() {
            Ok(list) => list.iter().collect(),
            Err(_) => vec![v],
        };
        for value in values {
            let text = value.str()?.to_string();
            out.add(&key, &text).map_err(to_py)?;
        }
    }
    Ok(out)
}

/// The hosts a pool names: `@group`, `a,b,c`, or one host.
fn members(cfg: &Config, pool: &str) -> Result<Vec<String>, Error> {
    if let Some(group) = pool.strip_prefix('@') {
        return cfg.group_members(group);
    }
    Ok(pool
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect())
}

/// Probe the pool's hosts and choose one: its name and the placement.
pub(crate) fn choose(
    py: Python<'_>,
    pool: &str,
    needs: &Needs,
    cfg: &Config,
    ssh_config: Option<&str>,
) -> PyResult<Placement> {
    let names = members(cfg, pool).map_err(to_py)?;
    let hosts: Vec<(String, Vec<String>)> = names
        .iter()
        .map(|n| (n.clone(), cfg.host(n).labels))
        .collect();
    let specs: Vec<_> = names.iter().map(|n| cfg.host(n)).collect();
    let ssh_config = ssh_config.map(std::path::PathBuf::from);
    let probe = move |name: String| {
        let spec = specs.iter().find(|s| s.name == name).cloned();
        let ssh_config = ssh_config.clone();
        let needs = needs.clone();
        async move {
            let spec = spec.ok_or_else(|| Error::Usage(format!("{name}: not in the pool")))?;
            let conn =
                connect::connect(&spec, ssh_config.as_deref(), &NewtAuth::from_env()).await?;
            place::probe_host(&conn.client(), &needs, &spec.labels).await
        }
    };
    let fut = place::place(&hosts, needs, DEFAULT_DEADLINE, cache(), probe);
    runtime::wait_all(py, fut)?.map_err(|e| to_py(Error::usage(e.message, e.hint)))
}

/// `$SREMOTE_PROBE_CACHE` seconds, as for the command line (default 30).
fn cache() -> Duration {
    std::env::var("SREMOTE_PROBE_CACHE")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .unwrap_or(DEFAULT_CACHE)
}
