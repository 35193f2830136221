//! Golden tests: the batch scripts and submit commands of each scheduler (with a hostile
//! job name and paths), and the parsers of what the batch systems print. Set
//! `SREMOTE_UPDATE_GOLDEN=1` to rewrite the files under `tests/golden/` after a deliberate
//! change, then review the diff.
use std::path::Path;
use std::time::Duration;

use sremote_core::Setup;
use sremote_jobs::scheduler::{
    JobScript, SchedulerState, parse_pbs_qstat, parse_scontrol, parse_sge_qacct, parse_sge_qstat,
    parse_sinfo, parse_submit_output, render, shell_quote,
};
use sremote_jobs::{FailureClass, HostConfig, Partition, Resources, Scheduler, choose_partition};

fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("SREMOTE_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (SREMOTE_UPDATE_GOLDEN=1 creates it)",
            path.display()
        )
    });
    assert_eq!(
        actual, want,
        "{name} differs from its golden file (SREMOTE_UPDATE_GOLDEN=1 rewrites it)"
    );
}

const HOSTILE_NAME: &str = "x'; rm -rf ~ #\n#SBATCH --uid=0 $(id) `id` \"q\" %j";
const HOSTILE_DIR: &str = "/home/a b/it's $(id)/.sremote/jobs/mi8x-0001";
const EXE: &str = "/home/a b/it's $(id)/.sremote/bin/sremote-endpoint-0.1.0";

fn render_all(r: &Resources, config: &HostConfig) -> String {
    render_all_with(r, config, &Setup::default())
}

fn render_all_with(r: &Resources, config: &HostConfig, setup: &Setup) -> String {
    let mut out = String::new();
    for s in [Scheduler::Slurm, Scheduler::Sge, Scheduler::Pbs] {
        let sub = render(&JobScript {
            scheduler: s,
            id: "mi8x-0001",
            name: HOSTILE_NAME,
            dir: HOSTILE_DIR,
            exe: EXE,
            resources: r,
            config,
            setup,
        })
        .unwrap();
        out.push_str(&format!(
            "===== {s}: argv (one word per line, run in the job dir)\n"
        ));
        for a in &sub.argv {
            out.push_str(&format!("{a:?}\n"));
        }
        out.push_str(&format!("===== {s}: script (on stdin)\n{}", sub.script));
    }
    out
}

#[test]
fn scripts_full_resources() {
    let r = Resources {
        nodes: Some(2),
        cores_per_node: Some(8),
        time: Some(Duration::from_secs(26 * 3600 + 61)),
        memory: Some(4 << 30),
        partition: Some("long".into()),
        gpus: Some(1),
        extra_header: vec![
            "#SBATCH --account=proj-1".into(),
            "#$ -P proj".into(),
            "#PBS -A proj".into(),
        ],
    };
    golden(
        "scripts_full.txt",
        &render_all(
            &r,
            &HostConfig {
                sge_pe: Some("mpi".into()),
                ..Default::default()
            },
        ),
    );
}

#[test]
fn scripts_defaults() {
    golden(
        "scripts_defaults.txt",
        &render_all(&Resources::default(), &HostConfig::default()),
    );
}

/// Setup lines as a site needs them (a module, a venv, a hostile line that is the user's
/// own code), in `/bin/sh` and in a login shell.
fn site_setup(login_shell: bool) -> Setup {
    Setup::new(
        [
            "module load python/3.11",
            "source ~/envs/x/bin/activate",
            "export GREETING='it'\''s $HOME' # a comment",
        ],
        login_shell,
    )
}

#[test]
fn scripts_with_setup() {
    let r = Resources::default();
    let mut text = render_all_with(&r, &HostConfig::default(), &site_setup(false));
    text.push_str("######## login_shell = true\n");
    text.push_str(&render_all_with(
        &r,
        &HostConfig::default(),
        &site_setup(true),
    ));
    golden("scripts_setup.txt", &text);
}

#[test]
fn batch_script_setup_runs_and_fails_by_line() {
    // The Slurm script run by a real bash, `printenv` standing in for the endpoint: the setup
    // reaches the job; a failing line ends it with a message in the job's log.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let run = |setup: &Setup| {
        let sub = render(&JobScript {
            scheduler: Scheduler::Slurm,
            id: "i",
            name: "n",
            dir: d,
            exe: "/usr/bin/printenv",
            resources: &Resources::default(),
            config: &HostConfig::default(),
            setup,
        })
        .unwrap();
        // `printenv job run DIR` prints nothing and fails; print SREMOTE_T instead.
        let script = sub.script.replace("job run", "SREMOTE_T");
        let script = script.replace(&format!("SREMOTE_T {}", shell_quote(d)), "SREMOTE_T");
        assert!(script.starts_with("#!/bin/bash\n"), "{script}");
        std::process::Command::new("bash")
            .arg("-c")
            .arg(script)
            .output()
            .unwrap()
    };
    let out = run(&Setup::new(["export SREMOTE_T=from-setup"], false));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "from-setup\n");
    let out = run(&Setup::new(
        [
            "export SREMOTE_T=x",
            "sremote_no_such_module load x",
            "echo never",
        ],
        false,
    ));
    assert_eq!(
        out.status.code(),
        Some(sremote_core::setup::SETUP_FAILED_EXIT)
    );
    let log = std::fs::read_to_string(dir.path().join("log")).unwrap();
    assert_eq!(
        log,
        "sremote: setup line 2 failed (exit status 127): sremote_no_such_module load x\n"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("never"));
    let bad = render(&JobScript {
        scheduler: Scheduler::Slurm,
        id: "i",
        name: "n",
        dir: d,
        exe: "/e",
        resources: &Resources::default(),
        config: &HostConfig::default(),
        setup: &Setup::new(["a\0b"], false),
    });
    assert!(bad.is_err());
}

#[test]
fn script_words_reach_the_shell_intact() {
    // The exec line of the script, run by a real sh with `echo` standing in for the endpoint.
    for s in [
        "plain",
        "a b",
        "it's",
        "$(id)",
        "`id`",
        "\"q\"",
        "\\",
        "new\nline",
        "'",
        "''",
        "%j",
    ] {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf %s {}", shell_quote(s)))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), s);
    }
    let bad = Resources {
        extra_header: vec!["#SBATCH ok\nrm -rf ~".into()],
        ..Default::default()
    };
    let config = HostConfig::default();
    let no_setup = Setup::default();
    let job = |r| JobScript {
        scheduler: Scheduler::Slurm,
        id: "i",
        name: "n",
        dir: "/d",
        exe: "/e",
        resources: r,
        config: &config,
        setup: &no_setup,
    };
    assert!(
        render(&job(&bad)).is_err(),
        "a header line may not smuggle a second line"
    );
    let bad = Resources {
        extra_header: vec!["module load x".into()],
        ..Default::default()
    };
    assert!(
        render(&job(&bad)).is_err(),
        "header lines are directives (#…), not commands"
    );
    let bad = Resources {
        partition: Some("p\n#SBATCH --x".into()),
        ..Default::default()
    };
    assert!(render(&job(&bad)).is_err());
}

#[test]
fn submit_output() {
    assert_eq!(
        parse_submit_output(Scheduler::Slurm, "42\n"),
        Some("42".into())
    );
    assert_eq!(
        parse_submit_output(Scheduler::Slurm, "42;cluster\n"),
        Some("42".into())
    );
    assert_eq!(
        parse_submit_output(Scheduler::Sge, "1234\n"),
        Some("1234".into())
    );
    assert_eq!(
        parse_submit_output(Scheduler::Sge, "1234.1-10:1\n"),
        Some("1234".into())
    );
    assert_eq!(
        parse_submit_output(Scheduler::Pbs, "8812.pbs01\n"),
        Some("8812.pbs01".into())
    );
    assert_eq!(parse_submit_output(Scheduler::Slurm, ""), None);
    assert_eq!(
        parse_submit_output(Scheduler::Slurm, "Submitted batch job 4\n"),
        None
    );
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden")
            .join(name),
    )
    .unwrap()
}

fn finished(class: FailureClass) -> impl Fn(&SchedulerState) -> bool {
    move |s| matches!(s, SchedulerState::Finished(Some((c, _))) if *c == class)
}

#[test]
fn slurm_scontrol() {
    let text = fixture("scontrol_timeout.txt");
    let st = parse_scontrol(&text);
    assert!(finished(FailureClass::Walltime)(&st), "{st:?}");
    let SchedulerState::Finished(Some((_, why))) = st else {
        unreachable!()
    };
    assert_eq!(
        why,
        "Slurm: JobState=TIMEOUT Reason=TimeLimit ExitCode=0:15 (time limit reached)"
    );
    assert_eq!(
        parse_scontrol("JobId=3 JobState=PENDING Reason=Priority"),
        SchedulerState::Pending("Priority".into())
    );
    assert_eq!(
        parse_scontrol("JobId=3 JobState=RUNNING Reason=None"),
        SchedulerState::Running
    );
    assert_eq!(
        parse_scontrol("JobId=3 JobState=COMPLETING Reason=None"),
        SchedulerState::Running
    );
    assert_eq!(
        parse_scontrol("JobId=3 JobState=COMPLETED Reason=None ExitCode=0:0"),
        SchedulerState::Finished(None)
    );
    assert!(finished(FailureClass::Memory)(&parse_scontrol(
        "JobState=OUT_OF_MEMORY Reason=OutOfMemory"
    )));
    assert!(finished(FailureClass::NodeFailure)(&parse_scontrol(
        "JobState=NODE_FAIL Reason=NodeDown"
    )));
    assert!(finished(FailureClass::Preempted)(&parse_scontrol(
        "JobState=PREEMPTED"
    )));
    assert!(finished(FailureClass::Cancelled)(&parse_scontrol(
        "JobState=CANCELLED Reason=None"
    )));
    assert!(finished(FailureClass::Other)(&parse_scontrol(
        "JobState=FAILED Reason=NonZeroExitCode ExitCode=1:0"
    )));
    assert_eq!(parse_scontrol(""), SchedulerState::Unknown);
    assert_eq!(
        parse_scontrol("slurm_load_jobs error: Invalid job id specified"),
        SchedulerState::Unknown
    );
}

#[test]
fn sge_qstat_and_qacct() {
    let table = fixture("sge_qstat.txt");
    assert_eq!(
        parse_sge_qstat(&table, "101"),
        Some(SchedulerState::Running)
    );
    assert_eq!(
        parse_sge_qstat(&table, "102"),
        Some(SchedulerState::Pending("qw".into()))
    );
    assert!(
        finished(FailureClass::Other)(&parse_sge_qstat(&table, "103").unwrap()),
        "Eqw is an error state"
    );
    assert_eq!(
        parse_sge_qstat(&table, "104"),
        Some(SchedulerState::Running),
        "dr: being deleted"
    );
    assert_eq!(parse_sge_qstat(&table, "10"), None);
    assert!(finished(FailureClass::Walltime)(&parse_sge_qacct(
        &fixture("sge_qacct_h_rt.txt")
    )));
    assert_eq!(
        parse_sge_qacct(&fixture("sge_qacct_ok.txt")),
        SchedulerState::Finished(None)
    );
    assert!(finished(FailureClass::Memory)(&parse_sge_qacct(
        "failed       37 : qmaster enforced h_vmem limit\nexit_status  137\n"
    )));
    assert_eq!(
        parse_sge_qacct("error: job id 7 not found\n"),
        SchedulerState::Unknown
    );
}

#[test]
fn pbs_qstat() {
    assert!(finished(FailureClass::Walltime)(&parse_pbs_qstat(
        &fixture("pbs_qstat_walltime.txt")
    )));
    let running = "Job Id: 9.srv\n    job_state = R\n    queue = workq\n";
    assert_eq!(parse_pbs_qstat(running), SchedulerState::Running);
    assert!(matches!(
        parse_pbs_qstat("Job Id: 9.srv\n    job_state = Q\n"),
        SchedulerState::Pending(_)
    ));
    assert_eq!(
        parse_pbs_qstat("    job_state = F\n    Exit_status = 0\n"),
        SchedulerState::Finished(None)
    );
    assert!(finished(FailureClass::Memory)(&parse_pbs_qstat(
        "    job_state = F\n    Exit_status = -27\n"
    )));
    assert!(finished(FailureClass::Killed)(&parse_pbs_qstat(
        "    job_state = F\n    Exit_status = 265\n"
    )));
    assert_eq!(
        parse_pbs_qstat("qstat: Unknown Job Id 9.srv\n"),
        SchedulerState::Unknown
    );
}

#[test]
fn partitions_from_sinfo_and_choice() {
    let parts = parse_sinfo(&fixture("sinfo.txt"));
    golden("sinfo_parsed.txt", &format!("{parts:#?}\n"));
    let want = |r: Resources| choose_partition(&r, &parts);
    let h = |n: u64| Some(Duration::from_secs(n * 3600));
    assert_eq!(
        want(Resources::default()),
        Ok(Some("debug".into())),
        "the smallest"
    );
    assert_eq!(
        want(Resources {
            cores_per_node: Some(32),
            ..Default::default()
        }),
        Ok(Some("normal".into()))
    );
    assert_eq!(
        want(Resources {
            time: h(30),
            ..Default::default()
        }),
        Ok(Some("long".into()))
    );
    assert_eq!(
        want(Resources {
            gpus: Some(2),
            ..Default::default()
        }),
        Ok(Some("gpu".into()))
    );
    assert_eq!(
        want(Resources {
            partition: Some("mine".into()),
            ..Default::default()
        }),
        Ok(Some("mine".into()))
    );
    let err = want(Resources {
        cores_per_node: Some(1000),
        ..Default::default()
    })
    .unwrap_err();
    assert!(
        err.message == "no partition fits 1000 cores" && err.hint.contains("debug (4 cores"),
        "{err:?}"
    );
    assert_eq!(
        choose_partition(&Resources::default(), &[]),
        Ok(None),
        "unknown partitions: the default"
    );
    let p = Partition {
        name: "x".into(),
        cores: 2,
        max_time: None,
        max_memory: None,
        gpus: 0,
    };
    assert_eq!(
        choose_partition(
            &Resources {
                time: h(1000),
                ..Default::default()
            },
            &[p]
        ),
        Ok(Some("x".into()))
    );
}
