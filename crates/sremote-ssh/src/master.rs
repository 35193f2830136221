//! Starting the ssh master connection ourselves (not through the `openssh` crate, which
//! always passes `BatchMode=yes`), so that ssh can ask for a password or a one-time code:
//! on the user's terminal, or through a [`Prompt`] callback (`SSH_ASKPASS`).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use sremote_core::{ConnectorError, ConnectorErrorKind};

use crate::KnownHostsPolicy;
use crate::error::connect_error;

/// Answers ssh's login prompts (a password, a one-time code, `Verification code:`):
/// called with the prompt text, returns the answer, or `None` to give up.
#[derive(Clone)]
pub struct Prompt(pub Arc<PromptFn>);

/// The function behind a [`Prompt`].
pub type PromptFn = dyn Fn(&str) -> Option<String> + Send + Sync;

impl Prompt {
    /// A prompt callback from a closure.
    pub fn new(f: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Prompt {
        Prompt(Arc::new(f))
    }
}

impl std::fmt::Debug for Prompt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Prompt(..)")
    }
}

/// How ssh may ask the user for credentials when it starts the master.
pub(crate) enum Asking {
    /// Through the callback (`SSH_ASKPASS`, forced).
    Callback(Prompt),
    /// On the controlling terminal (`/dev/tty`), as plain ssh does.
    Terminal,
    /// Not at all (`BatchMode=yes`): keys, agent, certificates, GSSAPI only.
    Never,
}

impl Asking {
    pub(crate) fn choose(prompt: Option<&Prompt>, terminal: bool) -> Asking {
        match prompt {
            Some(p) => Asking::Callback(p.clone()),
            None if terminal && has_terminal() => Asking::Terminal,
            None => Asking::Never,
        }
    }
}

/// Whether this process has a controlling terminal ssh can prompt on.
pub(crate) fn has_terminal() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .is_ok()
}

/// What [`launch`] needs: the ssh options and where the master listens and logs.
pub(crate) struct Launch<'a> {
    pub host: &'a str,
    pub name: &'a str,
    pub user: Option<&'a str>,
    pub port: Option<&'a str>,
    pub keyfile: Option<&'a Path>,
    pub config_file: Option<&'a Path>,
    pub known_hosts: KnownHostsPolicy,
    pub known_hosts_file: Option<&'a Path>,
    pub jump_hosts: &'a [String],
    pub connect_timeout: Duration,
    pub keepalive: Duration,
    pub persist: Duration,
    pub socket: &'a Path,
    pub log: &'a Path,
}

/// Start `ssh -M -N -f` listening on `l.socket`; returns once it has authenticated and
/// gone to the background (or failed). In batch mode, gives up after `limit`.
pub(crate) async fn launch(
    l: &Launch<'_>,
    asking: &Asking,
    limit: Duration,
) -> Result<(), ConnectorError> {
    let mut cmd = master_command(l);
    let _askpass = ask_through(&mut cmd, asking, l.name)?;
    cmd.arg("--").arg(l.host);
    let _ = std::fs::remove_file(l.log);
    let status = login(&mut cmd, asking, limit, l.name).await?;
    if status.success() {
        return Ok(());
    }
    let log = std::fs::read_to_string(l.log).unwrap_or_default();
    let err = connect_error(l.name, &log);
    Err(match asking {
        Asking::Never if asks_interactively(&log) => err.hint(NO_TERMINAL_HINT),
        _ => err,
    })
}

/// `ssh -M -f -N` with the launch's options, up to (not including) the destination.
fn master_command(l: &Launch<'_>) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new("ssh");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .arg("-E")
        .arg(l.log)
        .arg("-S")
        .arg(l.socket)
        .args(["-M", "-f", "-N", "-o"])
        .arg(format!("ControlPersist={}s", l.persist.as_secs().max(1)))
        .arg("-o")
        .arg(match l.known_hosts {
            KnownHostsPolicy::AcceptNew => "StrictHostKeyChecking=accept-new",
            KnownHostsPolicy::Strict => "StrictHostKeyChecking=yes",
            KnownHostsPolicy::AcceptAny => "StrictHostKeyChecking=no",
        })
        .arg("-o")
        .arg(format!(
            "ConnectTimeout={}",
            l.connect_timeout.as_secs().max(1)
        ))
        .arg("-o")
        .arg(format!(
            "ServerAliveInterval={}",
            l.keepalive.as_secs().max(1)
        ));
    if let Some(p) = l.port {
        cmd.arg("-p").arg(p);
    }
    if let Some(u) = l.user {
        cmd.arg("-l").arg(u);
    }
    if let Some(k) = l.keyfile {
        cmd.args(["-o", "IdentitiesOnly=yes", "-i"]).arg(k);
    }
    if let Some(f) = l.config_file {
        cmd.arg("-F").arg(f);
    }
    if !l.jump_hosts.is_empty() {
        cmd.arg("-J").arg(l.jump_hosts.join(","));
    }
    if let Some(f) = l.known_hosts_file {
        let mut o = std::ffi::OsString::from("UserKnownHostsFile=");
        o.push(f);
        cmd.arg("-o").arg(o);
    }
    cmd
}

/// Make `cmd` ask as `asking` says: never (`BatchMode`), on the terminal, or through the
/// callback (`SSH_ASKPASS`, forced); the askpass helper lives as long as what is returned.
fn ask_through(
    cmd: &mut tokio::process::Command,
    asking: &Asking,
    name: &str,
) -> Result<Option<Askpass>, ConnectorError> {
    Ok(match asking {
        Asking::Never => {
            cmd.args(["-o", "BatchMode=yes"]);
            None
        }
        Asking::Terminal => None,
        Asking::Callback(p) => {
            let a = Askpass::start(p.clone())
                .map_err(|e| start_error(name, &format!("cannot set up SSH_ASKPASS: {e}")))?;
            cmd.env("SSH_ASKPASS", a.script())
                .env("SSH_ASKPASS_REQUIRE", "force")
                .env(
                    "DISPLAY",
                    std::env::var_os("DISPLAY").unwrap_or(":0".into()),
                );
            Some(a)
        }
    })
}

/// Run the login: within `limit` when nobody is typing (a person may take their time).
async fn login(
    cmd: &mut tokio::process::Command,
    asking: &Asking,
    limit: Duration,
    name: &str,
) -> Result<std::process::ExitStatus, ConnectorError> {
    match asking {
        Asking::Never => match tokio::time::timeout(limit, cmd.kill_on_drop(true).status()).await
        {
            Ok(s) => s,
            Err(_) => {
                return Err(ConnectorError::new(ConnectorErrorKind::Timeout, name, "connect")
                    .detail(format!("no connection after {limit:?}"))
                    .hint("check that the host is reachable, or raise SshConnectorBuilder::connect_timeout"));
            }
        },
        _ => cmd.status().await,
    }
    .map_err(|e| cannot_run_ssh(name, &e))
}

/// The local `ssh` could not be started: missing, or no descriptor left for its pipes.
pub(crate) fn cannot_run_ssh(name: &str, e: &std::io::Error) -> ConnectorError {
    if crate::limits::out_of_files_io(e) {
        return crate::limits::out_of_files(name, "connect", format!("starting `ssh`: {e}"));
    }
    ConnectorError::new(ConnectorErrorKind::Connect, name, "connect")
        .detail(format!("cannot run the local `ssh` program: {e}"))
        .hint("install the OpenSSH client (`ssh`) on this machine")
}

/// The hint for a host that wants a password or a code when nobody can be asked.
pub(crate) const NO_TERMINAL_HINT: &str = "the host asks for a password or a one-time code and \
     there is no terminal to ask on: log in once from a terminal (a persisted connection, e.g. \
     `sremote exec HOST true`, or a master of your own: ControlMaster/ControlPath in \
     ~/.ssh/config and `ssh -MNf HOST`), which later commands reuse; or set up a key; or pass \
     a prompt callback (SshConnectorBuilder::prompt, Python prompt=)";

/// ssh's log says the server offered password or keyboard-interactive logins.
fn asks_interactively(log: &str) -> bool {
    log.lines().any(|l| {
        l.contains("Permission denied") && (l.contains("password") || l.contains("keyboard"))
    })
}

fn start_error(name: &str, what: &str) -> ConnectorError {
    ConnectorError::new(ConnectorErrorKind::Connect, name, "connect").detail(what.to_string())
}

/// An `SSH_ASKPASS` program that hands each prompt to a [`Prompt`] in this process, over
/// two FIFOs in a private (0700) directory: the prompt goes through `q`, the answer
/// (`y<answer>`, or `n` to give up) comes back through `a`.
struct Askpass {
    dir: tempfile::TempDir,
    thread: Option<std::thread::JoinHandle<()>>,
}

const ASKPASS: &str = r#"#!/bin/sh
d=$(dirname "$0")
printf '%s' "$1" > "$d/q" || exit 1
r=$(cat "$d/a") || exit 1
case $r in y*) printf '%s\n' "${r#y}" ;; *) exit 1 ;; esac
"#;

impl Askpass {
    fn start(prompt: Prompt) -> std::io::Result<Askpass> {
        use std::os::unix::fs::OpenOptionsExt;
        let dir = tempfile::Builder::new().prefix("sremote-ask").tempdir()?;
        for fifo in ["q", "a"] {
            let path =
                std::ffi::CString::new(dir.path().join(fifo).into_os_string().into_encoded_bytes())
                    .map_err(std::io::Error::other)?;
            // SAFETY: a NUL-terminated path.
            if unsafe { libc::mkfifo(path.as_ptr(), 0o600) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        let script = dir.path().join("askpass");
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o700)
            .open(&script)?
            .write_all(ASKPASS.as_bytes())?;
        let (q, a) = (dir.path().join("q"), dir.path().join("a"));
        let thread = std::thread::spawn(move || {
            loop {
                let mut text = String::new();
                let read = std::fs::File::open(&q).and_then(|mut f| f.read_to_string(&mut text));
                if read.is_err() || text.starts_with('\0') {
                    return;
                }
                let reply = match (prompt.0)(text.trim_end()) {
                    Some(answer) => format!("y{answer}"),
                    None => "n".into(),
                };
                let wrote = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&a)
                    .and_then(|mut f| f.write_all(reply.as_bytes()));
                if wrote.is_err() {
                    return;
                }
            }
        });
        Ok(Askpass {
            dir,
            thread: Some(thread),
        })
    }

    fn script(&self) -> PathBuf {
        self.dir.path().join("askpass")
    }
}

impl Drop for Askpass {
    fn drop(&mut self) {
        use std::os::unix::fs::OpenOptionsExt;
        let Some(thread) = self.thread.take() else {
            return;
        };
        // Wake the thread wherever it blocks (opening `q` to read, or `a` to write).
        for _ in 0..100 {
            if thread.is_finished() {
                let _ = thread.join();
                return;
            }
            let nonblock = libc::O_NONBLOCK;
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(nonblock)
                .open(self.dir.path().join("q"))
            {
                let _ = f.write_all(b"\0");
            }
            let _ = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(nonblock)
                .open(self.dir.path().join("a"));
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// How long [`stop`] waits for a master to exit after SIGTERM.
const STOP_WAIT: Duration = Duration::from_secs(5);

/// How often [`stop`] repeats SIGTERM while the master runs. ssh notes the signal in a
/// flag that its loop checks before it sleeps in `ppoll`; a signal that lands between
/// that check and the sleep is only seen when the sleep times out (the keepalive
/// interval, seconds), and a second one wakes it.
const STOP_REPEAT: Duration = Duration::from_millis(50);

/// End the master listening on `socket` (one this process started) and wait until its
/// process is gone. Its pid comes from the master itself (a mux alive check); ssh exits
/// on SIGTERM at once, closing its TCP connection, where a mux "stop listening" request
/// would let it linger until its last channel had closed.
pub(crate) async fn stop(socket: &Path, name: &str) -> Result<(), ConnectorError> {
    let fail = |kind, detail: String| {
        ConnectorError::new(kind, name, "close the connection").detail(detail)
    };
    let alive = async {
        let mut c = openssh_mux_client::Connection::connect(socket).await?;
        c.send_alive_check().await
    };
    let Ok(pid) = alive.await else {
        // Not answering: already gone (idle-expired, or closed before).
        return Ok(());
    };
    let pid = i32::try_from(pid.get())
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .ok_or_else(|| {
            fail(
                ConnectorErrorKind::Other,
                format!("the master gave pid {pid}"),
            )
        })?;
    // The program name the pid has now (`ssh`, or whatever the binary is called): it is
    // signalled only while it still has it (not a process that took the pid over).
    let Master::Running(name) = state(pid, None) else {
        return Ok(());
    };
    let deadline = tokio::time::Instant::now() + STOP_WAIT;
    let mut next_signal = tokio::time::Instant::now();
    let mut pause = Duration::from_micros(500);
    while let Master::Running(_) = state(pid, Some(&name)) {
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Err(fail(
                ConnectorErrorKind::Timeout,
                format!(
                    "the ssh master (pid {}) still runs {STOP_WAIT:?} after SIGTERM",
                    pid.as_raw_nonzero()
                ),
            )
            .hint("it ends by itself once its connection drops; `kill -9` it if it does not"));
        }
        if now >= next_signal {
            next_signal = now + STOP_REPEAT;
            match rustix::process::kill_process(pid, rustix::process::Signal::TERM) {
                Ok(()) | Err(rustix::io::Errno::SRCH) => {}
                Err(e) => {
                    return Err(fail(
                        ConnectorErrorKind::Other,
                        format!(
                            "cannot signal the ssh master (pid {}): {e}",
                            pid.as_raw_nonzero()
                        ),
                    ));
                }
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(10));
    }
    Ok(())
}

/// What became of a master's pid.
enum Master {
    /// Still running, under this program name.
    Running(String),
    /// Exited: no such process, a zombie (the master was started with `-f`, so its parent
    /// is whatever reaps orphans, not us), or a pid another program has now.
    Gone,
}

/// The state of `pid`; when `name` is given, a process under another name is [`Master::Gone`].
fn state(pid: rustix::process::Pid, name: Option<&str>) -> Master {
    match std::fs::read_to_string(format!("/proc/{}/stat", pid.as_raw_nonzero())) {
        // `PID (COMM) STATE …`: the command name may hold any byte, even `)`.
        Ok(stat) => {
            let comm = stat.split_once('(').and_then(|(_, r)| r.rsplit_once(')'));
            match comm {
                Some((comm, rest))
                    if name.is_none_or(|n| n == comm)
                        && !matches!(rest.trim_start().chars().next(), Some('Z' | 'X')) =>
                {
                    Master::Running(comm.to_string())
                }
                _ => Master::Gone,
            }
        }
        // No /proc (not Linux): whether the pid exists at all.
        Err(_) if std::path::Path::new("/proc/self/stat").exists() => Master::Gone,
        Err(_) => match rustix::process::test_kill_process(pid) {
            Ok(()) => Master::Running(String::new()),
            Err(_) => Master::Gone,
        },
    }
}
