//! `sremote probe`: which machine has room for my job — cpus, load, free memory and disk,
//! GPUs, endpoint version and round-trip time of every host, as a table or JSON lines.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use serde::Deserialize;
use serde_json::{Value, json};
use sremote_core::Error;

use crate::config::HostSpec;
use crate::fanout;
use crate::hosts::{HostOptions, connect_spec};
use crate::output::{self, bytes};

/// A table of hosts' cpus, load, free memory and disk, GPUs, endpoint and latency.
#[derive(Args, Debug)]
#[command(
    after_help = "Without HOST: every host of the config. Free disk is the file system of the home
directory on the host; RTT is the best of three calls through the endpoint.

Examples:
  sremote probe                         # all configured hosts
  sremote probe @gpu --sort gpu-mem     # the GPU hosts, most free GPU memory first
  sremote probe lab1 lab2 --json        # one JSON object per host
  sremote probe @lab --needs gpu-mem=1.5G,disk=3G   # which hosts fit, and why not

With --needs: every host's verdict (what it lacks), the one `run --needs` would choose
marked *, exit 1 when none fits. Answers are cached for SREMOTE_PROBE_CACHE seconds
(default 30; 0: off); a host silent for SREMOTE_PROBE_TIMEOUT seconds (default 10) is
skipped."
)]
pub struct ProbeArgs {
    /// Hosts: config names, destinations, a,b,c or @group (default: all configured).
    pub hosts: Vec<String>,
    /// Order of the rows (free-* and cpus: most first; load and rtt: least first).
    #[arg(long, value_enum, default_value = "host")]
    pub sort: SortKey,
    /// Tell which hosts have what the work needs (KEY=VALUE,… of cpus, mem, disk, gpu,
    /// gpu-mem, load, python, module, label), and why the others do not.
    #[arg(long, value_name = "KEY=VALUE,…")]
    pub needs: Vec<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum SortKey {
    Host,
    Cpus,
    Load,
    FreeMem,
    FreeDisk,
    Gpus,
    GpuMem,
    Rtt,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct Gpu {
    name: Option<String>,
    memory_total: Option<u64>,
    memory_free: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct Probe {
    cpus: Option<u64>,
    #[serde(default)]
    loadavg: Vec<f64>,
    mem_total: Option<u64>,
    mem_available: Option<u64>,
    disk_free_home: Option<u64>,
    disk_total_home: Option<u64>,
    #[serde(default)]
    gpus: Vec<Gpu>,
}

#[derive(Debug)]
struct Row {
    raw: Value,
    probe: Probe,
    version: String,
    rtt: Duration,
}

impl Row {
    fn gpu_free(&self) -> u64 {
        self.probe.gpus.iter().filter_map(|g| g.memory_free).sum()
    }
    fn load(&self) -> f64 {
        self.probe.loadavg.first().copied().unwrap_or(f64::MAX)
    }
}

fn pct(free: Option<u64>, total: Option<u64>) -> String {
    match (free, total) {
        (Some(f), Some(t)) if t > 0 => {
            format!("{} ({:.0}%)", bytes(f), f as f64 * 100.0 / t as f64)
        }
        (Some(f), _) => bytes(f),
        _ => "-".into(),
    }
}

fn gpus(p: &Probe) -> String {
    if p.gpus.is_empty() {
        return "-".into();
    }
    let name = p.gpus[0].name.clone().unwrap_or_else(|| "GPU".into());
    let free: u64 = p.gpus.iter().filter_map(|g| g.memory_free).sum();
    let total: u64 = p.gpus.iter().filter_map(|g| g.memory_total).sum();
    let mem = if total > 0 {
        format!(" ({} of {} free)", bytes(free), bytes(total))
    } else {
        String::new()
    };
    format!("{}x {name}{mem}", p.gpus.len())
}

pub async fn probe(a: ProbeArgs, opts: Arc<HostOptions>) -> Result<ExitCode, Error> {
    let names: Vec<String> = if a.hosts.is_empty() {
        crate::hostcmd::configured_hosts(&opts, "probe")?
    } else {
        a.hosts.clone()
    };
    let targets = opts.resolve(&names)?;
    if let Some(needs) = crate::placement::parse(&a.needs)? {
        return fits(&targets, &needs, &opts).await;
    }
    let o = opts.clone();
    let results = fanout::map(&targets.hosts, opts.parallel, |spec| {
        probe_host(spec, o.clone())
    })
    .await;
    let mut rows: Vec<(String, Row)> = Vec::new();
    let mut failed = Vec::new();
    for (spec, r) in targets.hosts.iter().zip(results) {
        match r {
            Ok(row) => rows.push((spec.name.clone(), row)),
            Err(e) => failed.push((spec.name.clone(), e)),
        }
    }
    sort(&mut rows, a.sort);
    if opts.json {
        for (host, r) in &rows {
            println!(
                "{}",
                json!({"host": host, "ok": true, "probe": r.raw, "endpoint_version": r.version,
                       "rtt_ms": r.rtt.as_secs_f64() * 1e3})
            );
        }
        for (host, e) in &failed {
            println!(
                "{}",
                json!({"host": host, "ok": false, "error": output::error_json(e)})
            );
        }
    } else {
        print!("{}", probe_table(&rows, &failed));
    }
    Ok(crate::hostcmd::finish_hosts(
        targets.hosts.len(),
        &failed,
        opts.json,
    ))
}

/// Probe one host (`sys.probe`) and measure the best of three round trips.
async fn probe_host(spec: HostSpec, opts: Arc<HostOptions>) -> Result<Row, Error> {
    let client = connect_spec(&spec, &opts).await?.client();
    let out = client.call::<Value>("sys", "probe").await?;
    let probe: Probe = serde_json::from_value(out.value.clone()).unwrap_or_default();
    let mut rtt = Duration::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        client.call::<Value>("sys", "version").await?;
        rtt = rtt.min(t.elapsed());
    }
    Ok(Row {
        raw: out.value,
        probe,
        version: out.meta.endpoint_version.clone(),
        rtt,
    })
}

/// The probe table: a row per host, the unreachable ones last.
fn probe_table(rows: &[(String, Row)], failed: &[(String, Error)]) -> String {
    let header = [
        "HOST",
        "CPUS",
        "LOAD",
        "FREE MEM",
        "FREE DISK",
        "GPUS",
        "ENDPOINT",
        "RTT",
    ];
    let mut table: Vec<Vec<String>> = rows
        .iter()
        .map(|(host, r)| {
            let p = &r.probe;
            vec![
                host.clone(),
                p.cpus.map_or("-".into(), |c| c.to_string()),
                p.loadavg.first().map_or("-".into(), |l| format!("{l:.2}")),
                pct(p.mem_available, p.mem_total),
                pct(p.disk_free_home, p.disk_total_home),
                gpus(p),
                r.version.clone(),
                output::duration(r.rtt),
            ]
        })
        .collect();
    for (host, _) in failed {
        let mut row = vec![host.clone()];
        row.extend(std::iter::repeat_n("-".to_string(), header.len() - 3));
        row.extend(["unreachable".to_string(), "-".to_string()]);
        table.push(row);
    }
    output::table(&header, &table)
}

/// `probe --needs`: each host's verdict, the one that would be chosen marked.
async fn fits(
    targets: &crate::hosts::Targets,
    needs: &sremote_hosts::needs::Needs,
    opts: &HostOptions,
) -> Result<ExitCode, Error> {
    let p = match crate::placement::probe_all(targets, needs, opts).await? {
        Ok(p) => p,
        Err(e) => return Ok(crate::placement::report_no_fit(&e, opts.json)),
    };
    if opts.json {
        println!("{}", p.to_json());
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = p
        .candidates
        .iter()
        .map(|c| {
            let mark = if c.host == p.chosen { "*" } else { "" };
            let (verdict, why) = match (&c.fit, &c.error) {
                (Some(f), _) if f.fits => (
                    "yes".to_string(),
                    f.scarcest.as_ref().map_or(String::new(), |s| {
                        format!("{s}: {:.1}× what is needed", f.headroom)
                    }),
                ),
                (Some(f), _) => ("no".to_string(), f.lacks.join("; ")),
                (None, e) => ("no answer".to_string(), e.clone().unwrap_or_default()),
            };
            let why = match (c.cached, why.is_empty()) {
                (false, _) => why,
                (true, true) => "(cached)".into(),
                (true, false) => format!("{why} (cached)"),
            };
            vec![format!("{}{mark}", c.host), verdict, why]
        })
        .collect();
    print!("{}", output::table(&["HOST", "FITS", "WHY"], &rows));
    Ok(ExitCode::SUCCESS)
}

fn sort(rows: &mut [(String, Row)], key: SortKey) {
    use std::cmp::Ordering;
    let desc = |a: Option<u64>, b: Option<u64>| b.unwrap_or(0).cmp(&a.unwrap_or(0));
    rows.sort_by(|(ha, a), (hb, b)| {
        let o = match key {
            SortKey::Host => Ordering::Equal,
            SortKey::Cpus => desc(a.probe.cpus, b.probe.cpus),
            SortKey::Load => a.load().total_cmp(&b.load()),
            SortKey::FreeMem => desc(a.probe.mem_available, b.probe.mem_available),
            SortKey::FreeDisk => desc(a.probe.disk_free_home, b.probe.disk_free_home),
            SortKey::Gpus => b.probe.gpus.len().cmp(&a.probe.gpus.len()),
            SortKey::GpuMem => b.gpu_free().cmp(&a.gpu_free()),
            SortKey::Rtt => a.rtt.cmp(&b.rtt),
        };
        o.then_with(|| ha.cmp(hb))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(mem: u64, load: f64) -> Row {
        Row {
            raw: Value::Null,
            probe: Probe {
                mem_available: Some(mem),
                loadavg: vec![load],
                ..Default::default()
            },
            version: String::new(),
            rtt: Duration::ZERO,
        }
    }

    #[test]
    fn sorting() {
        let mut rows = vec![
            ("a".to_string(), row(1, 3.0)),
            ("b".to_string(), row(5, 1.0)),
            ("c".to_string(), row(3, 2.0)),
        ];
        sort(&mut rows, SortKey::FreeMem);
        assert_eq!(rows.iter().map(|r| r.0.as_str()).collect::<String>(), "bca");
        sort(&mut rows, SortKey::Load);
        assert_eq!(rows.iter().map(|r| r.0.as_str()).collect::<String>(), "bca");
        sort(&mut rows, SortKey::Host);
        assert_eq!(rows.iter().map(|r| r.0.as_str()).collect::<String>(), "abc");
        assert_eq!(pct(Some(512), Some(1024)), "512 B (50%)");
    }

    #[test]
    fn gpu_memory_is_bytes() {
        // As `sys.probe` sends it: nvidia-smi's MiB turned into bytes.
        let p: Probe = serde_json::from_value(json!({"gpus": [
            {"name": "NVIDIA A100", "memory_total": 40960u64 << 20, "memory_free": 40000u64 << 20},
            {"name": "NVIDIA A100", "memory_total": 40960u64 << 20, "memory_free": 960u64 << 20},
        ]}))
        .unwrap();
        assert_eq!(gpus(&p), "2x NVIDIA A100 (40.0 GiB of 80.0 GiB free)");
    }
}
