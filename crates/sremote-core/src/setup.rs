//! The site's environment: shell lines the user configured (`setup = ["module load
//! python/3.11", "source ~/envs/x/bin/activate"]` in the hosts config, `--setup`,
//! [`RemoteClient::set_setup`](crate::RemoteClient::set_setup)) that run on the host before
//! the endpoint starts — its session, pipe and file calls, a detached job, a batch script —
//! optionally in a login shell (`bash -l`), so calls and jobs see the same environment.
//!
//! Setup lines are the user's own shell code, by design; nothing a call carries (its
//! arguments, env, paths) ever reaches them: the wrapped program and its arguments stay
//! positional parameters (`exec "$@"`). The lines run in bash (`bash -l` with
//! [`Setup::login_shell`]; `/bin/sh` on a host without bash), each with `command eval` in
//! the shell that then becomes the endpoint, so `source`, `export` and `module load` carry
//! over; a line whose status is not 0 (or that does not parse) stops there: the shell
//! prints `sremote: setup line N failed (exit status S): LINE` on stderr and exits with
//! [`SETUP_FAILED_EXIT`], which the client turns into [`Error::Setup`](crate::Error::Setup)
//! naming the line and the host. While setup runs, its stdout goes to stderr (a login
//! script's greeting cannot garble the protocol on stdout), and the endpoint starts in the
//! directory the command started in (the home directory), whatever the lines `cd` to.

use serde::{Deserialize, Serialize};

use crate::shell::quote_always;

/// The exit status of a shell whose setup line failed (distinct from 126/127, which mean
/// "the endpoint is missing", so a failing `module load` never triggers a bootstrap).
pub const SETUP_FAILED_EXIT: i32 = 125;

/// What a failing setup line prints first (on stderr, and into a batch job's log).
const MARK: &str = "sremote: setup line ";

/// Shell lines to run on the host before the endpoint or a job starts, and whether to run
/// them (and the endpoint) in a login shell.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Setup {
    /// Shell code, one entry per step (an entry may span lines, e.g. an `if … fi`).
    #[serde(default)]
    pub lines: Vec<String>,
    /// Run in `bash -l` (the login environment: `/etc/profile`, `~/.bash_profile`, and
    /// with them `module`), not plain `bash`.
    #[serde(default)]
    pub login_shell: bool,
}

impl Setup {
    /// Setup of `lines`, in a login shell when `login_shell`.
    pub fn new<I, S>(lines: I, login_shell: bool) -> Setup
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Setup {
            lines: lines.into_iter().map(Into::into).collect(),
            login_shell,
        }
    }

    /// Whether there is nothing to do (no lines, no login shell): commands run unwrapped.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty() && !self.login_shell
    }

    /// A line that cannot be setup code (a NUL byte), as a message naming it.
    pub fn check(&self) -> Result<(), String> {
        match self.lines.iter().position(|l| l.contains('\0')) {
            Some(i) => Err(format!(
                "setup line {} ({:?}) contains a NUL byte — shell code cannot",
                i + 1,
                self.lines[i]
            )),
            None => Ok(()),
        }
    }

    /// The shell code that runs every line and stops at the first that fails, calling
    /// the shell function `fail` with the line's number, its status and its text.
    /// `fd3`: the lines run with fd 3 (the saved stdout of a wrapped command) closed.
    pub fn checked_lines(&self, fail: &str, fd3: bool) -> String {
        let mut out = String::new();
        for (i, line) in self.lines.iter().enumerate() {
            let q = quote_always(line);
            let close = if fd3 { " 3>&-" } else { "" };
            out.push_str(&format!(
                "command eval {q}{close} || {fail} {} \"$?\" {q}\n",
                i + 1
            ));
        }
        out
    }

    /// The `printf` format of the failure message (arguments: number, status, line).
    pub fn failure_format() -> String {
        format!("{MARK}%s failed (exit status %s): %s\\n")
    }
}

#[cfg(feature = "client")]
/// The script a wrapped command runs in bash (or `/bin/sh`) as `sremote-setup` (`$0`,
/// what the shell's complaints start with): `"$@"` is the program and its arguments, fd 3
/// the saved stdout (the outer script made it).
fn wrapper_script(setup: &Setup) -> String {
    let mut s = String::from("sremote_wd=$PWD\n");
    s.push_str(&format!(
        "sremote_setup_failed() {{ printf '{}' \"$1\" \"$2\" \"$3\"; exit {SETUP_FAILED_EXIT}; }}\n",
        Setup::failure_format()
    ));
    s.push_str(&setup.checked_lines("sremote_setup_failed", true));
    s.push_str("cd \"$sremote_wd\" || exit 125\nexec 1>&3 3>&-\nexec \"$@\"\n");
    s
}

#[cfg(feature = "client")]
/// The outer `/bin/sh` script: saves stdout on fd 3 (setup output goes to stderr), then
/// runs the wrapper script (`$1`) in `bash` (`bash -l` for a login shell), or in `/bin/sh`
/// on a host without bash.
fn outer_script(login_shell: bool) -> String {
    let without_bash = if login_shell {
        format!(
            "printf '{}' 0 127 'login_shell = true needs bash on the host'; exit {SETUP_FAILED_EXIT}",
            Setup::failure_format()
        )
    } else {
        "exec /bin/sh -c \"$s\" sremote-setup \"$@\"".to_string()
    };
    let bash = if login_shell { "bash -l" } else { "bash" };
    format!(
        "exec 3>&1 1>&2\n\
         s=$1; shift\n\
         command -v bash >/dev/null 2>&1 && exec {bash} -c \"$s\" sremote-setup \"$@\"\n\
         {without_bash}\n"
    )
}

#[cfg(feature = "client")]
impl Setup {
    /// `cmd` run after the setup: `/bin/sh -c OUTER sremote-setup SCRIPT PROGRAM ARGS…`,
    /// which becomes `bash [-l] -c SCRIPT sremote-setup PROGRAM ARGS…` and then the program. The program
    /// and its arguments stay data. Unchanged when the setup is empty.
    pub fn wrap(&self, cmd: crate::RemoteCommand) -> crate::RemoteCommand {
        if self.is_empty() {
            return cmd;
        }
        let mut args = vec![
            "-c".to_string(),
            outer_script(self.login_shell),
            "sremote-setup".into(),
            wrapper_script(self),
        ];
        args.push(cmd.program.clone());
        args.extend(cmd.args.iter().cloned());
        crate::RemoteCommand {
            program: "/bin/sh".into(),
            args,
            ..cmd
        }
    }
}

/// The setup of a client: [`RemoteClient::set_setup`](crate::RemoteClient::set_setup) and
/// friends.
#[cfg(feature = "client")]
impl<C: crate::Connector> crate::RemoteClient<C> {
    /// Run `lines` of shell code on the host before the endpoint starts — its session,
    /// pipe and file calls, detached jobs, batch scripts (the site's environment:
    /// `module load python/3.11`, `source ~/envs/x/bin/activate`; see
    /// [`setup`](crate::setup)). Replaces earlier lines; a session already open is closed,
    /// so the next call starts the endpoint in the new environment.
    pub fn set_setup<I: IntoIterator<Item = S>, S: Into<String>>(&self, lines: I) {
        crate::client::lock(&self.inner.settings).setup.lines =
            lines.into_iter().map(Into::into).collect();
        self.close_session_for_setup();
    }

    /// Add one line to the setup ([`set_setup`](crate::RemoteClient::set_setup)).
    pub fn add_setup(&self, line: impl Into<String>) {
        crate::client::lock(&self.inner.settings)
            .setup
            .lines
            .push(line.into());
        self.close_session_for_setup();
    }

    /// Run the setup and the endpoint in a login shell (`bash -l`: `/etc/profile`,
    /// `~/.bash_profile`, and with them `module`), default off.
    pub fn set_login_shell(&self, on: bool) {
        crate::client::lock(&self.inner.settings).setup.login_shell = on;
        self.close_session_for_setup();
    }

    /// The setup lines and login-shell choice in use.
    pub fn setup(&self) -> Setup {
        crate::client::lock(&self.inner.settings).setup.clone()
    }

    /// `cmd` run after this client's setup (unchanged without one): what the endpoint's
    /// starts use, and what a detached job's start uses (`sremote-jobs`).
    pub fn with_setup(&self, cmd: crate::RemoteCommand) -> crate::RemoteCommand {
        self.setup().wrap(cmd)
    }

    /// The [`Error::Setup`](crate::Error::Setup) in a wrapped command's exit status and stderr, for `action`.
    pub fn setup_error(
        &self,
        action: &str,
        exit_code: Option<i32>,
        stderr: &[u8],
    ) -> Option<crate::Error> {
        let f = failure(exit_code, stderr)?;
        Some(self.setup_failed(action, f))
    }

    pub(crate) fn setup_failed(&self, action: &str, f: SetupFailure) -> crate::Error {
        // Name the line as the user wrote it (the host printed it too, after quoting).
        let text = f
            .line
            .checked_sub(1)
            .and_then(|i| self.setup().lines.get(i).cloned())
            .unwrap_or(f.text);
        crate::Error::Setup(Box::new(crate::error::SetupError {
            host: self.host().to_string(),
            action: action.to_string(),
            line: f.line,
            text,
            status: f.status,
            output: f.output,
        }))
    }

    /// A changed setup applies to sessions opened afterwards: drop the open one (calls in
    /// flight keep it until they end).
    fn close_session_for_setup(&self) {
        if let Ok(mut slot) = self.inner.session.try_lock() {
            *slot = None;
        }
    }
}

/// A setup line that failed on the host, as its shell reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupFailure {
    /// The line's number, from 1 (0: the login shell itself, e.g. no bash).
    pub line: usize,
    /// Its exit status.
    pub status: i32,
    /// The line as the host printed it.
    pub text: String,
    /// What else the shell printed on stderr (the line's own complaint), trimmed.
    pub output: String,
}

/// The setup failure in what a wrapped command left: exit status [`SETUP_FAILED_EXIT`]
/// and the failure line on stderr; `None` otherwise.
pub fn failure(exit_code: Option<i32>, stderr: &[u8]) -> Option<SetupFailure> {
    if exit_code != Some(SETUP_FAILED_EXIT) {
        return None;
    }
    let text = String::from_utf8_lossy(stderr);
    let at = text.rfind(MARK)?;
    let rest = &text[at + MARK.len()..];
    let (line, rest) = rest.split_once(" failed (exit status ")?;
    let (status, rest) = rest.split_once("): ")?;
    let output: String = text[..at].trim().to_string();
    let keep = output.len().saturating_sub(2000);
    let start = (keep..=output.len())
        .find(|&i| output.is_char_boundary(i))
        .unwrap_or(output.len());
    Some(SetupFailure {
        line: line.parse().ok()?,
        status: status.parse().ok()?,
        text: rest.trim_end_matches('\n').to_string(),
        output: output[start..].to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_lines_are_parsed() {
        let err = b"sh: 1: eval: module: not found\nsremote: setup line 2 failed (exit status 127): module load x\n";
        let f = failure(Some(125), err).unwrap();
        assert_eq!((f.line, f.status), (2, 127));
        assert_eq!(f.text, "module load x");
        assert_eq!(f.output, "sh: 1: eval: module: not found");
        assert_eq!(failure(Some(1), err), None);
        assert_eq!(failure(Some(125), b"other"), None);
    }

    #[test]
    fn empty_setup_leaves_commands_alone() {
        assert!(Setup::default().is_empty());
        assert!(!Setup::new(Vec::<String>::new(), true).is_empty());
        assert!(Setup::new(["a\0b"], false).check().is_err());
    }
}
