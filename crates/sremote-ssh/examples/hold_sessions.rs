//! One library client holding N sessions at once (issue 14, target 5; run by
//! `bench/fleet.py --hold N`):
//!
//! ```text
//! cargo run --release -p sremote-ssh --example hold_sessions -- SSH_CONFIG HOST...
//! ```
//!
//! One process, one tokio runtime (current-thread like the `sremote` CLI, or
//! `--multi-thread`), one `SshConnector` (a master of its own per host unless `--persist`)
//! and one `RemoteClient` per host. It measures, in this order:
//!
//! 1. *alone*: one host (the first) connected by itself: connect + first call, then
//!    sequential calls on its session (p50/p99), the process's resources with one session;
//!    then that client is closed;
//! 2. *open*: every host connected and its first call made at once (wall, per-host times);
//! 3. *rounds*: one call on every session at once, `--rounds` times (median wall, and the
//!    CPU time this process and the ssh masters spent per call);
//! 4. *held*: the same sequential calls on the first host's session while all N are held,
//!    and the process's resources (RSS, fds by kind, threads, the ssh masters' PSS);
//! 5. *after*: the other N − 1 closed, the sequential calls again on the first session.
//!
//! Every call is `os.getenv("HOME")` (what `bench/fleet.py` calls). The result is one
//! JSON object on stdout; a host that fails is listed with its error and makes the exit
//! code 1 (bad arguments: 2). The endpoint is the bundled one (installed on a fresh host by
//! the first call's session start, as the CLI does).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::Value;
use sremote_core::RemoteClient;
use sremote_ssh::SshConnector;
use tokio::task::JoinSet;

type Client = RemoteClient<SshConnector>;

const USAGE: &str = "usage: hold_sessions [--rounds K] [--seq S] [--timeout SECS] [--persist] \
                     [--multi-thread] SSH_CONFIG HOST...";

/// The command line.
#[derive(Debug, Clone)]
struct Opts {
    config: PathBuf,
    hosts: Vec<String>,
    rounds: usize,
    seq: usize,
    timeout: Duration,
    persist: bool,
    multi_thread: bool,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Opts, String> {
    let mut o = Opts {
        config: PathBuf::new(),
        hosts: Vec::new(),
        rounds: 20,
        seq: 2000,
        timeout: Duration::from_secs(120),
        persist: false,
        multi_thread: false,
    };
    let mut positional = Vec::new();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| -> Result<u64, String> {
            let v = it.next().ok_or(format!("{name} needs a value"))?;
            v.parse()
                .map_err(|_| format!("{name} {v:?}: not a whole number"))
        };
        match a.as_str() {
            "--rounds" => o.rounds = value("--rounds")? as usize,
            "--seq" => o.seq = value("--seq")?.max(1) as usize,
            "--timeout" => o.timeout = Duration::from_secs(value("--timeout")?.max(1)),
            "--persist" => o.persist = true,
            "--multi-thread" => o.multi_thread = true,
            "-h" | "--help" => return Err(String::new()),
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            _ => positional.push(a),
        }
    }
    let mut positional = positional.into_iter();
    o.config = positional.next().ok_or("no SSH_CONFIG given")?.into();
    if !o.config.is_file() {
        return Err(format!("{}: no such file", o.config.display()));
    }
    o.hosts = positional.collect();
    if o.hosts.is_empty() {
        return Err("no HOST given".into());
    }
    Ok(o)
}

fn main() -> ExitCode {
    let opts = match parse_args(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("hold_sessions: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let built = if opts.multi_thread {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    };
    let runtime = match built {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hold_sessions: cannot start the async runtime: {e}");
            return ExitCode::from(3);
        }
    };
    match runtime.block_on(run(opts)) {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(json) => {
            println!("{json}");
            ExitCode::from(1)
        }
    }
}

/// What one host's connect + first call gave: the client and the time, or the error.
type Opened = (String, Result<(Client, Duration), String>);

/// Where this run's own masters live (their command lines name it), and how to make
/// connectors.
struct Connect {
    config: PathBuf,
    persist: bool,
    timeout: Duration,
    control: tempfile::TempDir,
}

impl Connect {
    /// Connect to `host` and make the first call (which opens the session).
    async fn open(&self, host: String) -> Opened {
        let t = Instant::now();
        let mut b = SshConnector::builder()
            .config_file(&self.config)
            .terminal_prompts(false)
            .control_directory(self.control.path());
        if self.persist {
            b = b.persist(Some(Duration::from_secs(600)));
        }
        let work = async {
            let ssh = b.connect(&host).await.map_err(|e| e.to_string())?;
            let client = RemoteClient::new(ssh);
            call(&client).await?;
            Ok((client, t.elapsed()))
        };
        let r = match tokio::time::timeout(self.timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(format!("no session after {:?}", self.timeout)),
        };
        (host, r)
    }

    /// The ssh masters of this run.
    fn masters(&self) -> Masters {
        let needle = if self.persist {
            sremote_ssh::control_root().unwrap_or_default()
        } else {
            self.control.path().to_path_buf()
        };
        masters(&needle)
    }
}

/// One `os.getenv("HOME")`.
async fn call(client: &Client) -> Result<(), String> {
    client
        .call::<Option<String>>("os", "getenv")
        .arg("HOME")
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Connect to every host at once; the clients, the failures, the wall.
async fn open_all(
    c: &std::sync::Arc<Connect>,
    hosts: &[String],
) -> (
    Vec<(String, Client, Duration)>,
    Vec<(String, String)>,
    Duration,
) {
    let t = Instant::now();
    let mut set = JoinSet::new();
    for (i, h) in hosts.iter().enumerate() {
        let (c, h) = (c.clone(), h.clone());
        set.spawn(async move { (i, c.open(h).await) });
    }
    let mut done: Vec<(usize, Opened)> = Vec::new();
    let mut failed = Vec::new();
    while let Some(r) = set.join_next().await {
        match r {
            Ok(x) => done.push(x),
            Err(e) => failed.push(("?".to_string(), format!("task failed: {e}"))),
        }
    }
    let wall = t.elapsed();
    done.sort_by_key(|(i, _)| *i);
    let mut ok = Vec::new();
    for (_, (host, r)) in done {
        match r {
            Ok((client, took)) => ok.push((host, client, took)),
            Err(e) => failed.push((host, e)),
        }
    }
    (ok, failed, wall)
}

/// One call on every client at once: the wall, and the hosts whose call failed.
async fn round(clients: &[Client]) -> (Duration, Vec<(String, String)>) {
    let t = Instant::now();
    let mut set = JoinSet::new();
    for c in clients {
        let c = c.clone();
        set.spawn(async move { (c.host().to_string(), call(&c).await) });
    }
    let mut failed = Vec::new();
    while let Some(r) = set.join_next().await {
        match r {
            Ok((_, Ok(()))) => {}
            Ok((host, Err(e))) => failed.push((host, e)),
            Err(e) => failed.push(("?".into(), format!("task failed: {e}"))),
        }
    }
    (t.elapsed(), failed)
}

/// `n` sequential calls on one session (after a few to warm up): p50 and p99 in µs.
async fn sequential(client: &Client, n: usize) -> Result<(f64, f64), String> {
    for _ in 0..(n / 10).clamp(10, 200) {
        call(client).await?;
    }
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        call(client).await?;
        v.push(t.elapsed().as_secs_f64() * 1e6);
    }
    v.sort_by(f64::total_cmp);
    Ok((pct(&v, 50.0), pct(&v, 99.0)))
}

/// The `p`th percentile of sorted `v` (nearest rank).
fn pct(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// The process's own resources: VmRSS, VmHWM (KiB), threads, open fds.
#[derive(Debug, Clone, Copy, Default)]
struct Usage {
    rss: u64,
    hwm: u64,
    threads: u64,
    fds: u64,
    /// Of the fds: pipes and sockets.
    pipes: u64,
    sockets: u64,
}

fn usage() -> Usage {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let links: Vec<String> = std::fs::read_dir("/proc/self/fd").map_or(Vec::new(), |d| {
        d.flatten()
            .filter_map(|e| std::fs::read_link(e.path()).ok())
            .map(|l| l.to_string_lossy().into_owned())
            .collect()
    });
    let kind = |k: &str| links.iter().filter(|l| l.starts_with(k)).count() as u64;
    Usage {
        rss: field("VmRSS:"),
        hwm: field("VmHWM:"),
        threads: field("Threads:"),
        fds: links.len() as u64,
        pipes: kind("pipe:"),
        sockets: kind("socket:"),
    }
}

/// The ssh masters of a run: how many, their summed PSS (KiB) and CPU time (ns).
#[derive(Debug, Clone, Copy, Default)]
struct Masters {
    n: usize,
    pss: u64,
    cpu: u64,
}

/// Processes whose command line contains `needle` (the ssh masters started with a control
/// socket under it): PSS from `smaps_rollup`, CPU time from `schedstat`.
fn masters(needle: &Path) -> Masters {
    let needle = needle.as_os_str().as_encoded_bytes();
    let me = std::process::id().to_string();
    let mut m = Masters::default();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return m;
    };
    for e in dir.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        if pid == me || !cmd.windows(needle.len()).any(|w| w == needle) {
            continue;
        }
        let rollup =
            std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
        m.n += 1;
        m.pss += rollup
            .lines()
            .find_map(|l| l.strip_prefix("Pss:"))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|k| k.parse::<u64>().ok())
            .unwrap_or(0);
        m.cpu += cpu_ns(pid);
    }
    m
}

/// CPU time of process `pid` in ns: its threads' run time from `schedstat` (exact, where
/// `stat`'s ticks are 10 ms).
fn cpu_ns(pid: &str) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// A JSON object built field by field.
#[derive(Default)]
struct Obj(serde_json::Map<String, Value>);

impl Obj {
    fn val(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.0.insert(key.to_string(), value.into());
        self
    }
    /// A figure to one decimal (`null` when not finite).
    fn num(self, key: &str, value: f64) -> Self {
        let v = serde_json::Number::from_f64((value * 10.0).round() / 10.0);
        self.val(key, v.map_or(Value::Null, Value::Number))
    }
    fn int(self, key: &str, value: u64) -> Self {
        self.val(key, value)
    }
    fn ms(self, key: &str, d: Duration) -> Self {
        self.num(key, d.as_secs_f64() * 1000.0)
    }
    fn usage(self, key: &str, u: Usage) -> Self {
        let o = Obj::default()
            .int("rss_kib", u.rss)
            .int("hwm_kib", u.hwm)
            .int("threads", u.threads)
            .int("fds", u.fds)
            .int("pipes", u.pipes)
            .int("sockets", u.sockets);
        self.val(key, o.done())
    }
    fn done(self) -> Value {
        Value::Object(self.0)
    }
}

fn failures_json(failed: &[(String, String)]) -> Value {
    failed
        .iter()
        .map(|(h, e)| serde_json::json!({"host": h, "error": e}))
        .collect()
}

/// Step 1: the first host by itself. Its connect + first call, its sequential p50/p99,
/// the process's resources with that one session; then it is closed.
async fn alone(
    c: &std::sync::Arc<Connect>,
    host: &str,
    seq: usize,
) -> Result<(Obj, Usage), String> {
    let (_, opened) = c.open(host.to_string()).await;
    let (client, took) = opened.map_err(|e| format!("{host}: {e}"))?;
    let (p50, p99) = sequential(&client, seq).await?;
    let one = usage();
    let m = c.masters();
    close(&client).await;
    drop(client);
    let o = Obj::default()
        .ms("connect_first_call_ms", took)
        .num("seq_p50_us", p50)
        .num("seq_p99_us", p99)
        .usage("usage", one)
        .int("masters", m.n as u64)
        .int("masters_pss_kib", m.pss);
    Ok((o, one))
}

/// Close a client's session and its ssh master (one of this run's own).
async fn close(client: &Client) {
    client.close_session().await;
    let _ = client.connector().close().await;
}

/// Steps 2–4 (the rounds and the held measurement) on the opened clients.
/// The CPU time of this process and of the masters during the rounds tells where a
/// round's time goes (the rest: sshd's and the endpoints, on the same machine here).
async fn held(clients: &[Client], c: &Connect, opts: &Opts) -> (Obj, Vec<(String, String)>) {
    let mut walls = Vec::new();
    let mut failed = Vec::new();
    let (me, masters) = (cpu_ns("self"), c.masters().cpu);
    for _ in 0..opts.rounds {
        let (wall, f) = round(clients).await;
        walls.push(wall.as_secs_f64() * 1000.0);
        failed.extend(f);
    }
    let calls = (walls.len() * clients.len()).max(1) as f64;
    let me = cpu_ns("self").saturating_sub(me) as f64 / 1000.0 / calls;
    let masters = c.masters().cpu.saturating_sub(masters) as f64 / 1000.0 / calls;
    walls.sort_by(f64::total_cmp);
    let mut o = Obj::default()
        .int("rounds", walls.len() as u64)
        .num("round_p50_ms", pct(&walls, 50.0))
        .num("round_max_ms", walls.last().copied().unwrap_or(f64::NAN))
        .num("round_client_cpu_us_per_call", me)
        .num("round_masters_cpu_us_per_call", masters);
    match sequential(&clients[0], opts.seq).await {
        Ok((p50, p99)) => o = o.num("seq_p50_us", p50).num("seq_p99_us", p99),
        Err(e) => failed.push((clients[0].host().to_string(), e)),
    }
    (o, failed)
}

async fn run(opts: Opts) -> Result<String, String> {
    let before = usage();
    let control = tempfile::Builder::new()
        .prefix("srhold-")
        .tempdir_in("/tmp")
        .map_err(|e| format!("cannot create a control directory in /tmp: {e}"))?;
    let c = std::sync::Arc::new(Connect {
        config: opts.config.clone(),
        persist: opts.persist,
        timeout: opts.timeout,
        control,
    });
    let n = opts.hosts.len();
    let mut out = Obj::default()
        .int("n", n as u64)
        .val(
            "runtime",
            if opts.multi_thread {
                "multi-thread"
            } else {
                "current-thread"
            },
        )
        .int("seq_calls", opts.seq as u64)
        .usage("before", before);
    // A first host that fails here is tried (and listed) again with the others.
    let alone_usage = match alone(&c, &opts.hosts[0], opts.seq).await {
        Ok((a, u)) => {
            out = out.val("alone", a.done());
            Some(u)
        }
        Err(e) => {
            out = out.val("alone_error", e);
            None
        }
    };
    let (opened, mut failed, wall) = open_all(&c, &opts.hosts).await;
    let mut took: Vec<f64> = opened
        .iter()
        .map(|(_, _, d)| d.as_secs_f64() * 1000.0)
        .collect();
    took.sort_by(f64::total_cmp);
    out = out
        .ms("open_wall_ms", wall)
        .num("open_host_p50_ms", pct(&took, 50.0))
        .num("open_host_max_ms", took.last().copied().unwrap_or(f64::NAN))
        .int("sessions", opened.len() as u64);
    let clients: Vec<Client> = opened.into_iter().map(|(_, c, _)| c).collect();
    if !clients.is_empty() {
        let (h, f) = held(&clients, &c, &opts).await;
        failed.extend(f);
        let holding = usage();
        let m = c.masters();
        out = out
            .val("held", h.done())
            .usage("holding", holding)
            .int("masters", m.n as u64)
            .int("masters_pss_kib", m.pss);
        let one = alone_usage.unwrap_or(before);
        out = out.val("per_session", per_session(before, one, holding, n, m));
        out = out.val("after", after(clients, &c, opts.seq, &mut failed).await);
    }
    let ok = failed.is_empty();
    let done = out
        .int("failed_count", failed.len() as u64)
        .val("failed", failures_json(&failed))
        .done()
        .to_string();
    if ok { Ok(done) } else { Err(done) }
}

/// Step 5: every client but the first closed; the sequential calls again on the first,
/// the resources once the others' masters have gone.
async fn after(
    mut clients: Vec<Client>,
    c: &Connect,
    seq: usize,
    failed: &mut Vec<(String, String)>,
) -> Value {
    for cl in clients.drain(1..) {
        close(&cl).await;
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while c.masters().n > 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut o = Obj::default();
    match sequential(&clients[0], seq).await {
        Ok((p50, p99)) => o = o.num("seq_p50_us", p50).num("seq_p99_us", p99),
        Err(e) => failed.push((clients[0].host().to_string(), e)),
    }
    let m = c.masters();
    let o = o
        .usage("usage", usage())
        .int("masters", m.n as u64)
        .int("masters_pss_kib", m.pss)
        .done();
    // Close it now: `Connect::control` (this run's control directory) is removed when `run`
    // ends, possibly before this connector's last clone (its session's tasks hold one until
    // the runtime stops) is dropped; a master whose socket is gone can no longer be told to
    // stop and stays until its idle timeout (10 min).
    close(&clients[0]).await;
    o
}

/// What each held session costs: the process's growth over its state before connecting
/// divided by N (with what the first session costs once: the runtime's buffers, the
/// bundled endpoint read for its hash), the growth over the state with one session (the
/// alone step's) divided by N − 1 (`marginal_`), and the masters' PSS per master.
fn per_session(before: Usage, one: Usage, holding: Usage, n: usize, m: Masters) -> Value {
    let per = |a: u64, b: u64, n: usize| (a as f64 - b as f64) / n.max(1) as f64;
    Obj::default()
        .num("rss_kib", per(holding.rss, before.rss, n))
        .num("fds", per(holding.fds, before.fds, n))
        .num("threads", per(holding.threads, before.threads, n))
        .num("marginal_rss_kib", per(holding.rss, one.rss, n - 1))
        .num("marginal_fds", per(holding.fds, one.fds, n - 1))
        .num("master_pss_kib", m.pss as f64 / m.n.max(1) as f64)
        .done()
}
