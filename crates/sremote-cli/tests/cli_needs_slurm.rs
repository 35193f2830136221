//! `submit --needs` to a host with a batch system asks the batch system (a real
//! single-node Slurm): cpus → cores, mem → memory; needs a batch system cannot be asked
//! for are refused before anything runs.
mod common;

use common::{Client, text};
use serde_json::Value;
use sremote_testkit::slurm::Slurm;

#[test]
fn needs_become_the_resource_request_of_a_batch_host() {
    let slurm = match Slurm::start() {
        Ok(s) => s,
        Err(sremote_testkit::Error::Skip(why)) => {
            eprintln!("skipped: {why}");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let c = Client::new("[hosts.cluster]\nconnector = \"local\"\nscheduler = \"slurm\"\n");
    let out = c.run(&[
        "--json",
        "submit",
        "cluster",
        "--needs",
        "cpus=1,mem=300M",
        "--time",
        "2m",
        "os",
        "getpid",
    ]);
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stderr),
        slurm.logs()
    );
    let id = serde_json::from_slice::<Value>(&out.stdout).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let show: Value =
        serde_json::from_slice(&c.run(&["--json", "jobs", "show", &id]).stdout).unwrap();
    let sid = show["scheduler_id"]
        .as_str()
        .expect("a Slurm job id")
        .to_string();
    let job = slurm.show_job(&sid);
    assert_eq!(
        slurm.job_field(&sid, "MinMemoryNode").as_deref(),
        Some("300M"),
        "{job}"
    );
    assert_eq!(
        slurm.job_field(&sid, "NumCPUs").as_deref(),
        Some("1"),
        "{job}"
    );
    let res = c.run(&["jobs", "result", &id, "--timeout", "120"]);
    assert!(
        res.status.success(),
        "{}\n{}",
        text(&res.stderr),
        slurm.logs()
    );

    // Not for a batch system, or disagreeing with a flag: usage errors, nothing submitted.
    for (args, says) in [
        (vec!["--needs", "gpu-mem=1G,disk=2G"], "gpu-mem"),
        (vec!["--needs", "mem=1G", "--mem", "2G"], "disagree"),
    ] {
        let mut all = vec!["submit", "cluster"];
        all.extend(args);
        all.extend(["os", "getpid"]);
        let out = c.run(&all);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(says), "{err}");
    }
}
