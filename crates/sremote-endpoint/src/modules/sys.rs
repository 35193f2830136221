//! Built-in module `sys`: the endpoint itself and a resource probe of the host.

use std::ffi::CString;
use std::process::Command;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::context::CallContext;
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
        .doc("Returns its argument unchanged (round-trip checks and payload benchmarks).")
        .raw("code_id", "(module: str) -> dict", code_id)
        .doc(
            "{module, kind, id, ...}: a content identity of the code `module` resolves to here \
             (the endpoint's own: its version and SHA-256; a plugin: its file's SHA-256; a Python \
             module: its file's SHA-256, found without importing it; a builtin: the Python \
             version). Jobs put `id` in their identity, so changed code is a new job.",
        );
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
    Ok(crate::version::version_info(false))
}

fn location(ctx: &CallContext<'_>, args: Args) -> Result<Value, CallError> {
    args.expect_none("sys.location() -> dict")?;
    Ok(serde_json::to_value(ctx.location())?)
}

/// The Python side of `sys.code_id`: resolve `sys.argv[1]` the way the bridge imports it
/// (the longest importable prefix of a dotted name, PYTHONPATH only), without running the
/// module — submodules are found with `PathFinder` on the package's search path — and
/// print one JSON line.
const CODE_ID_PY: &str = r#"
import hashlib, importlib.machinery, importlib.util, json, sys
if sys.path and sys.path[0] == "":
    del sys.path[0]
parts = sys.argv[1].split(".")
try:
    spec = importlib.util.find_spec(parts[0])
except (ImportError, ValueError):
    spec = None
found = parts[0]
if spec is not None:
    for i in range(1, len(parts)):
        locations = spec.submodule_search_locations
        if not locations:
            break
        name = ".".join(parts[: i + 1])
        try:
            sub = importlib.machinery.PathFinder.find_spec(name, list(locations))
        except (ImportError, ValueError):
            sub = None
        if sub is None:
            break
        spec, found = sub, name
out = {"python": sys.executable, "python_version": sys.version.split()[0]}
if spec is None:
    out["kind"] = "missing"
elif spec.origin and spec.has_location:
    h = hashlib.sha256()
    with open(spec.origin, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            h.update(chunk)
    out.update(kind="file", found=found, path=spec.origin, sha256=h.hexdigest())
else:
    out.update(kind="builtin" if spec.origin else "namespace", found=found,
               locations=sorted(spec.submodule_search_locations or []))
print(json.dumps(out))
"#;

/// How long the Python side of `sys.code_id` may take (a slow network file system).
const CODE_ID_TIMEOUT: Duration = Duration::from_secs(60);

fn code_id(ctx: &CallContext<'_>, args: Args) -> Result<Value, CallError> {
    let module = code_id_argument(args)?;
    let location = ctx.location();
    let endpoint_own = |module: &str| {
        // `job` is the endpoint's own module inside every job (`job.run`).
        module == "job" || ctx.endpoint().module_names().iter().any(|m| m == module)
    };
    let mut out = serde_json::json!({ "module": module });
    let python_module = match module.strip_prefix(crate::python::PREFIX) {
        Some(name) => Some(name),
        None if endpoint_own(&module) => return Ok(endpoint_code_id(out)),
        None => match location.plugin(&module) {
            Some(path) => return plugin_code_id(&module, &path, out),
            None => crate::python::python_name(&module).then_some(module.as_str()),
        },
    };
    let Some(name) = python_module.filter(|n| crate::python::python_name(n)) else {
        // Nothing here can serve it: the call would fail with ModuleNotFound.
        out["kind"] = "unknown".into();
        out["id"] = "unknown".into();
        return Ok(out);
    };
    python_code_id(location, &module, name, out)
}

/// `sys.code_id`'s one argument, the module name (positional or `module=`).
fn code_id_argument(args: Args) -> Result<String, CallError> {
    let mut all: Vec<Value> = args.args;
    if let Some(v) = args.kwargs.get("module") {
        all.push(v.clone());
    }
    match (all.as_slice(), args.kwargs.keys().all(|k| k == "module")) {
        ([Value::String(m)], true) => Ok(m.clone()),
        _ => Err(CallError::bad_arguments(
            "sys.code_id(module: str) -> dict takes one argument, the module name as a string",
        )),
    }
}

/// The code of a module of the endpoint itself: its version and executable.
fn endpoint_code_id(mut out: Value) -> Value {
    let sha = own_sha256();
    out["kind"] = "endpoint".into();
    out["version"] = sremote_core::protocol::VERSION.into();
    out["sha256"] = sha.clone().map_or(Value::Null, Value::String);
    out["id"] = format!(
        "endpoint:{}:{}",
        sremote_core::protocol::VERSION,
        sha.as_deref().unwrap_or("unknown")
    )
    .into();
    out
}

/// The code of a plugin executable: its SHA-256.
fn plugin_code_id(
    module: &str,
    path: &std::path::Path,
    mut out: Value,
) -> Result<Value, CallError> {
    let sha = crate::version::sha256_file(path).map_err(|e| {
        CallError::raised(format!(
            "sys.code_id({module:?}): cannot read the plugin {}: {e}",
            path.display()
        ))
    })?;
    out["kind"] = "plugin".into();
    out["path"] = path.display().to_string().into();
    out["id"] = format!("plugin:{sha}").into();
    out["sha256"] = sha.into();
    Ok(out)
}

/// The code of Python module `name` as the host's interpreter finds it (`python-file`
/// with its SHA-256, `python-builtin`, `python-namespace`, `python-missing`), or
/// `no-python`.
fn python_code_id(
    location: &crate::location::Location,
    module: &str,
    name: &str,
    mut out: Value,
) -> Result<Value, CallError> {
    let python = match crate::python::find(location) {
        Ok(p) => p,
        Err(why) => {
            out["kind"] = "no-python".into();
            out["id"] = "no-python".into();
            out["detail"] = why.into();
            return Ok(out);
        }
    };
    let mut cmd = Command::new(&python);
    cmd.arg("-c").arg(CODE_ID_PY).arg(name);
    let what = format!("sys.code_id({module:?}) with {}", python.display());
    let f = crate::process::run(cmd, None, Some(CODE_ID_TIMEOUT))
        .map_err(|e| CallError::raised(format!("{what}: cannot start it: {e}")))?;
    let answer: Option<Value> = serde_json::from_slice(&f.stdout).ok();
    let Some(Value::Object(found)) = answer.filter(|_| f.status.success() && !f.timed_out) else {
        return Err(CallError::raised(format!(
            "{what} failed ({}): {}; check that this interpreter works on the host",
            if f.timed_out {
                format!("no answer within {} s", CODE_ID_TIMEOUT.as_secs())
            } else {
                format!("exit {}", f.returncode())
            },
            String::from_utf8_lossy(&f.stderr).trim()
        )));
    };
    let get = |k: &str| found.get(k).and_then(Value::as_str).unwrap_or_default();
    let id = match get("kind") {
        "file" => format!("python:{}", get("sha256")),
        "builtin" => format!("python-builtin:{}", get("python_version")),
        "namespace" => format!(
            "python-namespace:{}",
            found
                .get("locations")
                .map(Value::to_string)
                .unwrap_or_default()
        ),
        _ => "python-missing".to_string(),
    };
    let kind = format!("python-{}", get("kind"));
    for (k, v) in found {
        out[k.as_str()] = v;
    }
    out["kind"] = kind.into();
    out["id"] = id.into();
    Ok(out)
}

/// SHA-256 (hex) of the running endpoint's executable, computed once.
fn own_sha256() -> Option<String> {
    static SHA: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    SHA.get_or_init(|| {
        // /proc/self/exe is the running file even after it was replaced on disk.
        crate::version::sha256_file(std::path::Path::new("/proc/self/exe"))
            .or_else(|_| crate::version::sha256_file(&std::env::current_exe()?))
            .ok()
    })
    .clone()
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
        hostname: crate::response::hostname(),
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
