//! Run where it fits: `--needs` picks the host from a pool by probing three real sshd
//! hosts whose answers differ by design (a stub `nvidia-smi` on two hosts' PATH with more
//! and less free GPU memory, a module only one host can import, a label in the config)
//! plus a host that never answers (skipped after the deadline, not waited for).
mod common;

use std::path::Path;

use common::{Client, ssh_host, text};
use sremote_testkit::Sshd;

/// A directory holding a stub `nvidia-smi` that reports one GPU with `free_mib` free.
fn gpu_stub(dir: &Path, free_mib: u64) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let smi = dir.join("nvidia-smi");
    std::fs::write(
        &smi,
        format!("#!/bin/sh\necho \"Tesla T4, 15360, {free_mib}\"\n"),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&smi, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir.display().to_string()
}

struct Pool {
    client: Client,
    _hosts: [Sshd; 3],
    _silent: std::net::TcpListener,
    _small: Tmpfs,
}

/// A 64 MiB tmpfs: a home directory with little free disk.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &Path) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64m,mode=0700", "tmpfs"])
            .arg(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mount a tmpfs (as root): {}",
            text(&out.stderr)
        );
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

fn pool() -> Pool {
    let hosts = [
        Sshd::start().unwrap(),
        Sshd::start().unwrap(),
        Sshd::start().unwrap(),
    ];
    let work = tempfile::tempdir().unwrap().keep();
    let big = gpu_stub(&work.join("big"), 8192);
    let small = gpu_stub(&work.join("small"), 1024);
    let small_home = Tmpfs::mount(&work.join("small-home"));
    let mods = work.join("mods");
    std::fs::create_dir_all(&mods).unwrap();
    std::fs::write(
        mods.join("fancymod.py"),
        "def hello():\n    return 'hi from c'\n",
    )
    .unwrap();
    // Accepts connections (the kernel's backlog) and never says a word.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let [a, b, c] = &hosts;
    let config = format!(
        "{}labels = [\"bigmem\"]\nenv = {{ WHO = \"a\" }}\n\
         {}path = [\"{big}\"]\nenv = {{ WHO = \"b\" }}\n\
         {}path = [\"{small}\"]\nenv = {{ WHO = \"c\", PYTHONPATH = \"{}\" }}\n\
         [hosts.small]\ndestination = \"{}\"\nssh_config = \"{}\"\nenv = {{ HOME = \"{}\" }}\n\
         [hosts.gone]\ndestination = \"ssh://root@127.0.0.1:{port}\"\nssh_config = \"{}\"\n\
         [groups]\nlab = [\"a\", \"b\", \"c\", \"gone\"]\n",
        ssh_host("a", &a.alias, &a.ssh_config),
        ssh_host("b", &b.alias, &b.ssh_config),
        ssh_host("c", &c.alias, &c.ssh_config),
        mods.display(),
        a.alias,
        a.ssh_config.display(),
        small_home.0.display(),
        a.ssh_config.display(),
    );
    let mut client = Client::new(&config);
    client
        .env
        .push(("SREMOTE_PROBE_TIMEOUT".into(), "4".into()));
    client.env.push(("SREMOTE_PROBE_CACHE".into(), "0".into()));
    Pool {
        client,
        _hosts: hosts,
        _silent: silent,
        _small: small_home,
    }
}

#[test]
fn needs_choose_the_host_that_fits_and_skip_the_silent_one() {
    let p = pool();
    let c = &p.client;
    // The only host with a GPU with 1.5 GiB free.
    let started = std::time::Instant::now();
    let out = c.run(&[
        "run",
        "@lab",
        "--needs",
        "gpu-mem=1.5G",
        "--",
        "sh",
        "-c",
        "echo $WHO",
    ]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(text(&out.stdout), "b\n", "{err}");
    assert!(
        err.contains("chose b") && err.contains("1 of 4 hosts fit"),
        "{err}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "the silent host is not waited for"
    );

    // A module only one host can import; a label from the config.
    let out = c.run(&[
        "call",
        "@lab",
        "--needs",
        "module=fancymod",
        "fancymod",
        "hello",
    ]);
    assert_eq!(text(&out.stdout), "hi from c\n", "{}", text(&out.stderr));
    let out = c.run(&[
        "exec",
        "@lab",
        "--needs",
        "label=bigmem",
        "--",
        "sh",
        "-c",
        "echo $WHO",
    ]);
    assert_eq!(text(&out.stdout), "a\n", "{}", text(&out.stderr));

    // Which hosts fit, and why not.
    let out = c.run(&["probe", "@lab", "--needs", "gpu-mem=1.5G"]);
    let table = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        table.contains("b*") && table.contains("gpu-mem: 5.3×"),
        "{table}"
    );
    assert!(
        table.contains("1.0 GiB") && table.contains("0 of 0 GPUs"),
        "{table}"
    );
    assert!(
        table.contains("gone") && table.contains("no answer within"),
        "{table}"
    );

    // --json: the placement on stderr as one object, stdout the command's own.
    let out = c.run(&[
        "--json",
        "call",
        "@lab",
        "--needs",
        "gpu=1,gpu-mem=4G",
        "os",
        "getenv",
        "WHO",
    ]);
    let placement = text(&out.stderr)
        .lines()
        .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .expect("a placement line");
    assert_eq!(placement["placement"]["chosen"], "b");
    assert_eq!(
        placement["placement"]["candidates"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((&v["ok"], &v["host"]), (&"b".into(), &"b".into()));
}

#[test]
fn no_host_fits_says_what_each_lacks_and_bad_needs_are_usage_errors() {
    let p = pool();
    let c = &p.client;
    let out = c.run(&[
        "run",
        "@lab",
        "--needs",
        "gpu-mem=100G,disk=1000T",
        "--",
        "true",
    ]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("no host fits --needs disk=1000.0 TiB,gpu-mem=100.0 GiB"),
        "{err}"
    );
    for host in ["a", "b", "c"] {
        assert!(
            err.contains(&format!("\n  {host}     disk: ")),
            "{host}: {err}"
        );
    }
    assert!(err.contains("gone  no answer within 4s"), "{err}");
    // Free disk of the home directory's file system: the 64 MiB tmpfs lacks it.
    let out = c.run(&["probe", "small,b", "--needs", "disk=100M"]);
    let table = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        table.contains("b*") && table.contains("disk: 64.0 MiB free, 100.0 MiB needed"),
        "{table}"
    );
    let out = c.run(&[
        "run",
        "small,b",
        "--needs",
        "disk=100M",
        "--",
        "sh",
        "-c",
        "echo $WHO",
    ]);
    assert_eq!(text(&out.stdout), "b\n", "{}", text(&out.stderr));
    let out = c.run(&["probe", "@lab", "--needs", "cpus=100000"]);
    assert_eq!(out.status.code(), Some(1));
    for bad in ["gpu-mem", "colour=red", "mem=lots"] {
        let out = c.run(&["run", "@lab", "--needs", bad, "--", "true"]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {err}");
        assert!(err.contains("gpu-mem=SIZE"), "{bad}: {err}");
    }
}

#[test]
fn probe_answers_are_cached_briefly() {
    let p = pool();
    let mut c = Client::new(&std::fs::read_to_string(&p.client.config).unwrap());
    c.env.push(("SREMOTE_PROBE_TIMEOUT".into(), "4".into()));
    c.env.push((
        "XDG_CACHE_HOME".into(),
        p.client.home.path().join("cache").display().to_string(),
    ));
    let first = c.run(&["probe", "a,b", "--needs", "cpus=1"]);
    assert!(
        !text(&first.stdout).contains("cached"),
        "{}",
        text(&first.stdout)
    );
    let again = c.run(&["probe", "a,b", "--needs", "cpus=1"]);
    assert_eq!(
        text(&again.stdout).matches("(cached)").count(),
        2,
        "{}",
        text(&again.stdout)
    );
    c.env.push(("SREMOTE_PROBE_CACHE".into(), "0".into()));
    let fresh = c.run(&["probe", "a,b", "--needs", "cpus=1"]);
    assert!(
        !text(&fresh.stdout).contains("cached"),
        "{}",
        text(&fresh.stdout)
    );
}

/// The pick's overhead (BENCHMARKS.md, "Run where it fits"): a whole `sremote run` with
/// `--needs` over three hosts against a plain `run` on one, probes cached and not.
/// `cargo nextest run -p sremote-cli --test cli_needs --run-ignored only --no-capture`
#[test]
#[ignore = "a measurement, not a test"]
fn measure_the_pick_overhead() {
    let p = pool();
    let c = &p.client;
    let median = |args: &[&str], env: &[(&str, &str)]| {
        let mut times: Vec<f64> = (0..9)
            .map(|_| {
                let mut cmd = c.command(args);
                for (k, v) in env {
                    cmd.env(k, v);
                }
                let t = std::time::Instant::now();
                let out = cmd.output().unwrap();
                assert!(out.status.success(), "{}", text(&out.stderr));
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        times.sort_by(f64::total_cmp);
        times[times.len() / 2]
    };
    let cache = p.client.home.path().join("cache").display().to_string();
    let plain = median(&["run", "b", "--", "true"], &[]);
    let fresh = median(&["run", "a,b,c", "--needs", "cpus=1", "--", "true"], &[]);
    let cached = median(
        &["run", "a,b,c", "--needs", "cpus=1", "--", "true"],
        &[("SREMOTE_PROBE_CACHE", "60"), ("XDG_CACHE_HOME", &cache)],
    );
    println!(
        "plain run on one host: {plain:.0} ms; run --needs over 3 hosts: {fresh:.0} ms ({:.2}x), \
         with cached probes: {cached:.0} ms ({:.2}x)",
        fresh / plain,
        cached / plain
    );
}
