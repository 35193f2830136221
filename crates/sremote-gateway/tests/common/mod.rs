//! Test harness: the real `sremote-gateway` binary on a loopback port, in a throwaway
//! home, stopped (by PID) when dropped.
#![allow(dead_code, reason = "each test binary uses some of the helpers")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sremote_core::testsuite::Fixture;
use sremote_core::{
    Connector, ConnectorError, Dest, ExecOutput, RemoteCommand, RemotePath, Source,
};
use sremote_rest::NewtConnector;

pub const USER: &str = "alice";
pub const PASSWORD: &str = "correct horse battery staple";
pub const MACHINE: &str = "testhost";

/// The gateway binary: this build's, or `$SREMOTE_TEST_GATEWAY_BIN` (to check that a
/// regression test fails against an older build).
pub fn gateway_bin() -> String {
    std::env::var("SREMOTE_TEST_GATEWAY_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_sremote-gateway").to_string())
}

/// How to configure a test gateway.
#[derive(Debug, Clone)]
pub struct Opts {
    pub session_secs: u64,
    pub max_upload: u64,
    pub max_output: usize,
    pub tls: bool,
    /// Also make a bearer token for the test user.
    pub token: bool,
    /// `free_failed_logins` and `max_login_delay_secs`.
    pub login_throttle: (u32, f64),
    /// More `[limits]` lines (`key = value\n`).
    pub extra_limits: String,
    /// The open-files limit (soft and hard) to start the gateway under.
    pub nofile: Option<u32>,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            session_secs: 3600,
            max_upload: 1 << 30,
            max_output: 64 << 20,
            tls: false,
            token: false,
            login_throttle: (5, 60.0),
            extra_limits: String::new(),
            nofile: None,
        }
    }
}

/// A running gateway.
#[derive(Debug)]
pub struct Gateway {
    child: Child,
    pub pid: u32,
    /// Base URL, e.g. `http://127.0.0.1:PORT/newt`.
    pub url: String,
    pub port: u16,
    pub dir: tempfile::TempDir,
    /// The gateway user's home (the one root).
    pub home: PathBuf,
    /// A directory outside every root.
    pub outside: PathBuf,
    /// PEM of the self-signed certificate when TLS is on.
    pub cert_pem: Option<String>,
    /// The bearer token, when asked for.
    pub token: Option<String>,
    log: Arc<Mutex<String>>,
    /// Time from spawn to the `listening on` line.
    pub startup: Duration,
}

impl Gateway {
    pub fn start(opts: Opts) -> Gateway {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = dir.path().join("home");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&home).expect("mkdir home");
        std::fs::create_dir_all(&outside).expect("mkdir outside");
        let users = dir.path().join("users");
        sremote_gateway::users::add_user(&users, USER, PASSWORD).expect("add user");
        let token = opts
            .token
            .then(|| sremote_gateway::users::add_token(&users, USER).expect("add token"));
        let mut cert_pem = None;
        let tls = if opts.tls {
            let ck =
                rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
                    .expect("cert");
            let pem = ck.cert.pem();
            std::fs::write(dir.path().join("cert.pem"), &pem).expect("write cert");
            std::fs::write(dir.path().join("key.pem"), ck.signing_key.serialize_pem())
                .expect("write key");
            cert_pem = Some(pem);
            "[tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n"
        } else {
            ""
        };
        let config = format!(
            "listen = \"127.0.0.1:0\"\nbase_path = \"/newt\"\nmachines = [\"{MACHINE}\"]\nusers_file = \"users\"\n\
             roots = [\"~\"]\n{tls}[sessions]\nlifetime_secs = {}\n[limits]\nmax_upload_bytes = {}\n\
             max_output_bytes = {}\nmax_concurrent_logins = 2\nfree_failed_logins = {}\n\
             max_login_delay_secs = {}\n{}",
            opts.session_secs,
            opts.max_upload,
            opts.max_output,
            opts.login_throttle.0,
            opts.login_throttle.1,
            opts.extra_limits
        );
        let cfg = dir.path().join("gateway.toml");
        std::fs::write(&cfg, config).expect("write config");
        let started = Instant::now();
        let mut cmd = match opts.nofile {
            // `ulimit -n` in a shell that then becomes the gateway: soft and hard limits.
            Some(n) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                    .arg(gateway_bin());
                c
            }
            None => Command::new(gateway_bin()),
        };
        let mut child = cmd
            .arg("--config")
            .arg(&cfg)
            .env("HOME", &home)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start sremote-gateway");
        let pid = child.id();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().expect("stderr");
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_string());
                }
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let url = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                panic!("the gateway did not start; log:\n{}", log.lock().unwrap());
            }
        };
        let startup = started.elapsed();
        let port = url
            .rsplit(':')
            .next()
            .and_then(|p| p.split('/').next()?.parse().ok())
            .expect("port");
        Gateway {
            child,
            pid,
            url,
            port,
            dir,
            home,
            outside,
            cert_pem,
            token,
            log,
            startup,
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The log once it contains `needle` (a reader thread collects it, so a line can
    /// arrive a little after the request that wrote it); the log as it is after 10 s.
    pub fn log_with(&self, needle: &str) -> String {
        for _ in 0..200 {
            let log = self.log();
            if log.contains(needle) {
                return log;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        self.log()
    }

    /// Log in as the test user.
    pub async fn login(&self) -> NewtConnector {
        let mut b = NewtConnector::builder(&self.url, MACHINE);
        if let Some(pem) = &self.cert_pem {
            b = b.root_certificates_pem(pem.as_bytes());
        }
        b.login(USER, PASSWORD)
            .await
            .unwrap_or_else(|e| panic!("login: {e}\nlog:\n{}", self.log()))
    }

    /// A field of /proc/PID/status in kB (VmRSS, VmHWM).
    pub fn proc_kb(&self, field: &str) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid)).expect("proc status");
        status
            .lines()
            .find_map(|l| {
                l.strip_prefix(field)?
                    .strip_prefix(':')?
                    .trim()
                    .strip_suffix("kB")?
                    .trim()
                    .parse()
                    .ok()
            })
            .expect("field")
    }

    /// A raw HTTP/1.1 request (the path is sent exactly as given), returning status and body.
    pub fn raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, String) {
        let (status, _, body) = self.raw_full(method, path, headers, body, Duration::from_secs(30));
        (status, body)
    }

    /// [`raw`](Self::raw) with the response head (lower-cased) and a read timeout; status 0
    /// when no answer came in time.
    pub fn raw_full(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        timeout: Duration,
    ) -> (u16, String, String) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        s.set_read_timeout(Some(timeout)).expect("timeout");
        let mut req =
            format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        s.write_all(req.as_bytes()).expect("send");
        // The server may answer (413) and close before reading all of it.
        let _ = s.write_all(body);
        let mut resp = Vec::new();
        let _ = s.read_to_end(&mut resp);
        let text = String::from_utf8_lossy(&resp).into_owned();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        (status, head.to_ascii_lowercase(), body.to_string())
    }

    /// Log in over raw HTTP; returns the session id.
    pub fn raw_login(&self) -> String {
        let form = format!("username={USER}&password={}", PASSWORD.replace(' ', "+"));
        let (status, body) = self.raw(
            "POST",
            "/newt/auth",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            form.as_bytes(),
        );
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        v["newt_sessionid"]
            .as_str()
            .expect("session id")
            .to_string()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        // Stop only the process we started, by its PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A [`NewtConnector`] that keeps its gateway running.
#[derive(Debug)]
pub struct Hosted {
    pub newt: NewtConnector,
    pub gateway: Gateway,
}

#[async_trait]
impl Connector for Hosted {
    fn host(&self) -> &str {
        self.newt.host()
    }
    async fn exec(&self, cmd: &RemoteCommand) -> Result<ExecOutput, ConnectorError> {
        self.newt.exec(cmd).await
    }
    async fn push(&self, from: Source<'_>, to: &RemotePath) -> Result<(), ConnectorError> {
        self.newt.push(from, to).await
    }
    async fn pull(&self, from: &RemotePath, to: Dest<'_>) -> Result<(), ConnectorError> {
        self.newt.pull(from, to).await
    }
    fn supports_stdin(&self) -> bool {
        self.newt.supports_stdin()
    }
}

/// The shared test-suite's fixture: a fresh gateway, scratch in its home, an unwritable
/// directory outside every root.
pub async fn fixture() -> Fixture<Hosted> {
    let gateway = Gateway::start(Opts::default());
    let newt = gateway.login().await;
    let scratch = gateway.home.join("scratch").display().to_string();
    let unwritable = Some(gateway.outside.display().to_string());
    Fixture {
        connector: Hosted { newt, gateway },
        scratch,
        unwritable,
    }
}

/// Whether `p` exists.
pub fn exists(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}
