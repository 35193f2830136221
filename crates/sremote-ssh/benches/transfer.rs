//! Throughput and latency of `SshConnector` against plain `ssh` in the same run, on a
//! throwaway loopback sshd (sremote-testkit). Not a test: prints a table.
//!
//! ```text
//! cargo bench -p sremote-ssh --bench transfer            # 256 MiB
//! SREMOTE_BENCH_MIB=64 cargo bench -p sremote-ssh --bench transfer
//! ```
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sremote_core::{Connector, Dest, RemoteCommand, Source};
use sremote_ssh::SshConnector;
use sremote_testkit::Sshd;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn ssh(sshd: &Sshd, extra: &[&str], remote: &str, stdin: Stdio, stdout: Stdio) -> Duration {
    let started = Instant::now();
    let ok = Command::new("ssh")
        .arg("-F")
        .arg(&sshd.ssh_config)
        .args(extra)
        .arg(&sshd.alias)
        .arg(remote)
        .stdin(stdin)
        .stdout(stdout)
        .status()
        .expect("ssh")
        .success();
    assert!(ok, "ssh {remote} failed");
    started.elapsed()
}

fn file(p: &Path) -> Stdio {
    Stdio::from(std::fs::File::open(p).unwrap())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mib: usize = std::env::var("SREMOTE_BENCH_MIB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(256);
    let rounds: usize = std::env::var("SREMOTE_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let sshd = Sshd::start().expect("sshd");
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.bin");
    std::fs::write(&src, sremote_core::testsuite::pseudo_random(mib << 20, 1)).unwrap();
    let mb = (mib << 20) as f64 / 1e6;
    let rate = |d: Duration| format!("{:.0} MB/s", mb / d.as_secs_f64());

    let connect = || {
        SshConnector::builder()
            .config_file(&sshd.ssh_config)
            .connect(&sshd.alias)
    };
    let mut t = Vec::new();
    for _ in 0..5 {
        let s = Instant::now();
        drop(connect().await.unwrap());
        t.push(s.elapsed());
    }
    let c = connect().await.unwrap();
    println!("connect (new master, auth)            {}", ms(median(t)));
    let new_ssh = median(
        (0..5)
            .map(|_| ssh(&sshd, &[], "true", Stdio::null(), Stdio::null()))
            .collect(),
    );
    println!("ssh host true (new connection)        {}", ms(new_ssh));

    let mut t = Vec::new();
    for _ in 0..100 {
        let s = Instant::now();
        assert!(c.exec(&RemoteCommand::new("true")).await.unwrap().success());
        t.push(s.elapsed());
    }
    println!("exec true (SshConnector)              {}", ms(median(t)));
    let sock = c.control_socket();
    let sock = sock.to_str().unwrap();
    let mux = ["-S", sock];
    let t = (0..50)
        .map(|_| ssh(&sshd, &mux, "true", Stdio::null(), Stdio::null()))
        .collect();
    println!("ssh -S mux host true                  {}", ms(median(t)));

    let (mut ours, mut theirs, mut theirs_mux) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let s = Instant::now();
        c.push(Source::file(&src), "bench/pushed.bin")
            .await
            .unwrap();
        ours.push(s.elapsed());
        theirs.push(ssh(
            &sshd,
            &[],
            "mkdir -p bench && cat > bench/cat.bin",
            file(&src),
            Stdio::null(),
        ));
        theirs_mux.push(ssh(
            &sshd,
            &mux,
            "cat > bench/catmux.bin",
            file(&src),
            Stdio::null(),
        ));
    }
    let (o, t, m) = (median(ours), median(theirs), median(theirs_mux));
    println!(
        "push {mib} MiB: SshConnector {} | ssh 'cat > f' {} | ssh -S mux 'cat > f' {} | ratio {:.2} (vs mux {:.2})",
        rate(o),
        rate(t),
        rate(m),
        t.as_secs_f64() / o.as_secs_f64(),
        m.as_secs_f64() / o.as_secs_f64()
    );

    let (mut ours, mut theirs, mut theirs_mux) = (Vec::new(), Vec::new(), Vec::new());
    let local = dir.path().join("pulled.bin");
    // All three read the same file on the host. (A plain `ssh host cmd` starts in the
    // account's home from passwd, the connector in $HOME, which the test sshd sets to a
    // throwaway directory: relative paths would name different files.)
    let remote = sshd.home.join("bench/pushed.bin");
    let cat = format!("cat '{}'", remote.display());
    for _ in 0..rounds {
        let s = Instant::now();
        c.pull("bench/pushed.bin", Dest::file(&local))
            .await
            .unwrap();
        ours.push(s.elapsed());
        let out = Stdio::from(std::fs::File::create(dir.path().join("cat.bin")).unwrap());
        theirs.push(ssh(&sshd, &[], &cat, Stdio::null(), out));
        let out = Stdio::from(std::fs::File::create(dir.path().join("catmux.bin")).unwrap());
        theirs_mux.push(ssh(&sshd, &mux, &cat, Stdio::null(), out));
    }
    assert!(std::fs::read(&local).unwrap() == std::fs::read(&src).unwrap());
    let (o, t, m) = (median(ours), median(theirs), median(theirs_mux));
    println!(
        "pull {mib} MiB: SshConnector {} | ssh 'cat f' {} | ssh -S mux 'cat f' {} | ratio {:.2} (vs mux {:.2})",
        rate(o),
        rate(t),
        rate(m),
        t.as_secs_f64() / o.as_secs_f64(),
        m.as_secs_f64() / o.as_secs_f64()
    );
}
