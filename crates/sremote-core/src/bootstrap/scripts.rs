//! Bootstrap's shell scripts and what they print: the probe (also run by a session start
//! that finds no endpoint), the install (receive, verify, rename into place), the
//! `.location` and tmp dir steps. Variable data reaches them only as positional
//! arguments.

#[cfg(test)]
use super::sha256_hex;

/// What the probe learned about a host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostFacts {
    /// `uname -s` (e.g. `Linux`).
    pub os: String,
    /// `uname -m` (e.g. `x86_64`).
    pub arch: String,
    /// The login user's home directory.
    pub home: String,
    /// SHA-256 of the installed endpoint, when there is one.
    pub installed_sha256: Option<String>,
    /// Contents of `~/.sremote/.location`, when present.
    pub location: Option<String>,
    /// Names of the `sremote-endpoint-*` files in `<sremote dir>/bin`.
    pub binaries: Vec<String>,
    /// Why the sremote dir cannot be trusted (`KIND UID MODE PATH`), when it cannot.
    pub untrusted: Option<String>,
}

impl HostFacts {
    /// The endpoint build this host needs, `<os>-<arch>` (e.g. `linux-x86_64`).
    pub fn target(&self) -> String {
        format!("{}-{}", self.os.to_lowercase(), self.arch)
    }
}

/// `sremote_probe DIR NAME PREFIX` prints what bootstrap needs to know about the host, one
/// `PREFIX key=value` line each: `os`, `arch`, `home`, `sha256` of `DIR/bin/NAME` when it
/// exists, `location` (`~/.sremote/.location` on one line) and `bin` for each endpoint in
/// `DIR/bin` (see [`parse_probe`]). Shared by the probe and a session start that finds
/// no endpoint (`crate::trust::guarded`), which saves the probe's own round trip.
macro_rules! probe_fn {
    () => {
        r#"sremote_probe() {
  u=$(uname -s -m)
  printf '%sos=%s\n%sarch=%s\n%shome=%s\n' "$3" "${u% *}" "$3" "${u##* }" "$3" "$HOME"
  if [ -f "$1/bin/$2" ]; then
    h=$( (sha256sum -- "$1/bin/$2" || shasum -a 256 -- "$1/bin/$2") 2>/dev/null | cut -c1-64)
    printf '%ssha256=%s\n' "$3" "$h"
  fi
  if [ -f "$HOME/.sremote/.location" ]; then
    printf '%slocation=%s\n' "$3" "$(tr '\n' ' ' < "$HOME/.sremote/.location")"
  fi
  for b in "$1"/bin/sremote-endpoint-*; do
    [ -f "$b" ] && printf '%sbin=%s\n' "$3" "${b##*/}"
  done
  return 0
}
"#
    };
}
pub(crate) use probe_fn;

/// Shell script run once by the probe. All variable data arrives as positional arguments.
/// It first checks that the sremote dir can be trusted (`crate::trust`).
pub(crate) const PROBE_SCRIPT: &str = concat!(
    crate::trust::trust_fn!(),
    probe_fn!(),
    r#"sremote_trusted "$1" && sremote_trusted .sremote
sremote_probe "$1" "$2" ""
exit 0
"#
);

/// What a session start that finds no endpoint prints first on stdout, instead of the
/// endpoint's handshake (`crate::trust::guarded`); the probe's lines follow, prefixed
/// [`PROBE_PREFIX`], up to [`PROBE_END`].
pub(crate) const NEED: &[u8; 8] = b"SRMTNEED";

/// The prefix of the probe's lines after [`NEED`].
pub(crate) const PROBE_PREFIX: &str = "sremote-probe:";

/// The line that ends the probe after [`NEED`].
pub(crate) const PROBE_END: &str = "sremote-probe:end";

/// The facts in the probe lines after [`NEED`] (each prefixed [`PROBE_PREFIX`]; other
/// lines are ignored); `None` without an OS and arch.
pub(crate) fn parse_offered_probe(text: &str) -> Option<HostFacts> {
    let lines: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix(PROBE_PREFIX))
        .collect();
    Some(parse_probe(lines.join("\n").as_bytes()))
        .filter(|f| !f.os.is_empty() && !f.arch.is_empty())
}

/// Two shell functions every install uses — by [`FINISH_SCRIPT`], [`INSTALL_SCRIPT`] and a
/// session start that installs the endpoint it found missing (`crate::trust::guarded`):
/// `sremote_dirs DIR [TMPDIR]` makes the sremote dir's private directories (0700; and a
/// custom tmp dir), `sremote_place FILE SHA256 FINAL` verifies FILE's hash — the endpoint
/// hashes itself (`version --sha256`, last line `sha256: HEX`; milliseconds with SHA-NI,
/// where `sha256sum` takes tens), `sha256sum` or `shasum` where it cannot run here — and
/// renames it to FINAL (mode 0755). Each returns the install's exit code (66 a directory,
/// 65 the hash, 67 the rename) with a message on stderr.
macro_rules! install_fns {
    () => {
        r#"sremote_dirs() {
  for sub in "" /bin /tmp /jobs /modules; do
    mkdir -p -- "$1$sub" && chmod 700 -- "$1$sub" || { echo "cannot create $1$sub" >&2; return 66; }
  done
  [ -z "$2" ] || mkdir -p -- "$2" || { echo "cannot create $2" >&2; return 66; }
}
sremote_place() {
  chmod 700 -- "$1" || return 67
  v=$("$1" version --sha256 2>/dev/null); got=${v##*sha256: }
  [ ${#got} -eq 64 ] || got=$( (sha256sum -- "$1" || shasum -a 256 -- "$1") 2>/dev/null | cut -c1-64)
  [ "$got" = "$2" ] || { echo "SHA-256 mismatch after upload: got '$got', want '$2'" >&2; return 65; }
  chmod 755 -- "$1" && mv -f -- "$1" "$3" || { echo "cannot rename $1 to $3" >&2; return 67; }
}
"#
    };
}
pub(crate) use install_fns;

/// The end of [`FINISH_SCRIPT`] and [`INSTALL_SCRIPT`]: verify, rename into place, record
/// `.location`, remove older endpoints.
macro_rules! install_finish {
    () => {
        r#"sremote_place "$tmp" "$want" "$d/bin/$final" || { r=$?; rm -f -- "$tmp"; exit $r; }
if [ -n "$5" ]; then
  l="$HOME/.sremote/.location"
  mkdir -p -- "$HOME/.sremote" && printf '%s\n' "$5" > "$l.$$" && mv -f -- "$l.$$" "$l" || exit 68
fi
shift 6
# Older endpoints: only where /proc tells what runs, and no job is queued or running (a
# queued batch job names its endpoint in a script the scheduler holds): the endpoint just
# installed reads the job dirs (`job active`, exit 1: none). Best effort.
[ $# -gt 0 ] && [ -d /proc/self ] || exit 0
"$d/bin/$final" job active "$d/jobs" >/dev/null 2>&1; [ $? -eq 1 ] || exit 0
abs=$(cd -- "$d/bin" && pwd -P) || exit 0
used=$(ls -l /proc/[0-9]*/exe 2>/dev/null | sed -n 's/^.* -> //p')
for old in "$@"; do
  case $old in */*|"$final") continue ;; sremote-endpoint-*) ;; *) continue ;; esac
  [ -f "$d/bin/$old" ] || continue
  printf '%s\n' "$used" | grep -qxF -- "$abs/$old" && continue
  rm -f -- "$d/bin/$old" && printf 'removed=%s\n' "$old"
done
exit 0
"#
    };
}

/// The start of [`FINISH_SCRIPT`] and [`INSTALL_SCRIPT`]: the arguments, the directories.
macro_rules! install_start {
    () => {
        r#"umask 077
d="$1"; tmp="$2"; final="$3"; want="$4"
sremote_dirs "$d" "$6" || { r=$?; rm -f -- "$tmp"; exit $r; }
"#
    };
}

/// Shell script that finishes an install: verify, make private dirs, rename into place.
/// `$1` sremote dir, `$2` pushed temp file, `$3` final name, `$4` expected SHA-256,
/// `$5` `.location` JSON to write (empty: leave it alone), `$6` a custom tmp dir to create
/// (empty: none), then names of older endpoints in `<sremote dir>/bin` to remove when
/// nothing uses them (see [`older_endpoints`](super::older_endpoints)); each removed one
/// is printed `removed=NAME`.
pub(crate) const FINISH_SCRIPT: &str = concat!(install_fns!(), install_start!(), install_finish!());

/// [`FINISH_SCRIPT`] that first receives the binary on its stdin into `$2`: a whole
/// install in one remote program (connectors that feed stdin), instead of a push and a
/// finish.
pub(crate) const INSTALL_SCRIPT: &str = concat!(
    install_fns!(),
    install_start!(),
    r#"cat > "$tmp" || { rm -f -- "$tmp"; echo "cannot write $tmp" >&2; exit 69; }
"#,
    install_finish!()
);

/// Shell script that records custom directories when the endpoint is already current:
/// `$1` `.location` JSON, `$2` a custom tmp dir to create (empty: none).
pub(crate) const LOCATION_SCRIPT: &str = r#"umask 077
if [ -n "$2" ]; then
  mkdir -p -- "$2" || { echo "cannot create $2" >&2; exit 66; }
fi
l="$HOME/.sremote/.location"
mkdir -p -- "$HOME/.sremote" && printf '%s\n' "$1" > "$l.$$" && mv -f -- "$l.$$" "$l" || exit 68
"#;

/// `$1`: a tmp dir to create (mode 0700) when missing.
pub(crate) const TMP_SCRIPT: &str = r#"umask 077
mkdir -p -- "$1" || { echo "cannot create $1" >&2; exit 66; }
"#;

/// Parse the probe's `key=value` lines.
pub(crate) fn parse_probe(stdout: &[u8]) -> HostFacts {
    let mut facts = HostFacts::default();
    for line in String::from_utf8_lossy(stdout).lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        match k {
            "os" => facts.os = v.to_string(),
            "arch" => facts.arch = v.to_string(),
            "home" => facts.home = v.to_string(),
            "sha256" if v.len() == 64 => facts.installed_sha256 = Some(v.to_string()),
            "location" => facts.location = Some(v.to_string()),
            "bin" => facts.binaries.push(v.to_string()),
            "untrusted" if facts.untrusted.is_none() => facts.untrusted = Some(v.to_string()),
            _ => {}
        }
    }
    facts
}

/// A stand-in endpoint for the scripts' tests: `version --sha256` prints its own hash as
/// the real one does (by python3, so tests can hide `sha256sum`); anything else prints
/// `started:ARGS`.
#[cfg(test)]
pub(crate) const FAKE_ENDPOINT: &str = r#"#!/bin/sh
if [ "$1" = version ]; then
  printf 'sremote-endpoint 0\nexe: %s\nsha256: %s\n' "$0" \
    "$(python3 -c 'import hashlib,sys;print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$0")"
  exit 0
fi
printf 'started:%s\n' "$*"
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_output_is_parsed() {
        let f = parse_probe(b"os=Linux\narch=x86_64\nhome=/home/a b\nsha256=short\nlocation={\"sremote\": \"x\"} \n");
        assert_eq!(f.target(), "linux-x86_64");
        assert_eq!(f.home, "/home/a b");
        assert_eq!(f.installed_sha256, None);
        assert!(f.location.unwrap().contains("sremote"));
    }

    /// The install verifies the binary by its own hash (`version --sha256`) and needs no
    /// sha256sum or shasum for it (that fallback once compared all of `version`'s output);
    /// a wrong hash is refused and leaves nothing behind.
    #[test]
    fn an_install_verifies_with_the_endpoints_own_hash_without_sha256sum() {
        use std::os::unix::fs::PermissionsExt;
        let home = tempfile::tempdir().unwrap();
        let h = home.path();
        let fake = FAKE_ENDPOINT;
        let want = sha256_hex(fake.as_bytes());
        // Only the tools the script may use, no sha256sum, shasum or cut.
        let tools = h.join("tools");
        std::fs::create_dir(&tools).unwrap();
        for t in ["sh", "cat", "mkdir", "chmod", "mv", "rm", "python3"] {
            let found = ["/usr/bin", "/bin"]
                .iter()
                .map(|d| std::path::Path::new(d).join(t))
                .find(|p| p.exists())
                .unwrap();
            std::os::unix::fs::symlink(found, tools.join(t)).unwrap();
        }
        let install = |want: &str| {
            use std::io::Write;
            let mut child = std::process::Command::new("/bin/sh")
                .args([
                    "-c",
                    INSTALL_SCRIPT,
                    "sh",
                    ".sremote",
                    ".sremote/bin/.e.part",
                ])
                .args(["sremote-endpoint-0", want, "", ""])
                .current_dir(h)
                .env("HOME", h)
                .env("PATH", &tools)
                .stdin(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(fake.as_bytes())
                .unwrap();
            child.wait_with_output().unwrap()
        };
        let out = install(&"0".repeat(64));
        assert_eq!(out.status.code(), Some(65), "{out:?}");
        assert!(!h.join(".sremote/bin/.e.part").exists());
        assert!(!h.join(".sremote/bin/sremote-endpoint-0").exists());
        let out = install(&want);
        assert!(out.status.success(), "{out:?}");
        let installed = h.join(".sremote/bin/sremote-endpoint-0");
        assert_eq!(std::fs::read(&installed).unwrap(), fake.as_bytes());
        let mode = std::fs::metadata(&installed).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
    }
}
