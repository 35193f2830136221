//! What a piece of work needs of a host (`--needs gpu-mem=1.5G,disk=3G`), and whether a
//! host's probe answer (`sys.probe`) meets it.
//!
//! | key | meaning |
//! |---|---|
//! | `cpus` | at least this many CPUs |
//! | `mem` | free (available) memory, a size |
//! | `disk` | free space of the home directory's file system, a size |
//! | `gpu` | at least this many GPUs with enough free memory (`gpu-mem`, else any) |
//! | `gpu-mem` | free memory on one GPU, a size |
//! | `load` | 1-minute load per CPU at most this (`0.5`) |
//! | `python` | python3 at least this version (`3.10`) |
//! | `module` | a Python module the host can import (repeatable) |
//! | `label` | a label of the host in the hosts config (`labels = ["a100"]`; repeatable) |
//!
//! Sizes take binary suffixes `K`, `M`, `G`, `T` (optionally `B` or `iB`): `1.5G` is
//! 1.5 × 2³⁰ bytes, as for Slurm's `--mem`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use sremote_core::Error;
use sremote_core::units::parse_size;

/// The accepted forms, for usage errors.
pub const FORMS: &str = "cpus=N, mem=SIZE, disk=SIZE, gpu=N, gpu-mem=SIZE, load=X (per CPU), \
     python=3.10, module=NAME, label=NAME (SIZE: 512M, 1.5G, 2T)";

/// What the work needs; every field is optional (an empty `Needs` fits every host).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Needs {
    pub cpus: Option<u64>,
    pub mem: Option<u64>,
    pub disk: Option<u64>,
    pub gpu: Option<u64>,
    pub gpu_mem: Option<u64>,
    pub load: Option<f64>,
    pub python: Option<Vec<u32>>,
    pub modules: Vec<String>,
    pub labels: Vec<String>,
}

/// The part of a host's `sys.probe` answer that placement looks at.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    pub cpus: Option<u64>,
    #[serde(default)]
    pub loadavg: Vec<f64>,
    pub mem_available: Option<u64>,
    pub disk_free_home: Option<u64>,
    #[serde(default)]
    pub gpus: Vec<Gpu>,
    pub python3: Option<String>,
}

/// One GPU of a probe answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Gpu {
    pub name: Option<String>,
    pub memory_total: Option<u64>,
    pub memory_free: Option<u64>,
}

/// What is known of a candidate host: its probe, its configured labels and which of the
/// needed modules it can import.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostFacts {
    pub probe: Probe,
    pub labels: Vec<String>,
    pub modules: BTreeMap<String, bool>,
    /// The best round trip of a call, milliseconds.
    pub rtt_ms: f64,
}

/// Whether a host fits, what it lacks, and how much room it leaves.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fit {
    pub fits: bool,
    /// One phrase per unmet need (`gpu-mem: 1.0 GiB free on the best GPU, 1.5 GiB needed`).
    pub lacks: Vec<String>,
    /// Free ÷ needed of the scarcest needed resource (cpus, mem, disk, gpu-mem); infinite
    /// when none of these is needed.
    pub headroom: f64,
    /// The resource that `headroom` is about.
    pub scarcest: Option<String>,
}

fn usage(msg: String) -> Error {
    Error::usage(msg, format!("--needs takes KEY=VALUE,…: {FORMS}"))
}

fn version(text: &str) -> Option<Vec<u32>> {
    let parts: Option<Vec<u32>> = text.trim().split('.').map(|p| p.parse().ok()).collect();
    parts.filter(|p| !p.is_empty() && p.len() <= 3)
}

impl Needs {
    /// Parse `KEY=VALUE,…` (several `--needs` flags: join them with `,` or call
    /// [`add`](Self::add) per pair). Bad keys and values are usage errors naming the
    /// accepted forms.
    pub fn parse(text: &str) -> Result<Needs, Error> {
        let mut needs = Needs::default();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let Some((k, v)) = item.split_once('=') else {
                return Err(usage(format!("{item:?} is not KEY=VALUE")));
            };
            needs.add(k.trim(), v.trim())?;
        }
        Ok(needs)
    }

    /// Add one need (`gpu-mem`, `1.5G`); `_` and `-` are the same in keys.
    pub fn add(&mut self, key: &str, value: &str) -> Result<(), Error> {
        let count = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| usage(format!("{key}={v:?}: give a whole number")))
        };
        let size = |v: &str| parse_size(v).map_err(|e| usage(format!("{key}: {e}")));
        match key.replace('_', "-").to_ascii_lowercase().as_str() {
            "cpus" | "cpu" => self.cpus = Some(count(value)?),
            "mem" | "memory" => self.mem = Some(size(value)?),
            "disk" => self.disk = Some(size(value)?),
            "gpu" | "gpus" => self.gpu = Some(count(value)?),
            "gpu-mem" => self.gpu_mem = Some(size(value)?),
            "load" => {
                let l: f64 = value
                    .parse()
                    .ok()
                    .filter(|l: &f64| l.is_finite() && *l >= 0.0)
                    .ok_or_else(|| usage(format!("load={value:?}: give a number ≥ 0")))?;
                self.load = Some(l);
            }
            "python" => {
                self.python = Some(version(value).ok_or_else(|| {
                    usage(format!("python={value:?}: give a version such as 3.10"))
                })?)
            }
            "module" => self.modules.push(nonempty(key, value)?),
            "label" => self.labels.push(nonempty(key, value)?),
            _ => return Err(usage(format!("unknown need {key:?}"))),
        }
        Ok(())
    }

    /// Nothing is needed.
    pub fn is_empty(&self) -> bool {
        *self == Needs::default()
    }

    /// Whether `facts` meets every need, and the headroom of the scarcest needed resource.
    pub fn check(&self, facts: &HostFacts) -> Fit {
        let p = &facts.probe;
        let mut v = Verdict::default();
        v.at_least("cpus", p.cpus, self.cpus, false);
        v.at_least("mem", p.mem_available, self.mem, true);
        v.at_least("disk", p.disk_free_home, self.disk, true);
        if self.gpu.is_some() || self.gpu_mem.is_some() {
            self.check_gpus(p, &mut v);
        }
        if let Some(max) = self.load {
            let per_cpu = p
                .loadavg
                .first()
                .map(|l| l / p.cpus.unwrap_or(1).max(1) as f64);
            match per_cpu {
                Some(l) if l <= max => {}
                Some(l) => v.lacks(format!("load: {l:.2} per CPU, at most {max} wanted")),
                None => v.lacks("load: unknown on this host".into()),
            }
        }
        if let Some(min) = &self.python {
            let have = p.python3.as_deref().and_then(version);
            match have {
                Some(h) if h >= *min => {}
                _ => v.lacks(format!(
                    "python: {} here, {} needed",
                    p.python3.as_deref().unwrap_or("none"),
                    min.iter().map(u32::to_string).collect::<Vec<_>>().join(".")
                )),
            }
        }
        for m in &self.modules {
            if facts.modules.get(m) != Some(&true) {
                v.lacks(format!("module: {m} cannot be imported"));
            }
        }
        for l in &self.labels {
            if !facts.labels.contains(l) {
                v.lacks(format!("label: not {l}"));
            }
        }
        v.fit()
    }

    /// `gpu=N` (default 1) GPUs with at least `gpu-mem` free each; the headroom is that of
    /// the N-th best GPU.
    fn check_gpus(&self, p: &Probe, v: &mut Verdict) {
        let want = self.gpu.unwrap_or(1);
        let floor = self.gpu_mem.unwrap_or(0);
        let mut free: Vec<u64> = p.gpus.iter().map(|g| g.memory_free.unwrap_or(0)).collect();
        free.sort_unstable_by(|a, b| b.cmp(a));
        let enough = free.iter().filter(|&&f| f >= floor).count() as u64;
        if enough < want {
            let mut msg = format!("gpu: {enough} of {} GPUs", free.len());
            if floor > 0 {
                let best = free.first().copied().unwrap_or(0);
                let _ = write!(msg, " with {} free (best: {})", bytes(floor), bytes(best));
            }
            let _ = write!(msg, ", {want} needed");
            v.lacks(msg);
        } else if floor > 0 {
            // The want-th best GPU is the scarce one.
            let nth = free[(want.max(1) - 1) as usize];
            v.room.push((nth as f64 / floor as f64, "gpu-mem"));
        }
    }
}

/// What a check found so far: the needs not met, and the headroom of each met resource.
#[derive(Default)]
struct Verdict {
    lacks: Vec<String>,
    room: Vec<(f64, &'static str)>,
}

impl Verdict {
    fn lacks(&mut self, why: String) {
        self.lacks.push(why);
    }

    /// At least `need` of `what` (`size`: shown as bytes), when something is needed.
    fn at_least(&mut self, what: &'static str, have: Option<u64>, need: Option<u64>, size: bool) {
        let Some(need) = need else { return };
        let show = |n: u64| if size { bytes(n) } else { n.to_string() };
        match have {
            Some(h) if h >= need => self.room.push((h as f64 / need.max(1) as f64, what)),
            Some(h) => self.lacks(format!("{what}: {} free, {} needed", show(h), show(need))),
            None => self.lacks(format!(
                "{what}: unknown on this host, {} needed",
                show(need)
            )),
        }
    }

    fn fit(self) -> Fit {
        let (headroom, scarcest) = self
            .room
            .iter()
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .map_or((f64::INFINITY, None), |(h, w)| (*h, Some(w.to_string())));
        Fit {
            fits: self.lacks.is_empty(),
            lacks: self.lacks,
            headroom,
            scarcest,
        }
    }
}

impl std::fmt::Display for Needs {
    /// The `--needs` form: `gpu-mem=1.5 GiB,disk=3.0 GiB`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        let mut num = |k: &str, v: Option<u64>| {
            if let Some(v) = v {
                parts.push(format!("{k}={v}"));
            }
        };
        num("cpus", self.cpus);
        num("gpu", self.gpu);
        for (k, v) in [
            ("mem", self.mem),
            ("disk", self.disk),
            ("gpu-mem", self.gpu_mem),
        ] {
            if let Some(v) = v {
                parts.push(format!("{k}={}", bytes(v)));
            }
        }
        if let Some(l) = self.load {
            parts.push(format!("load={l}"));
        }
        if let Some(p) = &self.python {
            let v: Vec<String> = p.iter().map(u32::to_string).collect();
            parts.push(format!("python={}", v.join(".")));
        }
        parts.extend(self.modules.iter().map(|m| format!("module={m}")));
        parts.extend(self.labels.iter().map(|l| format!("label={l}")));
        f.write_str(&parts.join(","))
    }
}

fn nonempty(key: &str, value: &str) -> Result<String, Error> {
    match value.is_empty() {
        true => Err(usage(format!("{key}= needs a name"))),
        false => Ok(value.to_string()),
    }
}

/// `1.5 GiB`, `512 MiB`, `900 B`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    match u {
        0 => format!("{n} B"),
        _ => format!("{v:.1} {}", UNITS[u]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(gpus: &[u64], disk: u64) -> HostFacts {
        HostFacts {
            probe: Probe {
                cpus: Some(8),
                loadavg: vec![2.0],
                mem_available: Some(16 << 30),
                disk_free_home: Some(disk),
                gpus: gpus
                    .iter()
                    .map(|&f| Gpu {
                        name: Some("T4".into()),
                        memory_total: Some(16 << 30),
                        memory_free: Some(f),
                    })
                    .collect(),
                python3: Some("3.11.2".into()),
            },
            labels: vec!["a100".into()],
            modules: [("numpy".to_string(), true)].into(),
            rtt_ms: 1.0,
        }
    }

    #[test]
    fn parsing_and_usage_errors() {
        let n = Needs::parse(
            "gpu-mem=1.5G, disk=3G,cpus=4,load=0.5,python=3.10,module=numpy,label=a100",
        )
        .unwrap();
        assert_eq!(n.gpu_mem, Some(3 << 29));
        assert_eq!(n.disk, Some(3 << 30));
        assert_eq!((n.cpus, n.load), (Some(4), Some(0.5)));
        assert_eq!(n.python, Some(vec![3, 10]));
        assert_eq!(Needs::parse("gpu_mem=1G").unwrap().gpu_mem, Some(1 << 30));
        for bad in [
            "gpu",
            "colour=red",
            "mem=lots",
            "cpus=-1",
            "load=x",
            "python=three",
            "module=",
        ] {
            let e = Needs::parse(bad).unwrap_err().to_string();
            assert!(e.contains("gpu-mem=SIZE"), "{bad}: {e}");
        }
        assert!(Needs::parse("").unwrap().is_empty());
    }

    #[test]
    fn fits_and_what_a_host_lacks() {
        let n = Needs::parse("gpu-mem=1.5G,disk=3G").unwrap();
        let ok = n.check(&facts(&[1 << 30, 8 << 30], 10 << 30));
        assert!(ok.fits, "{ok:?}");
        assert_eq!(ok.scarcest.as_deref(), Some("disk"));
        assert!((ok.headroom - 10.0 / 3.0).abs() < 1e-9);
        let no = n.check(&facts(&[1 << 30], 1 << 30));
        assert!(!no.fits);
        assert_eq!(no.lacks.len(), 2, "{no:?}");
        assert!(no.lacks[0].starts_with("disk: 1.0 GiB free"), "{no:?}");
        assert!(no.lacks[1].contains("0 of 1 GPUs"), "{no:?}");
        let none = n.check(&facts(&[], 10 << 30));
        assert!(none.lacks[0].contains("0 of 0 GPUs"), "{none:?}");

        let two = Needs::parse("gpu=2,gpu-mem=4G").unwrap();
        assert!(!two.check(&facts(&[8 << 30, 2 << 30], 1)).fits);
        assert!(two.check(&facts(&[8 << 30, 5 << 30], 1)).fits);

        let misc = Needs::parse("load=0.1,python=3.12,module=torch,label=h100").unwrap();
        let f = misc.check(&facts(&[], 1));
        assert_eq!(f.lacks.len(), 4, "{f:?}");
        assert!(f.headroom.is_infinite());
        let fine = Needs::parse("load=0.5,python=3.11,module=numpy,label=a100").unwrap();
        assert!(fine.check(&facts(&[], 1)).fits);
    }
}
