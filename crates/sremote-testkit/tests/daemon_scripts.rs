//! The Slurm and Grid Engine scripts stop and check daemons by PID file. A PID file can
//! outlive its daemon and its PID be reused by another process: the scripts must neither
//! take that process for the daemon (a start that thinks the daemon runs, as a CI run
//! once did for `sge_qmaster`) nor kill it.
use std::path::Path;
use std::process::Command;

fn scripts() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts"))
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
    })
}

#[test]
fn a_stale_pid_file_naming_another_process_is_not_the_daemon() {
    let mut other = Command::new("sleep").arg("60").spawn().unwrap();
    let pid = other.id();
    let dir = tempfile::tempdir().unwrap();
    for daemon in ["slurmd", "slurmctld", "slurmdbd", "mariadbd"] {
        std::fs::write(dir.path().join(format!("{daemon}.pid")), format!("{pid}\n")).unwrap();
    }
    let out = Command::new("bash")
        .arg(scripts().join("slurm-down.sh"))
        .env("SLURM_TEST_DIR", dir.path())
        .env("SLURM_KEEP_MUNGE", "1")
        // Should the script take the PID for slurmctld, its `squeue` must not reach a
        // real controller.
        .env("SLURM_CONF", dir.path().join("no-such-slurm.conf"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let still = alive(pid);
    let _ = other.kill();
    let _ = other.wait();
    assert!(
        still,
        "slurm-down.sh killed a process that is not a Slurm daemon: {out:?}"
    );
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("stopping"),
        "{out:?}"
    );
    // The stale files are gone; a daemon's own name still counts.
    assert!(!dir.path().join("slurmd.pid").exists());
    let check = |name: &str| {
        Command::new("bash")
            .arg("-c")
            .arg(format!(
                ". {}/daemons.sh; running \"$1\" \"$2\"",
                scripts().display()
            ))
            .args(["sh", &std::process::id().to_string(), name])
            .status()
            .unwrap()
            .success()
    };
    let me = std::fs::read_to_string("/proc/self/comm").unwrap();
    assert!(
        check(me.trim()),
        "this test process runs under its own name"
    );
    assert!(!check("sge_qmaster"), "nor is it sge_qmaster");
}
