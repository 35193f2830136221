//! Built-in module `sys`: the endpoint itself and a resource probe of the host.

use std::ffi::CString;
use std::process::Command;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::endpoint::CallContext;
use crate::error::CallError;
use crate::module::{Args, ModuleBuilder};

/// Probes of optional tools (nvidia-smi, python3) give up after this long.
const TOOL_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) fn register(m: &mut ModuleBuilder) {
    m.doc("The endpoint itself and a resource probe of the host.");
    m.function("probe", probe)
        .returns("dict")
        .doc(
            "{hostname, os, arch, kernel, cpus, loadavg, mem_total, mem_available, disk_free_home, \
             disk_total_home, gpus, python3} (sizes in bytes; null when unknown).",
        )
        .raw("modules", "() -> dict", modules)
        .doc("The modules and function signatures of this endpoint (as `sremote-endpoint modules --json`).")
        .raw("version", "() -> dict", version)
        .doc("{version, protocol, target, exe} of this endpoint.")
        .raw("location", "() -> dict", location)
        .doc("{sremote, tmp, modules}: absolute paths of the endpoint's dirs on this host.")
        .raw("echo", "(value: any) -> any", echo)
        .doc("Returns its argument unchanged (round-trip checks and payload benchmarks).");
}

fn echo(_ctx: &CallContext<'_>, args: Args) -> Result<Value, CallError> {
    let sig = "sys.echo(value: any) -> any";
    let mut all: Vec<Value> = args
        .args
        .into_iter()
        .chain(args.kwargs.into_values())
        .collect();
    if all.len() != 1 {
        return Err(CallError::bad_arguments(format!(
            "{sig} takes exactly one argument, got {}",
            all.len()
        )));
    }
    // A `{"$blob": N}` goes back as the same attachment: no copy in session mode.
    Ok(all.remove(0))
}

fn modules(ctx: &CallContext<'_>, args: Args) -> Result<Value, CallError> {
    args.expect_none("sys.modules() -> dict")?;
    Ok(ctx.endpoint().modules_json())
}

fn version(_ctx: &CallContext<'_>, args: Args) -> Result<Value, CallError> {
    args.expect_none("sys.version() -> dict")?;
    Ok(crate::cli::version_info(false))
}

fn location(ctx: &CallContext<'_>, args: Args) -> Result<Value, CallError> {
    args.expect_none("sys.location() -> dict")?;
    Ok(serde_json::to_value(ctx.location())?)
}

/// A GPU as `nvidia-smi` reports it, memory in bytes (`nvidia-smi` gives MiB).
#[derive(Debug, Serialize, PartialEq)]
struct Gpu {
    name: String,
    memory_total: Option<u64>,
    memory_free: Option<u64>,
}

/// The result of `sys.probe`.
#[derive(Debug, Serialize)]
struct Probe {
    hostname: String,
    os: &'static str,
    arch: &'static str,
    kernel: String,
    cpus: usize,
    loadavg: Option<[f64; 3]>,
    mem_total: Option<u64>,
    mem_available: Option<u64>,
    disk_free_home: Option<u64>,
    disk_total_home: Option<u64>,
    gpus: Vec<Gpu>,
    python3: Option<String>,
}

fn probe() -> Probe {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let disk = disk_usage(&crate::location::home_dir());
    Probe {
        hostname: crate::endpoint::hostname(),
        os: std::env::consts::OS,
        arch: std::env::consts::ARCH,
        kernel: super::os::uname().map(|u| u.release).unwrap_or_default(),
        cpus: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        loadavg: loadavg(),
        mem_total: meminfo_bytes(&meminfo, "MemTotal"),
        mem_available: meminfo_bytes(&meminfo, "MemAvailable"),
        disk_free_home: disk.map(|d| d.0),
        disk_total_home: disk.map(|d| d.1),
        gpus: gpus(),
        python3: python3_version(),
    }
}

fn loadavg() -> Option<[f64; 3]> {
    let mut avg = [0f64; 3];
    // SAFETY: the array holds the 3 values asked for.
    (unsafe { libc::getloadavg(avg.as_mut_ptr(), 3) } == 3).then_some(avg)
}

/// A `/proc/meminfo` field in bytes (the file gives kB).
fn meminfo_bytes(meminfo: &str, key: &str) -> Option<u64> {
    meminfo.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?.strip_prefix(':')?;
        let kb: u64 = rest.split_whitespace().next()?.parse().ok()?;
        Some(kb * 1024)
    })
}

/// (free for unprivileged users, total) bytes of the filesystem holding `path`.
fn disk_usage(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs is plain old data filled by statvfs(); `c` is a valid C string.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return None;
    }
    let frsize = s.f_frsize as u64;
    Some((s.f_bavail as u64 * frsize, s.f_blocks as u64 * frsize))
}

fn gpus() -> Vec<Gpu> {
    let Some(smi) = crate::process::which("nvidia-smi") else {
        return Vec::new();
    };
    let mut cmd = Command::new(smi);
    cmd.args([
        "--query-gpu=name,memory.total,memory.free",
        "--format=csv,noheader,nounits",
    ]);
    match crate::process::run(cmd, None, Some(TOOL_TIMEOUT)) {
        Ok(f) if f.status.success() => parse_gpus(&String::from_utf8_lossy(&f.stdout)),
        _ => Vec::new(),
    }
}

/// `name, memory.total, memory.free` lines (`--format=csv,noheader,nounits`: MiB) into
/// GPUs with sizes in bytes, like every size of `sys.probe`. A field that is not a number
/// (`[N/A]`, `[Not Supported]`) is unknown.
fn parse_gpus(csv: &str) -> Vec<Gpu> {
    let mib = |v: &str| v.parse::<u64>().ok().and_then(|n| n.checked_mul(1 << 20));
    csv.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let mut fields = line.split(',').map(str::trim);
            Gpu {
                name: fields.next().unwrap_or_default().to_string(),
                memory_total: fields.next().and_then(mib),
                memory_free: fields.next().and_then(mib),
            }
        })
        .collect()
}

fn python3_version() -> Option<String> {
    let python = crate::process::which("python3")?;
    let mut cmd = Command::new(python);
    cmd.arg("--version");
    let f = crate::process::run(cmd, None, Some(TOOL_TIMEOUT)).ok()?;
    // Python 2-era interpreters printed the version on stderr.
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&f.stdout),
        String::from_utf8_lossy(&f.stderr)
    );
    let version = text.trim().strip_prefix("Python ")?.trim().to_string();
    (!version.is_empty()).then_some(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_has_the_basics() {
        let p = serde_json::to_value(probe()).unwrap();
        assert!(p["cpus"].as_u64().unwrap() >= 1);
        assert!(p["mem_total"].as_u64().unwrap() > 0);
        assert_eq!(p["loadavg"].as_array().unwrap().len(), 3);
        assert!(p["gpus"].is_array());
    }

    #[test]
    fn parsers() {
        assert_eq!(
            meminfo_bytes("MemTotal:  100 kB\nMemAvailable: 5 kB\n", "MemAvailable"),
            Some(5 * 1024)
        );
        assert_eq!(meminfo_bytes("MemTotal: 1 kB", "Mem"), None);
        assert_eq!(
            parse_gpus("NVIDIA A100-SXM4-40GB, 40960, 40000\n\nTesla K80, [N/A], 11441\n"),
            vec![
                Gpu {
                    name: "NVIDIA A100-SXM4-40GB".into(),
                    memory_total: Some(40960 << 20),
                    memory_free: Some(40000 << 20)
                },
                Gpu {
                    name: "Tesla K80".into(),
                    memory_total: None,
                    memory_free: Some(11441 * 1024 * 1024)
                }
            ]
        );
    }
}
