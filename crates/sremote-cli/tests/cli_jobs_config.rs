//! `sremote submit` with the hosts config's `scheduler`, `partitions` and `sge_pe`: the
//! smallest configured partition that fits reaches a real Slurm (as root; skipped
//! otherwise), flags win over the config, and bad config values are clear errors.
mod common;

use common::partition::HiddenPartition;
use common::{Client, text};
use serde_json::Value;
use sremote_testkit::slurm::Slurm;

fn client(config: &str) -> Client {
    let mut c = Client::new(config);
    let db = c.home.path().join("jobs.sqlite3");
    c.env
        .push(("SREMOTE_JOBS_DB".into(), db.display().to_string()));
    c
}

fn json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", text(&out.stdout), text(&out.stderr)))
}

#[test]
fn bad_partition_values_are_usage_errors_naming_host_key_and_value() {
    let c = client(
        r#"
[hosts.cluster]
connector = "local"
scheduler = "slurm"
partitions = [{ name = "short", cores = 4, max_time = "half an hour" }]
"#,
    );
    let out = c.run(&["submit", "cluster", "os", "getpid"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    for part in [
        "host cluster",
        "partition \"short\"",
        "max_time = \"half an hour\"",
        "is not a duration",
        "30m",
        "hint: fix [hosts.cluster]",
    ] {
        assert!(err.contains(part), "{part:?} not in {err}");
    }
    assert!(!err.contains("panick"), "{err}");
    // --direct needs no partitions: the config's scheduler is overridden.
    let out = c.run(&["--json", "submit", "cluster", "--direct", "os", "getpid"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let id = json(&out)["id"].as_str().unwrap().to_string();
    let show = c.run(&["--json", "jobs", "show", &id]);
    assert_eq!(json(&show)["scheduler"], "direct");
}

#[test]
fn no_configured_partition_fits_is_a_usage_error_before_anything_runs() {
    let c = client(
        r#"
[hosts.cluster]
connector = "local"
scheduler = "sge"
sge_pe = "smp"
partitions = [{ name = "small", cores = 2, max_time = "1h", max_memory = "4G" }]
"#,
    );
    let out = c.run(&["submit", "cluster", "--cores", "8", "os", "getpid"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("error: host cluster: "), "{err}");
    assert!(err.contains("no partition fits 8 cores"), "{err}");
    assert!(
        err.contains("hint: the partitions are: small (2 cores, 1h"),
        "{err}"
    );
    assert!(err.contains("ask for less, or name a partition"), "{err}");
    let ls = c.run(&["--json", "jobs", "ls"]);
    assert!(
        ls.status.success() && ls.stdout.is_empty(),
        "nothing was recorded"
    );
}

#[test]
fn config_scheduler_and_smallest_fitting_partition_reach_slurm() {
    let slurm = match Slurm::start() {
        Ok(s) => s,
        Err(sremote_testkit::Error::Skip(why)) => {
            eprintln!("skipped: {why}");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let tiny = HiddenPartition::create("tiny", &slurm.node, &["MaxTime=5", "State=UP"]);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    // No --slurm flag anywhere below: the config's scheduler is used.
    let c = client(&format!(
        r#"
[hosts.cluster]
connector = "local"
scheduler = "slurm"
partitions = [
  {{ name = "huge", cores = 4096, max_time = "30d", max_memory = "unlimited" }},
  {{ name = "debug", cores = {cpus}, max_time = "unlimited" }},
  {{ name = "{tiny}", cores = 1, max_time = "5m", max_memory = "1G" }},
]
"#,
        tiny = tiny.0
    ));
    let submit = |extra: &[&str], tag: &str| -> (String, String) {
        let arg = format!(r#"["sh","-c","echo {tag}"]"#);
        let mut args = vec!["--json", "submit", "cluster", "--cores", "1"];
        args.extend_from_slice(extra);
        args.extend(["job", "run", &arg]);
        let out = c.run(&args);
        assert!(
            out.status.success(),
            "{}{}\n{}",
            text(&out.stdout),
            text(&out.stderr),
            slurm.logs()
        );
        let id = json(&out)["id"].as_str().unwrap().to_string();
        let show = json(&c.run(&["--json", "jobs", "show", &id]));
        assert_eq!(show["scheduler"], "slurm", "{show}");
        let sid = show["scheduler_id"]
            .as_str()
            .expect("a Slurm job id")
            .to_string();
        (id, sid)
    };
    // 2 minutes, 1 core, 512M: the tiny partition is the smallest that fits.
    let (small_id, small_sid) = submit(&["--time", "2m", "--mem", "512M"], "small");
    // 10 minutes: too long for tiny; debug (fewer cores than huge) is the smallest that fits.
    let (long_id, long_sid) = submit(&["--time", "10m"], "long");
    assert_eq!(
        slurm.job_field(&small_sid, "Partition").as_deref(),
        Some(tiny.0.as_str()),
        "{}",
        slurm.show_job(&small_sid)
    );
    assert_eq!(
        slurm.job_field(&long_sid, "Partition").as_deref(),
        Some("debug"),
        "{}",
        slurm.show_job(&long_sid)
    );
    for id in [&small_id, &long_id] {
        let res = c.run(&["jobs", "result", id]);
        assert_eq!(
            text(&res.stdout).trim(),
            "0",
            "{}\n{}",
            text(&res.stderr),
            slurm.logs()
        );
    }
    let log = c.run(&["jobs", "log", &small_id]);
    assert_eq!(text(&log.stdout), "small\n");
    // --partition names it outright: no choice made.
    let out = c.run(&[
        "submit",
        "cluster",
        "--cores",
        "1",
        "--time",
        "2m",
        "--partition",
        "debug",
        "os",
        "getpid",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let id = text(&out.stdout).trim().to_string();
    let show = json(&c.run(&["--json", "jobs", "show", &id]));
    let sid = show["scheduler_id"].as_str().unwrap();
    assert_eq!(slurm.job_field(sid, "Partition").as_deref(), Some("debug"));
    let res = c.run(&["jobs", "result", &id]);
    assert!(res.status.success(), "{}", text(&res.stderr));
}
