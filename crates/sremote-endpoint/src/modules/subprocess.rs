//! Built-in module `subprocess`: run a program (never through a shell).
//!
//! On timeout the child's whole process group is killed and the call fails with kind
//! `Timeout` (message `subprocess.run([...]): timed out after N s ...`; the output
//! captured so far is in the error's `data.stdout` / `data.stderr`).

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use serde::Serialize;
use sremote_core::protocol::ErrorKind;

use crate::error::CallError;
use crate::module::ModuleBuilder;

pub(crate) fn register(m: &mut ModuleBuilder) {
    m.doc("Run programs (argv, never a shell).");
    m.function("run", run)
        .params(&["argv", "cwd", "env", "input", "timeout"])
        .returns("dict")
        .doc(
            "Run argv[0] with arguments argv[1:]; env is added to the inherited environment, input is \
             written to stdin, timeout is in seconds. Returns {returncode, stdout, stderr} \
             (returncode -N when killed by signal N).",
        );
}

/// The result of `subprocess.run`.
#[derive(Debug, Serialize)]
struct Completed {
    returncode: i32,
    stdout: String,
    stderr: String,
}

fn run(
    argv: Vec<String>,
    cwd: Option<String>,
    env: Option<BTreeMap<String, String>>,
    input: Option<String>,
    timeout: Option<f64>,
) -> Result<Completed, CallError> {
    let shown = serde_json::to_string(&argv).unwrap_or_default();
    let Some((program, args)) = argv.split_first() else {
        return Err(CallError::bad_arguments(
            "subprocess.run(): argv must name a program (it is empty)",
        ));
    };
    let timeout = match timeout {
        None => None,
        Some(t) if (0.0..1e9).contains(&t) => Some(Duration::from_secs_f64(t)),
        Some(t) => {
            return Err(CallError::bad_arguments(format!(
                "subprocess.run(): timeout must be a non-negative number of seconds, got {t}"
            )));
        }
    };
    let mut cmd = Command::new(program);
    cmd.args(args);
    if let Some(dir) = &cwd {
        cmd.current_dir(dir);
    }
    for (k, v) in env.iter().flatten() {
        if k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0') {
            return Err(CallError::bad_arguments(format!(
                "subprocess.run(): invalid environment variable {k:?}"
            )));
        }
        cmd.env(k, v);
    }
    let finished =
        crate::process::run(cmd, input.map(String::into_bytes), timeout).map_err(|e| {
            let where_ = cwd
                .as_deref()
                .map(|d| format!(" in {d:?}"))
                .unwrap_or_default();
            CallError::raised(format!("subprocess.run({shown}){where_}: {e}"))
        })?;
    let stdout = String::from_utf8_lossy(&finished.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&finished.stderr).into_owned();
    if finished.timed_out {
        let secs = timeout.map(|t| t.as_secs_f64()).unwrap_or_default();
        return Err(CallError::new(
            ErrorKind::Timeout,
            format!(
                "subprocess.run({shown}): timed out after {secs} s; its process group was killed"
            ),
        )
        .with_data(serde_json::json!({ "stdout": stdout, "stderr": stderr, "timeout": secs })));
    }
    Ok(Completed {
        returncode: finished.returncode(),
        stdout,
        stderr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_with_env_cwd_input() {
        let env = BTreeMap::from([("SR_X".to_string(), "42".to_string())]);
        let r = run(
            vec![
                "sh".into(),
                "-c".into(),
                "cat; echo \" $SR_X $(pwd)\"; exit 4".into(),
            ],
            Some("/".into()),
            Some(env),
            Some("in".into()),
            Some(10.0),
        )
        .unwrap();
        assert_eq!((r.returncode, r.stdout.as_str()), (4, "in 42 /\n"));
    }

    #[test]
    fn errors() {
        assert_eq!(
            run(vec![], None, None, None, None).unwrap_err().kind,
            ErrorKind::BadArguments
        );
        let e = run(vec!["/no/such/prog".into()], None, None, None, None).unwrap_err();
        assert!(
            e.message
                .starts_with("subprocess.run([\"/no/such/prog\"]): "),
            "{}",
            e.message
        );
        let e = run(
            vec!["sleep".into(), "5".into()],
            None,
            None,
            None,
            Some(0.2),
        )
        .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Timeout);
        assert!(e.message.contains("timed out after 0.2 s"), "{}", e.message);
        assert_eq!(
            run(vec!["true".into()], None, None, None, Some(-1.0))
                .unwrap_err()
                .kind,
            ErrorKind::BadArguments
        );
    }
}
