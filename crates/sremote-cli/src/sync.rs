//! `sremote sync LOCAL HOST:DIR`: send only the files that changed (size and mtime, or
//! SHA-256 with `--checksum`), then give the sent files the local mtimes so the next run
//! sends nothing.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use serde_json::json;
use sha2::{Digest, Sha256};
use sremote_core::{Error, RemoteCommand};

use crate::fanout::{self, Outcome};
use crate::hosts::{Connected, HostOptions, connect_spec};
use crate::progress::Bars;
use crate::transfer::{keep_mtimes, make_dirs, push_files};
use crate::walk::{self, Excludes, LocalFile, LocalTree};

/// Send a local directory to HOST:DIR, only the files that changed.
#[derive(Args, Debug)]
#[command(
    after_help = "A file is sent when it is missing on the host or its size or modification time
differ (with --checksum: its size or SHA-256). Sent files get the local modification
time, so a second run sends nothing. Nothing on the host is deleted.

Examples:
  sremote sync ./src gpu1:proj/src
  sremote sync . @cluster:proj --exclude target/ --exclude .git
  sremote sync ./data lab1:data --checksum --dry-run"
)]
pub struct SyncArgs {
    /// The local directory.
    pub local: PathBuf,
    /// HOST:DIR (HOST may be a config name, a,b,c or @group; DIR relative to home).
    pub dest: String,
    /// Leave out matching files and directories (repeatable), as for push.
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Compare content (SHA-256) instead of modification times.
    #[arg(long)]
    pub checksum: bool,
    /// Only tell what would be sent.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
}

/// Split `HOST:DIR`. A `:` that is part of `scheme://` or of a `:port` is not the
/// separator (`ssh://u@h:2222:dir`, `newt+https://u@gw:8443/newt/m:dir`).
pub fn split_dest(s: &str) -> Option<(&str, &str)> {
    let start = s.find("://").map_or(0, |i| i + 3);
    let mut from = start;
    while let Some(off) = s[from..].find(':') {
        let i = from + off;
        let rest = &s[i + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let is_port = start > 0
            && digits > 0
            && matches!(rest.as_bytes().get(digits), None | Some(b':') | Some(b'/'));
        if !is_port {
            return Some((&s[..i], &s[i + 1..]));
        }
        from = i + 1;
    }
    None
}

pub async fn sync(a: SyncArgs, opts: Arc<HostOptions>) -> Result<ExitCode, Error> {
    let dest = a.dest.clone();
    let Some((host, dir)) = split_dest(&dest) else {
        return Err(Error::Usage(format!(
            "{:?} is not HOST:DIR — write e.g. gpu1:proj/src (DIR relative to the home directory)",
            a.dest
        )));
    };
    if dir.is_empty() {
        return Err(Error::Usage(format!(
            "{:?}: name the directory after the colon (use `.` for the home directory)",
            a.dest
        )));
    }
    if !a.local.is_dir() {
        return Err(Error::Usage(format!(
            "{} is not a directory — sync sends a directory; use `sremote push` for a file",
            a.local.display()
        )));
    }
    let targets = opts.resolve(&[host])?;
    let ex = Excludes::new(&a.exclude)?;
    let tree = Arc::new(walk::local_tree(&a.local, &ex)?);
    for s in &tree.skipped {
        crate::output::warn(&format!("{}: {s} is not sent", a.local.display()));
    }
    let hashes = Arc::new(tokio::sync::OnceCell::new());
    let plan = Arc::new((a, ex, dir.to_string()));
    let bars = Bars::new(opts.json);
    let fan = targets.fanout;
    let o = opts.clone();
    Ok(fanout::each(targets, &opts, move |spec| {
        let (plan, tree, hashes, bars, opts) =
            (plan.clone(), tree.clone(), hashes.clone(), bars.clone(), o.clone());
        async move {
            let (a, ex, dir) = &*plan;
            let c = connect_spec(&spec, &opts).await?;
            let started = Instant::now();
            let client = c.client();
            let remote = walk::remote_tree(&client, dir, ex).await?.unwrap_or_default();
            let mut send: Vec<LocalFile> = Vec::new();
            let mut same_size: Vec<&LocalFile> = Vec::new();
            for f in &tree.files {
                match remote.files.get(&f.rel) {
                    Some(r) if r.size == f.size && (a.checksum || r.mtime == f.mtime) => {
                        same_size.push(f)
                    }
                    _ => send.push(f.clone()),
                }
            }
            if a.checksum && !same_size.is_empty() {
                let local: &BTreeMap<String, String> = hashes
                    .get_or_try_init(|| async { local_hashes(tree.clone()).await })
                    .await?;
                let rels: Vec<String> = same_size.iter().map(|f| f.rel.clone()).collect();
                let theirs = remote_hashes(&c, dir, &rels).await?;
                for (f, h) in same_size.iter().zip(theirs) {
                    if local.get(&f.rel) != Some(&h) {
                        send.push((*f).clone());
                    }
                }
            }
            send.sort_by(|x, y| x.rel.cmp(&y.rel));
            let bytes: u64 = send.iter().map(|f| f.size).sum();
            let unchanged = tree.files.len() - send.len();
            let names: Vec<&str> = send.iter().map(|f| f.rel.as_str()).collect();
            let json = json!({"dir": dir, "sent": send.len(), "bytes": bytes, "unchanged": unchanged,
                "files": names, "dry_run": a.dry_run});
            if a.dry_run {
                let mut text: String = names.iter().map(|n| format!("would send {n}\n")).collect();
                text.push_str(&format!("would send {} of {} files ({})", send.len(), tree.files.len(), crate::output::bytes(bytes)));
                return Ok(Outcome::text(text, json));
            }
            let missing: Vec<String> = tree
                .dirs
                .iter()
                .filter(|d| !remote.dirs.contains(d))
                .cloned()
                .collect();
            make_dirs(&c, dir, &missing).await?;
            let bar = bars.bar(bytes, if fan { &spec.name } else { "" });
            let moved = match push_files(&c, &send, dir, &bar).await {
                Ok(m) => m,
                Err(e) => {
                    bar.abandon();
                    return Err(e);
                }
            };
            keep_mtimes(&c, dir, &send, &moved).await?;
            bar.finish(&format!("{} files", moved.files));
            let text = format!(
                "sent {} of {} files ({}) to {}:{dir} in {:.1} s",
                send.len(),
                tree.files.len(),
                crate::output::bytes(bytes),
                spec.name,
                started.elapsed().as_secs_f64()
            );
            Ok(Outcome::text(text, json))
        }
    })
    .await)
}

async fn local_hashes(tree: Arc<LocalTree>) -> Result<BTreeMap<String, String>, Error> {
    tokio::task::spawn_blocking(move || {
        let mut out = BTreeMap::new();
        for f in &tree.files {
            let mut file = std::fs::File::open(&f.path)
                .map_err(|e| Error::Usage(format!("cannot read {}: {e}", f.path.display())))?;
            let mut h = Sha256::new();
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = file
                    .read(&mut buf)
                    .map_err(|e| Error::Usage(format!("cannot read {}: {e}", f.path.display())))?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
            let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
            out.insert(f.rel.clone(), hex);
        }
        Ok(out)
    })
    .await
    .map_err(|e| Error::Usage(format!("hashing failed: {e}")))?
}

/// SHA-256 of files on the host, one per argument (`-` for a missing file). The file is
/// fed on stdin so no file name ever appears in the output.
const HASH: &str = r#"if command -v sha256sum >/dev/null 2>&1; then h=sha256sum
elif command -v shasum >/dev/null 2>&1; then h='shasum -a 256'
else echo 'neither sha256sum nor shasum is installed' >&2; exit 3; fi
for f; do if [ -f "$f" ]; then $h < "$f"; else echo -; fi; done"#;

async fn remote_hashes(c: &Connected, dir: &str, rels: &[String]) -> Result<Vec<String>, Error> {
    let mut out = Vec::with_capacity(rels.len());
    for chunk in rels.chunks(256) {
        let cmd = RemoteCommand::new("/bin/sh")
            .args(["-c", HASH, "sremote-hash"])
            .args(chunk.iter().map(|r| walk::join(dir, r)));
        let res = c.connector.exec(&cmd).await?;
        let text = String::from_utf8_lossy(&res.stdout);
        // `<hash>  -` per file: the hash is the first word.
        let lines: Vec<String> = text
            .lines()
            .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
            .collect();
        if !res.success() || lines.len() != chunk.len() {
            return Err(Error::Usage(format!(
                "hashing files on {} failed: {} — drop --checksum to compare sizes and times",
                c.connector.host(),
                res.stderr_text()
            )));
        }
        out.extend(lines);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_dir_split() {
        assert_eq!(split_dest("gpu1:proj/src"), Some(("gpu1", "proj/src")));
        assert_eq!(split_dest("a@h:x:y"), Some(("a@h", "x:y")));
        assert_eq!(split_dest("@g:d"), Some(("@g", "d")));
        assert_eq!(
            split_dest("ssh://u@h:2222:dir"),
            Some(("ssh://u@h:2222", "dir"))
        );
        assert_eq!(split_dest("ssh://u@h:dir"), Some(("ssh://u@h", "dir")));
        assert_eq!(
            split_dest("newt+https://u@gw:8443/newt/m:d/e"),
            Some(("newt+https://u@gw:8443/newt/m", "d/e"))
        );
        assert_eq!(split_dest("nocolon"), None);
    }
}
