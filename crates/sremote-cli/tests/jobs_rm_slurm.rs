//! Issue 16, 4: `sremote jobs rm` of a Slurm job still queued said "removed" and left the
//! job in Slurm's queue. Against a real single-node Slurm (as root; skipped otherwise): it
//! now refuses and the job stays queued; `jobs rm --cancel` cancels it in Slurm (its
//! accounting says CANCELLED) before removing it.
mod common;

use common::partition::HiddenPartition;
use common::{Client, text};
use serde_json::Value;
use sremote_testkit::slurm::Slurm;

fn json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", text(&out.stdout), text(&out.stderr)))
}

#[test]
fn rm_of_a_queued_slurm_job_refuses_and_rm_cancel_cancels_it_in_slurm() {
    let slurm = match Slurm::start() {
        Ok(s) => s,
        Err(sremote_testkit::Error::Skip(why)) => {
            eprintln!("skipped: {why}");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    // DOWN: jobs submitted to it stay PENDING.
    let down = HiddenPartition::create("down", &slurm.node, &["State=DOWN"]);
    let mut c = Client::new("[hosts.cluster]\nconnector = \"local\"\nscheduler = \"slurm\"\n");
    let db = c.home.path().join("jobs.sqlite3");
    c.env
        .push(("SREMOTE_JOBS_DB".into(), db.display().to_string()));
    let out = c.run(&[
        "--json",
        "submit",
        "cluster",
        "--partition",
        &down.0,
        "--time",
        "5m",
        "job",
        "run",
        r#"["sleep","60"]"#,
    ]);
    assert!(
        out.status.success(),
        "{}{}\n{}",
        text(&out.stdout),
        text(&out.stderr),
        slurm.logs()
    );
    let id = json(&out)["id"].as_str().unwrap().to_string();
    let sid = json(&c.run(&["--json", "jobs", "show", &id]))["scheduler_id"]
        .as_str()
        .expect("a Slurm job id")
        .to_string();
    let state = || slurm.job_field(&sid, "JobState").unwrap_or_default();
    assert_eq!(state(), "PENDING", "{}", slurm.show_job(&sid));

    let rm = c.run(&["jobs", "rm", &id]);
    assert_eq!(rm.status.code(), Some(1), "{}", text(&rm.stdout));
    let err = text(&rm.stderr);
    assert!(
        err.contains("is still queued, so it was not removed"),
        "{err}"
    );
    assert!(err.contains("sremote jobs rm --cancel"), "{err}");
    assert!(!err.contains("older than this client"), "{err}");
    assert!(!text(&rm.stdout).contains("removed"));
    assert_eq!(state(), "PENDING", "still in Slurm's queue");
    assert_eq!(
        json(&c.run(&["--json", "jobs", "show", &id]))["state"],
        "queued"
    );

    let rm = c.run(&["jobs", "rm", "--cancel", &id]);
    assert!(
        rm.status.success(),
        "{}\n{}",
        text(&rm.stderr),
        slurm.logs()
    );
    assert_eq!(text(&rm.stdout), format!("removed {id}\n"));
    assert_eq!(state(), "CANCELLED", "{}", slurm.show_job(&sid));
    let show = c.run(&["jobs", "show", &id]);
    assert_eq!(show.status.code(), Some(1), "the record is gone");
}
