//! The sremote directory on a host is trusted: the endpoint binary in `<dir>/bin` runs for
//! every call. So neither bootstrap nor a call uses a directory that another user could
//! change: the sremote dir, its `bin`, and the directories between the home directory
//! and it (those bootstrap would create) must be directories owned by the login user (or
//! root) and not writable by group or others; a symlink is judged by what it points to,
//! and a dangling one is refused. The check is a fixed shell function (the directory is
//! its positional argument): part of bootstrap's probe, and one `exec` before the first
//! call of a client (not per call — the call path is latency-critical); see
//! ARCHITECTURE.md, "Trust".

use std::time::Duration;

use crate::client::{RemoteClient, lock};
use crate::connector::{Connector, ConnectorError, ConnectorErrorKind, RemoteCommand};
use crate::error::Error;

/// `sremote_trusted DIR` prints `untrusted=KIND UID MODE PATH[ -> TARGET]` for the first
/// of DIR's components below the working directory (the home directory; an absolute DIR:
/// only DIR), DIR itself and `DIR/bin` that another user could change, and fails; KIND is
/// `owner`, `mode`, `notdir` or `dangling`.
macro_rules! trust_fn {
    () => {
        r#"sremote_trusted() {
  me=$(id -u) || return 0
  d=${1%/}
  case $d in
    /*) set -- "$d" ;;
    *) r=$d; set --; p=; o=$IFS; IFS=/; set -f
       for c in $r; do [ -n "$c" ] || continue; p=${p:+$p/}$c; set -- "$@" "$p"; done
       IFS=$o; set +f ;;
  esac
  for p in "$@" "$d/bin"; do
    t=; [ -h "$p" ] && t=" -> $(cd -P -- "$p" 2>/dev/null && pwd)"
    if [ ! -e "$p" ]; then
      [ -h "$p" ] && { printf 'untrusted=dangling - - %s -> %s\n' "$p" "$(ls -l -- "$p" | sed 's/.* -> //')"; return 1; }
      continue
    fi
    l=$(ls -ldnL -- "$p" 2>/dev/null) || continue
    set -f; set -- $l; set +f
    case $1 in d*) ;; *) printf 'untrusted=notdir %s %s %s%s\n' "$3" "$1" "$p" "$t"; return 1 ;; esac
    [ "$3" = "$me" ] || [ "$3" = 0 ] || { printf 'untrusted=owner %s %s %s%s\n' "$3" "$1" "$p" "$t"; return 1; }
    case $1 in ?????w*|????????w*) printf 'untrusted=mode %s %s %s%s\n' "$3" "$1" "$p" "$t"; return 1 ;; esac
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
    r#"sremote_trusted "$1" && sremote_trusted .sremote
exit 0
"#
);

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
