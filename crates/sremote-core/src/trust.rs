//! The sremote directory on a host is trusted: the endpoint binary in `<dir>/bin` runs for
//! every call. So neither bootstrap nor a call uses a directory that another user could
//! change: the sremote dir, its `bin`, and the directories between the home directory
//! and it (those bootstrap would create) must be directories owned by the login user (or
//! root) and not writable by group or others; a symlink is judged by what it points to,
//! and a dangling one is refused. The check is a fixed shell function (the directory is
//! its positional argument): part of bootstrap's probe, part of every session start
//! ([`guarded`]: the check and the endpoint in one remote program), and one `exec` before
//! a client's first pipe or file call (not per call — the call path is latency-critical);
//! see ARCHITECTURE.md, "Trust".

use std::time::Duration;

use crate::client::{RemoteClient, lock};
use crate::connector::{Connector, ConnectorError, ConnectorErrorKind, RemoteCommand};
use crate::error::Error;

/// `sremote_trusted DIR` prints `untrusted=KIND UID MODE PATH[ -> TARGET]` for the first
/// of DIR's components below the working directory (the home directory; an absolute DIR:
/// only DIR), DIR itself and `DIR/bin` that another user could change, and fails; KIND is
/// `owner`, `mode`, `notdir` or `dangling`.
///
/// It runs before every session start, so it is cheap: the tests are shell builtins
/// (`-h`, `-e`, `-O`) and one `stat -L -c` for all the paths (GNU coreutils and BusyBox
/// keep the operands' order). Where that `stat` is missing or fails (BSD `stat`, a path
/// it cannot read), the same rules run path by path on `ls -ldnL` and `id -u`.
macro_rules! trust_fn {
    () => {
        r#"sremote_untrusted() {
  t=; [ -h "$4" ] && t=" -> $(cd -P -- "$4" 2>/dev/null && pwd)"
  printf 'untrusted=%s %s %s %s%s\n' "$1" "$2" "$3" "$4" "$t"; return 1
}
sremote_judge() {
  case $2 in d*) ;; *) sremote_untrusted notdir "$1" "$2" "$3"; return 1 ;; esac
  [ "$1" = 0 ] || [ -O "$3" ] || [ "$1" = "$sremote_me" ] || { sremote_untrusted owner "$1" "$2" "$3"; return 1; }
  case $2 in ?????w*|????????w*) sremote_untrusted mode "$1" "$2" "$3"; return 1 ;; esac
  return 0
}
sremote_trusted() {
  d=${1%/}
  case $d in
    /*) set -- "$d" ;;
    *) r=$d; set --; p=; o=$IFS; IFS=/; set -f
       for c in $r; do [ -n "$c" ] || continue; p=${p:+$p/}$c; set -- "$@" "$p"; done
       IFS=$o; set +f ;;
  esac
  set -- "$@" "$d/bin"
  for p do
    shift
    if [ -e "$p" ]; then set -- "$@" "$p"
    elif [ -h "$p" ]; then
      printf 'untrusted=dangling - - %s -> %s\n' "$p" "$(ls -l -- "$p" | sed 's/.* -> //')"; return 1
    fi
  done
  [ $# -gt 0 ] || return 0
  n='
'
  if l=$(stat -L -c '%u %A' -- "$@" 2>/dev/null) && [ -n "$l" ]; then
    l=$l$n
    for p do
      s=${l%%"$n"*}; l=${l#*"$n"}
      sremote_judge "${s%% *}" "${s#* }" "$p" || return 1
    done
    return 0
  fi
  sremote_me=$(id -u) || return 0
  for p do
    l=$(ls -ldnL -- "$p" 2>/dev/null) || continue
    set -f; set -- $l; set +f
    sremote_judge "$3" "$1" "$p" || return 1
  done
  return 0
}
"#
    };
}
pub(crate) use trust_fn;

/// The check alone: `$1` the sremote dir. Also checks `~/.sremote`, where `.location`
/// (which may name another sremote dir) lives.
const TRUST_SCRIPT: &str = concat!(
    trust_fn!(),
    r#"sremote_trusted "$1" && { [ "${1%/}" = .sremote ] || sremote_trusted .sremote; }
exit 0
"#
);

/// The exit status of a session start whose sremote dir check failed ([`guarded`]); its
/// `untrusted=…` line is on stderr.
pub(crate) const UNTRUSTED_EXIT: i32 = 122;

/// `cmd` (the endpoint's session start) run after the check of `dir`, in the same remote
/// program: `sh -c CHECK sh DIR PROGRAM ARGS…`, which checks and then `exec`s the
/// program, or prints its `untrusted=…` line on stderr and exits [`UNTRUSTED_EXIT`]. One
/// start instead of a check and a start: a round trip less for a client's first call.
/// The program and its arguments stay positional parameters (data); a relative program
/// path is made absolute against the directory the start runs in (the home directory), as
/// connectors do for a program they start themselves.
///
/// A program given by path that is not there (or not executable) is not started; the
/// start offers to install it instead ([`crate::bootstrap::NEED`]): it prints `SRMTNEED`,
/// the bootstrap probe (`sremote-probe:` lines, then `sremote-probe:end`) on stdout and
/// reads a line `LENGTH SHA256` from stdin — then LENGTH bytes of the endpoint, which it
/// verifies, puts in place (as an install does, 0700 dirs, 0755 binary) and starts: a fresh
/// host's first call in one remote program. End of stdin instead of the line (the client
/// declines): exit 127, the probe saved the bootstrap its own.
pub(crate) fn guarded(dir: &str, cmd: RemoteCommand) -> RemoteCommand {
    let script = concat!(
        trust_fn!(),
        crate::bootstrap::probe_fn!(),
        crate::bootstrap::install_fns!(),
        r#"{ sremote_trusted "$1" && { [ "${1%/}" = .sremote ] || sremote_trusted .sremote; }; } >&2 || exit 122
d=$1; shift
case $1 in /*) ;; */*) p=$PWD/$1; shift; set -- "$p" "$@" ;; esac
case $1 in */*) [ -x "$1" ] || {
  printf 'SRMTNEED\n'; sremote_probe "$d" "${1##*/}" sremote-probe:; printf 'sremote-probe:end\n'
  IFS=' ' read -r n want || exit 127
  case $n in '' | *[!0-9]*) exit 127 ;; esac
  ( umask 077; t="$d/bin/.${1##*/}.$$.part"
    sremote_dirs "$d" "" || exit $?
    head -c "$n" > "$t" || { rm -f -- "$t"; echo "cannot write $t" >&2; exit 69; }
    sremote_place "$t" "$want" "$1" || { r=$?; rm -f -- "$t"; exit $r; } ) || exit $?
} ;; esac
exec "$@"
"#
    );
    let mut args = vec![
        "-c".to_string(),
        script.to_string(),
        "sh".into(),
        dir.into(),
    ];
    args.push(cmd.program.clone());
    args.extend(cmd.args.iter().cloned());
    RemoteCommand {
        program: "sh".into(),
        args,
        ..cmd
    }
}

/// An `untrusted=…` line of the check as an error for `host`, `action`.
pub(crate) fn untrusted_error(host: &str, action: &str, line: &str) -> Error {
    let mut words = line.splitn(4, ' ');
    let (kind, uid, mode) = (
        words.next().unwrap_or(""),
        words.next().unwrap_or("?"),
        words.next().unwrap_or("?"),
    );
    let rest = words.next().unwrap_or("");
    let (path, target) = match rest.split_once(" -> ") {
        Some((p, t)) => (p, Some(t)),
        None => (rest, None),
    };
    let shown = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("~/{path}")
    };
    let named = match target {
        Some(t) => format!("{shown} (a symlink to {t})"),
        None => shown.clone(),
    };
    let real = target.unwrap_or(&shown);
    let (what, fix) = match kind {
        "owner" => (
            format!("{named} belongs to uid {uid}, not to the login user"),
            format!(
                "if it is yours, have an administrator give it back (`chown -R $USER {real}`); \
                 else remove {shown} and bootstrap again, or choose another sremote directory"
            ),
        ),
        "mode" => (
            format!("{named} is writable by group or others ({mode})"),
            format!("run `chmod go-w {real}` on the host (and check what is in it)"),
        ),
        "dangling" => (
            format!("{named} is a symlink to nothing"),
            format!("remove the symlink {shown} (`rm {shown}`), then bootstrap again"),
        ),
        _ => (
            format!("{named} is not a directory ({mode})"),
            format!("remove or rename {shown}, then bootstrap again"),
        ),
    };
    Error::Transport(
        ConnectorError::new(ConnectorErrorKind::PermissionDenied, host, action)
            .detail(format!(
                "refusing the sremote directory: {what} — whoever can change it can replace \
                 the endpoint that runs your calls"
            ))
            .hint(fix),
    )
}

/// The first `untrusted=` line of a script's output.
pub(crate) fn untrusted_line(stdout: &[u8]) -> Option<String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .find_map(|l| l.strip_prefix("untrusted=").map(str::to_owned))
}

impl<C: Connector> RemoteClient<C> {
    /// Check, once per client and sremote dir, that the sremote dir on the host is safe
    /// to run the endpoint from (see the module docs); bootstrap's probe counts as the
    /// check. Calls do it before their first use of the endpoint.
    pub async fn verify_endpoint_dir(&self) -> Result<(), Error> {
        let dir = self.sremote_dir();
        if lock(&self.inner.state).trusted_dir.as_deref() == Some(dir.as_str()) {
            return Ok(());
        }
        let cmd = RemoteCommand::new("sh")
            .args(["-c", TRUST_SCRIPT, "sh", &dir])
            .timeout(Duration::from_secs(60));
        let out = self.inner.connector.exec(&cmd).await?;
        if let Some(line) = untrusted_line(&out.stdout) {
            return Err(untrusted_error(
                self.host(),
                &format!("check the sremote directory {dir}"),
                &line,
            ));
        }
        lock(&self.inner.state).trusted_dir = Some(dir);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The check, run by the local `/bin/sh` in `home` on `dir`; `slow`: with a `stat`
    /// that fails, so the path-by-path fallback runs.
    fn check(home: &std::path::Path, dir: &str, slow: bool) -> Option<String> {
        let mut cmd = std::process::Command::new("sh");
        cmd.args(["-c", TRUST_SCRIPT, "sh", dir]).current_dir(home);
        if slow {
            let shim = home.join("shim");
            std::fs::create_dir_all(&shim).unwrap();
            let stat = shim.join("stat");
            std::fs::write(&stat, "#!/bin/sh\nexit 1\n").unwrap();
            set_mode(&stat, 0o755);
            let path = std::env::var("PATH").unwrap_or_default();
            cmd.env("PATH", format!("{}:{path}", shim.display()));
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        untrusted_line(&out.stdout)
    }

    fn set_mode(p: &std::path::Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// The guarded start runs the program with its arguments as data when the dir is
    /// trusted, and refuses with [`UNTRUSTED_EXIT`] and the line on stderr when not.
    #[test]
    fn a_guarded_start_checks_then_runs_the_program_untouched() {
        let home = tempfile::tempdir().unwrap();
        let h = home.path();
        std::fs::create_dir_all(h.join(".sremote/bin")).unwrap();
        set_mode(&h.join(".sremote"), 0o700);
        let hostile = ["$(touch pwned)", "a b", "'\"", ";id", "\n", ""];
        let cmd = guarded(
            ".sremote",
            RemoteCommand::new("printf").arg("<%s>").args(hostile),
        );
        assert!(cmd.args[1].contains(&format!("exit {UNTRUSTED_EXIT}\n")));
        let run = || {
            std::process::Command::new(&cmd.program)
                .args(&cmd.args)
                .current_dir(h)
                .output()
                .unwrap()
        };
        let out = run();
        assert!(out.status.success(), "{out:?}");
        let want: String = hostile.iter().map(|a| format!("<{a}>")).collect();
        assert_eq!(String::from_utf8_lossy(&out.stdout), want);
        assert!(!h.join("pwned").exists());
        // A relative program runs by its absolute path (as `ps` shows it).
        let show = h.join(".sremote/bin/show");
        std::fs::write(&show, "#!/bin/sh\nprintf %s \"$0\"\n").unwrap();
        set_mode(&show, 0o755);
        let rel = guarded(".sremote", RemoteCommand::new(".sremote/bin/show"));
        let out = std::process::Command::new(&rel.program)
            .args(&rel.args)
            .current_dir(h)
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            show.display().to_string()
        );
        set_mode(&h.join(".sremote/bin"), 0o777);
        let out = run();
        assert_eq!(out.status.code(), Some(UNTRUSTED_EXIT));
        assert!(out.stdout.is_empty(), "nothing on the protocol stream");
        let line = untrusted_line(&out.stderr).unwrap();
        assert!(line.ends_with(" drwxrwxrwx .sremote/bin"), "{line}");
    }

    /// A start whose program is missing (or not executable) runs nothing: it offers to
    /// install it (`SRMTNEED`, the probe on stdout) and exits 127 when the client declines
    /// (end of stdin) or sends no length; given `LENGTH SHA256` and the binary, it
    /// verifies and installs it and starts it with the arguments; a wrong hash installs
    /// nothing.
    #[test]
    fn a_start_that_finds_no_endpoint_offers_to_install_it() {
        use crate::bootstrap::{FAKE_ENDPOINT, NEED, parse_offered_probe, sha256_hex};
        use std::io::Write;
        let home = tempfile::tempdir().unwrap();
        let h = home.path();
        std::fs::create_dir_all(h.join(".sremote/bin")).unwrap();
        set_mode(&h.join(".sremote"), 0o700);
        std::fs::write(h.join(".sremote/bin/sremote-endpoint-0.0.1"), "old").unwrap();
        let name = "sremote-endpoint-9.9.9";
        let installed = h.join(".sremote/bin").join(name);
        let start = |rel: bool, input: &[u8]| {
            let program = match rel {
                true => format!(".sremote/bin/{name}"),
                false => installed.display().to_string(),
            };
            let cmd = guarded(
                ".sremote",
                RemoteCommand::new(program).args(["serve", "a b"]),
            );
            let mut child = std::process::Command::new(&cmd.program)
                .args(&cmd.args)
                .current_dir(h)
                .env("HOME", h)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            child.stdin.take().unwrap().write_all(input).unwrap();
            child.wait_with_output().unwrap()
        };
        let offered = |out: &std::process::Output| {
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(text.as_bytes().starts_with(NEED), "{text}");
            parse_offered_probe(&text).expect("the probe's facts")
        };
        for rel in [true, false] {
            let out = start(rel, b"");
            assert_eq!(out.status.code(), Some(127), "{out:?}");
            let facts = offered(&out);
            assert!(!facts.os.is_empty() && !facts.arch.is_empty(), "{facts:?}");
            assert_eq!(facts.home, h.display().to_string());
            assert_eq!(facts.installed_sha256, None);
            assert_eq!(facts.binaries, ["sremote-endpoint-0.0.1"]);
        }
        // A length that is not a number is no install.
        assert_eq!(start(true, b"12x abc\n").status.code(), Some(127));
        // A wrong hash: refused, nothing left behind.
        let mut input = format!("{} {}\n", FAKE_ENDPOINT.len(), "0".repeat(64)).into_bytes();
        input.extend_from_slice(FAKE_ENDPOINT.as_bytes());
        let out = start(true, &input);
        assert_eq!(out.status.code(), Some(65), "{out:?}");
        let left: Vec<_> = std::fs::read_dir(h.join(".sremote/bin")).unwrap().collect();
        assert_eq!(left.len(), 1, "only the old endpoint: {left:?}");
        // The right one: installed (0755) and started with its arguments.
        let sha = sha256_hex(FAKE_ENDPOINT.as_bytes());
        let mut input = format!("{} {sha}\n", FAKE_ENDPOINT.len()).into_bytes();
        input.extend_from_slice(FAKE_ENDPOINT.as_bytes());
        let out = start(true, &input);
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.ends_with("sremote-probe:end\nstarted:serve a b\n"),
            "{text}"
        );
        assert_eq!(std::fs::read(&installed).unwrap(), FAKE_ENDPOINT.as_bytes());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&installed).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
        // Installed: the next start runs it at once, no offer.
        let out = start(true, b"");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "started:serve a b\n");
    }

    /// Each refusal, by the one-`stat` path and by the path-by-path fallback alike.
    #[test]
    fn the_check_refuses_what_another_user_could_change_by_both_paths() {
        for slow in [false, true] {
            let home = tempfile::tempdir().unwrap();
            let h = home.path();
            let sr = h.join(".sremote");
            assert_eq!(check(h, ".sremote", slow), None, "nothing there yet");
            std::fs::create_dir_all(sr.join("bin")).unwrap();
            set_mode(&sr, 0o700);
            set_mode(&sr.join("bin"), 0o700);
            assert_eq!(check(h, ".sremote", slow), None, "slow={slow}");
            set_mode(&sr.join("bin"), 0o777);
            let line = check(h, ".sremote", slow).unwrap();
            assert!(
                line.starts_with("mode ") && line.ends_with(" drwxrwxrwx .sremote/bin"),
                "{line}"
            );
            set_mode(&sr.join("bin"), 0o700);
            set_mode(&sr, 0o775);
            let line = check(h, ".sremote", slow).unwrap();
            assert!(line.ends_with(" drwxrwxr-x .sremote"), "{line}");
            set_mode(&sr, 0o700);

            // A custom dir below an open one, named with a trailing slash.
            std::fs::create_dir_all(h.join("scratch/sr")).unwrap();
            set_mode(&h.join("scratch"), 0o757);
            let line = check(h, "scratch/sr/", slow).unwrap();
            assert!(
                line.starts_with("mode ") && line.ends_with(" scratch"),
                "{line}"
            );
            set_mode(&h.join("scratch"), 0o755);
            assert_eq!(check(h, "scratch/sr/", slow), None);

            // Not a directory; a dangling symlink; a symlink to an open directory.
            std::fs::write(h.join("file"), b"x").unwrap();
            let line = check(h, "file", slow).unwrap();
            assert!(line.starts_with("notdir "), "{line}");
            std::os::unix::fs::symlink(h.join("nowhere"), h.join("dangling")).unwrap();
            let line = check(h, "dangling", slow).unwrap();
            assert!(line.starts_with("dangling - - dangling -> "), "{line}");
            let open = tempfile::tempdir().unwrap();
            set_mode(open.path(), 0o777);
            std::os::unix::fs::symlink(open.path(), h.join("link")).unwrap();
            let line = check(h, "link", slow).unwrap();
            let target = open.path().canonicalize().unwrap();
            assert!(
                line.starts_with("mode ")
                    && line.ends_with(&format!("link -> {}", target.display())),
                "{line}"
            );

            // Owned by another user (only root can make one here).
            let theirs = h.join("theirs");
            std::fs::create_dir(&theirs).unwrap();
            if std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).is_ok() {
                let line = check(h, "theirs", slow).unwrap();
                assert!(line.starts_with("owner 65534 drwx"), "{line}");
            }
        }
    }

    #[test]
    fn messages_say_what_and_how_to_fix() {
        let e = untrusted_error(
            "h",
            "bootstrap",
            "owner 65534 drwx------ .sremote -> /tmp/x",
        );
        let s = e.to_string();
        assert!(
            s.contains("~/.sremote (a symlink to /tmp/x) belongs to uid 65534"),
            "{s}"
        );
        assert!(s.contains("chown -R $USER /tmp/x"), "{s}");
        let s = untrusted_error("h", "call", "mode 0 drwxrwxrwx /scratch/sr").to_string();
        assert!(
            s.contains("/scratch/sr is writable by group or others (drwxrwxrwx)"),
            "{s}"
        );
        assert!(s.contains("chmod go-w /scratch/sr"), "{s}");
        assert_eq!(
            untrusted_line(b"os=Linux\nuntrusted=mode 1 drwxrwxrwx a b\n").as_deref(),
            Some("mode 1 drwxrwxrwx a b")
        );
    }
}
