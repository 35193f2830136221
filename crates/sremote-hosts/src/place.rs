//! Choosing the host for a piece of work from a pool: probe the candidates at once (a
//! host that does not answer within the deadline is skipped, not waited for), keep those
//! that fit the [`Needs`], and take the best by a documented score.
//!
//! **The score.** Among the hosts that fit: the most headroom of the scarcest needed
//! resource (free ÷ needed of cpus, mem, disk or gpu-mem, whichever is smallest on that
//! host); then the lowest 1-minute load per CPU; then the shortest round trip. With no
//! resource needed (only labels, modules, python, load), load and round trip decide.
//!
//! Probe answers are cached in `$XDG_CACHE_HOME/sremote/probes.json` (else
//! `~/.cache/sremote/probes.json`) for a short time ([`DEFAULT_CACHE`]; `probe_cache` in
//! seconds to change it, 0 to turn it off), so a loop of commands does not probe every
//! time.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sremote_core::Error;
use sremote_core::protocol::ShippedModule;

use crate::connect::Client;
use crate::needs::{Fit, HostFacts, Needs, Probe};

/// How long a probe answer is reused.
pub const DEFAULT_CACHE: Duration = Duration::from_secs(30);
/// How long a candidate may take to answer.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(10);

/// One candidate's figures and verdict, for messages and `--json`'s `placement`.
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    /// The name given (config name or destination).
    pub host: String,
    /// Its facts, when it answered.
    pub facts: Option<HostFacts>,
    /// Whether it fits, what it lacks; `None` when it did not answer.
    pub fit: Option<Fit>,
    /// Why it has no facts (did not answer in time, could not connect).
    pub error: Option<String>,
    /// The facts came from the cache.
    pub cached: bool,
}

/// The pick: the chosen host, why, and every candidate.
#[derive(Debug, Clone, Serialize)]
pub struct Placement {
    pub chosen: String,
    pub reason: String,
    pub needs: Needs,
    pub candidates: Vec<Candidate>,
}

impl Placement {
    /// The `placement` object of `--json`.
    pub fn to_json(&self) -> Value {
        json!({"placement": self})
    }
}

/// No candidate fits: the message (one line per host with what it lacks, then what to
/// do) and every candidate's verdict.
#[derive(Debug, Clone)]
pub struct NoFit {
    pub message: String,
    /// What to do about it.
    pub hint: String,
    pub candidates: Vec<Candidate>,
}

impl std::fmt::Display for NoFit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} — {}", self.message, self.hint)
    }
}

impl std::error::Error for NoFit {}

/// Python run on the host for `module=` needs: which of the names can be imported
/// (found, not imported).
const IMPORTABLE_PY: &str = r#"import importlib.util


def importable(names):
    out = {}
    for n in names:
        try:
            out[n] = importlib.util.find_spec(n) is not None
        except (ImportError, ValueError):
            out[n] = False
    return out
"#;

/// Which of `names` the host's Python can import (found, not imported: nothing of theirs
/// runs) — one call with a small shipped module.
pub async fn importable(
    client: &Client,
    names: &[String],
) -> Result<BTreeMap<String, bool>, Error> {
    Ok(client
        .call("sremote_place", "importable")
        .arg(names)
        .code([ShippedModule::new("sremote_place", IMPORTABLE_PY)])
        .await?
        .value)
}

/// Probe one host for placement: `sys.probe`, the best of three round trips, and the
/// needed modules (one shipped call).
pub async fn probe_host(
    client: &Client,
    needs: &Needs,
    labels: &[String],
) -> Result<HostFacts, Error> {
    let answer: Value = client.call("sys", "probe").await?.value;
    let probe: Probe = serde_json::from_value(answer).unwrap_or_default();
    let mut best = Duration::MAX;
    for _ in 0..3 {
        let t = std::time::Instant::now();
        client.call::<Value>("sys", "version").await?;
        best = best.min(t.elapsed());
    }
    let mut modules = BTreeMap::new();
    if !needs.modules.is_empty() {
        modules = importable(client, &needs.modules).await.unwrap_or_default();
    }
    Ok(HostFacts {
        probe,
        labels: labels.to_vec(),
        modules,
        rtt_ms: best.as_secs_f64() * 1e3,
    })
}

/// Probe every candidate at once (each within `deadline`), reusing cached answers, and
/// choose. `hosts` are the candidates' names with their configured labels; `probe(name)`
/// connects to one and calls [`probe_host`]; `cache` is the reuse time (zero: always
/// probe).
pub async fn place<F, Fut>(
    hosts: &[(String, Vec<String>)],
    needs: &Needs,
    deadline: Duration,
    cache: Duration,
    probe: F,
) -> Result<Placement, NoFit>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<HostFacts, Error>> + Send + 'static,
{
    let names: Vec<String> = hosts.iter().map(|(n, _)| n.clone()).collect();
    // Labels come from the config as it is now, never from a cached answer.
    let labelled = |i: usize, mut f: HostFacts| {
        f.labels = hosts[i].1.clone();
        f
    };
    // With the cache off, the file is neither read nor written.
    let mut stored = match cache.is_zero() {
        true => Cache::default(),
        false => Cache::load(),
    };
    let mut tasks = tokio::task::JoinSet::new();
    let mut candidates: Vec<Candidate> = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let key = Cache::key(name, needs);
        if let Some(facts) = stored.get(&key, cache) {
            let facts = labelled(i, facts);
            candidates.push(Candidate {
                host: name.clone(),
                fit: Some(needs.check(&facts)),
                facts: Some(facts),
                error: None,
                cached: true,
            });
            continue;
        }
        let fut = probe(name.clone());
        tasks.spawn(async move { (i, tokio::time::timeout(deadline, fut).await) });
    }
    while let Some(joined) = tasks.join_next().await {
        let Ok((i, answer)) = joined else { continue };
        let name = &names[i];
        let (facts, error) = match answer {
            Ok(Ok(f)) => (Some(labelled(i, f)), None),
            Ok(Err(e)) => (None, Some(e.to_string().replace('\n', " "))),
            Err(_) => (
                None,
                Some(format!("no answer within {deadline:?}: skipped")),
            ),
        };
        if let Some(f) = &facts {
            stored.put(Cache::key(name, needs), f.clone());
        }
        candidates.push(Candidate {
            host: name.clone(),
            fit: facts.as_ref().map(|f| needs.check(f)),
            facts,
            error,
            cached: false,
        });
    }
    if !cache.is_zero() {
        stored.save();
    }
    let order = |c: &Candidate| names.iter().position(|n| *n == c.host);
    candidates.sort_by_key(order);
    choose(needs, candidates)
}

fn load_per_cpu(f: &HostFacts) -> f64 {
    let p = &f.probe;
    p.loadavg
        .first()
        .map_or(f64::MAX, |l| l / p.cpus.unwrap_or(1).max(1) as f64)
}

/// Choose among probed candidates by the score of the module docs.
pub fn choose(needs: &Needs, candidates: Vec<Candidate>) -> Result<Placement, NoFit> {
    let best = candidates
        .iter()
        .filter(|c| c.fit.as_ref().is_some_and(|f| f.fits))
        .max_by(|a, b| {
            let (fa, fb) = (a.fit.as_ref().unwrap(), b.fit.as_ref().unwrap());
            let (xa, xb) = (a.facts.as_ref().unwrap(), b.facts.as_ref().unwrap());
            fa.headroom
                .total_cmp(&fb.headroom)
                .then(load_per_cpu(xb).total_cmp(&load_per_cpu(xa)))
                .then(xb.rtt_ms.total_cmp(&xa.rtt_ms))
        });
    let Some(best) = best else {
        return Err(NoFit {
            message: no_fit(needs, &candidates),
            hint: NO_FIT_HINT.into(),
            candidates,
        });
    };
    let (fit, facts) = (best.fit.as_ref().unwrap(), best.facts.as_ref().unwrap());
    let fitting = candidates
        .iter()
        .filter(|c| c.fit.as_ref().is_some_and(|f| f.fits))
        .count();
    let mut reason = format!("{} of {} hosts fit", fitting, candidates.len());
    if let Some(s) = &fit.scarcest {
        reason.push_str(&format!(
            "; most room for {s} ({:.1}× what is needed)",
            fit.headroom
        ));
    }
    reason.push_str(&format!(
        "; load {:.2} per CPU; round trip {:.1} ms",
        load_per_cpu(facts),
        facts.rtt_ms
    ));
    Ok(Placement {
        chosen: best.host.clone(),
        reason,
        needs: needs.clone(),
        candidates,
    })
}

/// The message when no host fits: one line per host with what it lacks.
fn no_fit(needs: &Needs, candidates: &[Candidate]) -> String {
    let width = candidates.iter().map(|c| c.host.len()).max().unwrap_or(0);
    let mut lines = vec![format!("no host fits --needs {needs}:")];
    for c in candidates {
        let why = match (&c.fit, &c.error) {
            (Some(f), _) if f.fits => "fits".to_string(),
            (Some(f), _) => f.lacks.join("; "),
            (None, Some(e)) => e.clone(),
            (None, None) => "no answer".into(),
        };
        lines.push(format!("  {:width$}  {why}", c.host));
    }
    lines.join("\n")
}

/// What to do when no host fits.
const NO_FIT_HINT: &str = "ask for less, add hosts to the group, or free the resource \
                           (`sremote probe HOST…` shows the figures)";

/// Cached probe answers by host and needs, with the time they were taken.
#[derive(Default, Serialize, Deserialize)]
struct Cache {
    entries: BTreeMap<String, (u64, HostFacts)>,
    #[serde(skip)]
    path: Option<PathBuf>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Cache {
    fn path() -> Option<PathBuf> {
        let env = |k| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        env("XDG_CACHE_HOME")
            .filter(|p| p.is_absolute())
            .or_else(|| env("HOME").map(|h| h.join(".cache")))
            .map(|d| d.join("sremote/probes.json"))
    }

    fn load() -> Cache {
        let path = Cache::path();
        let mut c: Cache = path
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        c.path = path;
        c
    }

    /// Modules are part of the answer, so they are part of the key.
    fn key(host: &str, needs: &Needs) -> String {
        format!("{host}\u{0}{}", needs.modules.join(","))
    }

    fn get(&self, key: &str, ttl: Duration) -> Option<HostFacts> {
        let (at, facts) = self.entries.get(key)?;
        (now_ms().saturating_sub(*at) < ttl.as_millis() as u64).then(|| facts.clone())
    }

    fn put(&mut self, key: String, facts: HostFacts) {
        self.entries.insert(key, (now_ms(), facts));
    }

    /// Written atomically, best effort (a cache that cannot be written only costs a probe).
    fn save(&mut self) {
        let Some(path) = &self.path else { return };
        let horizon = now_ms().saturating_sub(3_600_000);
        self.entries.retain(|_, (at, _)| *at >= horizon);
        let Some(dir) = path.parent() else { return };
        if std::fs::create_dir_all(dir).is_err() {
            return;
        }
        let tmp = dir.join(format!(".probes.{}.tmp", std::process::id()));
        if let Ok(text) = serde_json::to_vec(&self)
            && std::fs::write(&tmp, text).is_ok()
        {
            let _ = std::fs::rename(&tmp, path);
        }
        let _ = std::fs::remove_file(&tmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::needs::Gpu;

    fn cand(host: &str, gpu_free: u64, load: f64, rtt: f64) -> Candidate {
        let facts = HostFacts {
            probe: Probe {
                cpus: Some(4),
                loadavg: vec![load],
                mem_available: Some(8 << 30),
                disk_free_home: Some(100 << 30),
                gpus: vec![Gpu {
                    name: None,
                    memory_total: Some(16 << 30),
                    memory_free: Some(gpu_free),
                }],
                python3: None,
            },
            rtt_ms: rtt,
            ..Default::default()
        };
        Candidate {
            host: host.into(),
            facts: Some(facts),
            fit: None,
            error: None,
            cached: false,
        }
    }

    fn checked(needs: &Needs, mut c: Vec<Candidate>) -> Vec<Candidate> {
        for x in &mut c {
            x.fit = x.facts.as_ref().map(|f| needs.check(f));
        }
        c
    }

    #[test]
    fn the_most_room_of_the_scarcest_resource_wins_then_load_then_rtt() {
        let needs = Needs::parse("gpu-mem=2G").unwrap();
        let c = checked(
            &needs,
            vec![
                cand("a", 3 << 30, 0.1, 1.0),
                cand("b", 12 << 30, 3.0, 9.0),
                cand("c", 1 << 30, 0.0, 0.1),
            ],
        );
        let p = choose(&needs, c).unwrap();
        assert_eq!(p.chosen, "b", "{}", p.reason);
        assert!(
            p.reason
                .starts_with("2 of 3 hosts fit; most room for gpu-mem (6.0×"),
            "{}",
            p.reason
        );

        let needs = Needs::parse("label=x").unwrap();
        let mut c = checked(
            &Needs::default(),
            vec![
                cand("slow", 0, 0.1, 9.0),
                cand("fast", 0, 0.1, 1.0),
                cand("busy", 0, 8.0, 0.1),
            ],
        );
        for x in &mut c {
            x.facts.as_mut().unwrap().labels = vec!["x".into()];
        }
        let c = checked(&needs, c);
        assert_eq!(choose(&needs, c).unwrap().chosen, "fast");
    }

    #[test]
    fn no_fit_lists_what_each_host_lacks() {
        let needs = Needs::parse("gpu-mem=20G").unwrap();
        let mut c = checked(&needs, vec![cand("a", 3 << 30, 0.1, 1.0)]);
        c.push(Candidate {
            host: "gone".into(),
            facts: None,
            fit: None,
            error: Some("no answer within 10s: skipped".into()),
            cached: false,
        });
        let e = choose(&needs, c).unwrap_err().to_string();
        assert!(
            e.contains("a     gpu: 0 of 1 GPUs with 20.0 GiB free"),
            "{e}"
        );
        assert!(e.contains("gone  no answer within 10s"), "{e}");
    }
}
