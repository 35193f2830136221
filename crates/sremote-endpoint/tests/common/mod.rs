//! Helpers shared by the integration tests: run an endpoint executable as a child
//! process with a private HOME.
#![allow(
    dead_code,
    reason = "shared by several test binaries; each uses a part"
)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

/// An endpoint executable plus a temporary HOME for it.
pub struct Host {
    pub exe: PathBuf,
    pub home: tempfile::TempDir,
    pub env: Vec<(String, String)>,
}

impl Host {
    pub fn new(exe: impl Into<PathBuf>) -> Host {
        Host {
            exe: exe.into(),
            home: tempfile::tempdir().expect("temp HOME"),
            env: Vec::new(),
        }
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.exe);
        cmd.args(args)
            .env("HOME", self.home())
            .env_remove("SREMOTE_DIR")
            .current_dir(self.home());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Run with `stdin` bytes; returns the whole output.
    pub fn run(&self, args: &[&str], stdin: &[u8]) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn endpoint");
        let mut input = child.stdin.take().unwrap();
        let data = stdin.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = input.write_all(&data);
        });
        let out = child.wait_with_output().expect("wait endpoint");
        writer.join().unwrap();
        out
    }

    /// Pipe mode: the request on stdin, the response (the only thing on stdout) parsed.
    pub fn call_raw(&self, request: &[u8]) -> Value {
        let out = self.run(&["call", "-"], request);
        assert_eq!(
            out.status.code(),
            Some(0),
            "stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON response ({e}): {:?}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// Pipe mode call of `module.function(*args)` with extra request fields.
    pub fn call_with(&self, module: &str, function: &str, args: Value, extra: Value) -> Value {
        let mut req = json!({"protocol": 1, "id": "t1", "module": module, "function": function, "args": args});
        if let Value::Object(fields) = extra {
            for (k, v) in fields {
                req[k] = v;
            }
        }
        self.call_raw(&serde_json::to_vec(&req).unwrap())
    }

    pub fn call(&self, module: &str, function: &str, args: Value) -> Value {
        self.call_with(module, function, args, json!({}))
    }

    /// The `ok` value; panics with the error otherwise.
    pub fn ok(&self, module: &str, function: &str, args: Value) -> Value {
        let resp = self.call(module, function, args);
        match resp.get("ok") {
            Some(v) => v.clone(),
            None => panic!("{module}.{function} failed: {resp}"),
        }
    }

    /// The `error` object; panics if the call succeeded.
    pub fn err(&self, module: &str, function: &str, args: Value) -> Value {
        let resp = self.call(module, function, args);
        resp.get("error")
            .cloned()
            .unwrap_or_else(|| panic!("{module}.{function} did not fail: {resp}"))
    }
}

/// Write an executable shell script.
pub fn write_script(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}
