//! `sremote sync LOCAL HOST:DIR`: send only the files that changed (size and mtime, or
//! SHA-256 with `--checksum`), then give the sent files the local mtimes so the next run
//! sends nothing. `--delete` first removes what is in DIR on the host but not here.

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

use crate::config::HostSpec;
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
time, so a second run sends nothing. Nothing on the host is deleted unless --delete is
given: then files and directories in DIR that are not in the local directory are removed
first (excluded ones, and those matching local entries that are not sent, are kept).
Nothing outside the local directory is sent: a symlink to a file inside it is sent as
that file; one that leads out of it stops the sync before anything is sent (--exclude it).
A .sremoteignore file in the local directory or any directory below it leaves out what
it matches (gitignore syntax: `*.o`, `build/`, `/data/raw`, `!keep.log`); --gitignore
also reads .gitignore files (not .git itself: add --exclude .git). Left-out paths are
neither sent nor, with --delete, removed on the host.

Examples:
  sremote sync ./src gpu1:proj/src
  sremote sync ./src gpu1:proj/src --delete --dry-run   # what would be sent and removed
  sremote sync . @cluster:proj --exclude target/ --exclude .git
  sremote sync ./data lab1:data --checksum --dry-run
  sremote sync . lab1:proj --gitignore --exclude .git --delete"
)]
pub struct SyncArgs {
    /// The local directory.
    pub local: PathBuf,
    /// HOST:DIR (HOST may be a config name, a,b,c or @group; DIR relative to home).
    pub dest: String,
    /// Leave out matching files and directories (repeatable), as for push.
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Also leave out what .gitignore files say (.sremoteignore files are always read).
    #[arg(long)]
    pub gitignore: bool,
    /// Compare content (SHA-256) instead of modification times.
    #[arg(long)]
    pub checksum: bool,
    /// Remove files and directories in DIR that the local directory does not have
    /// (excluded paths are kept).
    #[arg(long)]
    pub delete: bool,
    /// Only tell what would be sent (and removed).
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
    let (host, dir) = host_and_dir(&a, &dest)?;
    let targets = opts.resolve(&[host])?;
    let mut ex = Excludes::new(&a.exclude)?.with_ignore_files(&a.local, a.gitignore)?;
    let tree = walk::local_tree(&a.local, &mut ex)?;
    for s in &tree.skipped {
        crate::output::warn(&format!("{}: {s} is not sent", a.local.display()));
    }
    let plan = Arc::new(Plan {
        dir: dir.to_string(),
        args: a,
        ex,
        tree: Arc::new(tree),
        hashes: tokio::sync::OnceCell::new(),
        bars: Bars::new(opts.json),
        fan: targets.fanout,
    });
    let o = opts.clone();
    Ok(fanout::each(targets, &opts, move |spec| {
        sync_host(spec, plan.clone(), o.clone())
    })
    .await)
}

/// `HOST:DIR` of `a` (its `dest`), checked, and the local directory checked.
fn host_and_dir<'d>(a: &SyncArgs, dest: &'d str) -> Result<(&'d str, &'d str), Error> {
    let Some((host, dir)) = split_dest(dest) else {
        return Err(Error::usage(
            format!("{:?} is not HOST:DIR", a.dest),
            "write e.g. gpu1:proj/src (DIR relative to the home directory)",
        ));
    };
    if dir.is_empty() {
        return Err(Error::Usage(format!(
            "{:?}: name the directory after the colon (use `.` for the home directory)",
            a.dest
        )));
    }
    if !a.local.is_dir() {
        return Err(Error::usage(
            format!("{} is not a directory", a.local.display()),
            "sync sends a directory; use `sremote push` for a file",
        ));
    }
    Ok((host, dir))
}

/// One sync, the same for every host.
struct Plan {
    args: SyncArgs,
    ex: Excludes,
    /// DIR on the host.
    dir: String,
    tree: Arc<LocalTree>,
    /// The local files' SHA-256 (`--checksum`), computed once for all hosts.
    hashes: tokio::sync::OnceCell<BTreeMap<String, String>>,
    bars: Bars,
    /// More than one host: bars are named.
    fan: bool,
}

/// Sync to one host: compare, then (unless `--dry-run`) delete, make directories, send
/// and set the modification times.
async fn sync_host(
    spec: HostSpec,
    plan: Arc<Plan>,
    opts: Arc<HostOptions>,
) -> Result<Outcome, Error> {
    let (a, tree, dir) = (&plan.args, &plan.tree, plan.dir.as_str());
    let c = connect_spec(&spec, &opts).await?;
    let started = Instant::now();
    let client = c.client();
    let remote = walk::remote_tree(&client, dir, &plan.ex)
        .await?
        .unwrap_or_default();
    let send = to_send(&plan, &remote, &c).await?;
    let bytes: u64 = send.iter().map(|f| f.size).sum();
    let unchanged = tree.files.len() - send.len();
    let names: Vec<&str> = send.iter().map(|f| f.rel.as_str()).collect();
    let (gone_files, gone_dirs) = if a.delete {
        extraneous(tree, &remote)
    } else {
        Default::default()
    };
    let gone: Vec<&str> = gone_files
        .iter()
        .chain(&gone_dirs)
        .map(String::as_str)
        .collect();
    let json = json!({"dir": dir, "sent": send.len(), "bytes": bytes, "unchanged": unchanged,
        "files": names, "deleted": gone, "dry_run": a.dry_run});
    if a.dry_run {
        let mut text: String = gone.iter().map(|n| format!("would delete {n}\n")).collect();
        text.extend(names.iter().map(|n| format!("would send {n}\n")));
        text.push_str(&format!(
            "would send {} of {} files ({})",
            send.len(),
            tree.files.len(),
            crate::output::bytes(bytes)
        ));
        if a.delete {
            text.push_str(&format!(", delete {}", gone.len()));
        }
        return Ok(Outcome::text(text, json));
    }
    // Removals first: a path that changes between file and directory is then free.
    remove_remote(&c, dir, &gone_files, &gone_dirs).await?;
    let missing: Vec<String> = tree
        .dirs
        .iter()
        .filter(|d| !remote.dirs.contains(d))
        .cloned()
        .collect();
    make_dirs(&c, dir, &missing).await?;
    let bar = plan.bars.bar(bytes, if plan.fan { &spec.name } else { "" });
    let moved = match push_files(&c, &send, dir, &bar).await {
        Ok(m) => m,
        Err(e) => {
            bar.abandon();
            return Err(e);
        }
    };
    keep_mtimes(&c, dir, &send, &moved).await?;
    bar.finish(&format!("{} files", moved.files));
    let deleted = if a.delete {
        format!(", deleted {}", gone.len())
    } else {
        String::new()
    };
    let text = format!(
        "sent {} of {} files ({}) to {}:{dir}{deleted} in {:.1} s",
        send.len(),
        tree.files.len(),
        crate::output::bytes(bytes),
        spec.name,
        started.elapsed().as_secs_f64()
    );
    Ok(Outcome::text(text, json))
}

/// The local files the host lacks or has in another version (size and modification
/// time; with `--checksum` size and SHA-256), sorted by path.
async fn to_send(
    plan: &Plan,
    remote: &walk::RemoteTree,
    c: &Connected,
) -> Result<Vec<LocalFile>, Error> {
    let checksum = plan.args.checksum;
    let mut send: Vec<LocalFile> = Vec::new();
    let mut same_size: Vec<&LocalFile> = Vec::new();
    for f in &plan.tree.files {
        match remote.files.get(&f.rel) {
            Some(r) if r.size == f.size && (checksum || r.mtime == f.mtime) => same_size.push(f),
            _ => send.push(f.clone()),
        }
    }
    if checksum && !same_size.is_empty() {
        let local: &BTreeMap<String, String> = plan
            .hashes
            .get_or_try_init(|| async { local_hashes(plan.tree.clone()).await })
            .await?;
        let rels: Vec<String> = same_size.iter().map(|f| f.rel.clone()).collect();
        let theirs = remote_hashes(c, &plan.dir, &rels).await?;
        for (f, h) in same_size.iter().zip(theirs) {
            if local.get(&f.rel) != Some(&h) {
                send.push((*f).clone());
            }
        }
    }
    send.sort_by(|x, y| x.rel.cmp(&y.rel));
    Ok(send)
}

/// What DIR on the host has and the local tree does not: (files, directories deepest
/// first). Paths at or under a local entry that is not sent (a symlinked directory, a
/// socket…) are kept; excluded paths never appear in either listing.
fn extraneous(tree: &LocalTree, remote: &walk::RemoteTree) -> (Vec<String>, Vec<String>) {
    use std::collections::BTreeSet;
    let files: BTreeSet<&str> = tree.files.iter().map(|f| f.rel.as_str()).collect();
    let dirs: BTreeSet<&str> = tree.dirs.iter().map(String::as_str).collect();
    let kept = |rel: &str| {
        tree.skipped_rels.iter().any(|s| {
            rel == s || (rel.starts_with(s.as_str()) && rel.as_bytes().get(s.len()) == Some(&b'/'))
        })
    };
    let gone_files: Vec<String> = remote
        .files
        .keys()
        .filter(|r| !files.contains(r.as_str()) && !kept(r))
        .cloned()
        .collect();
    let mut gone_dirs: Vec<String> = remote
        .dirs
        .iter()
        .filter(|d| !dirs.contains(d.as_str()) && !kept(d))
        .cloned()
        .collect();
    gone_dirs.sort_by_key(|d| std::cmp::Reverse(d.matches('/').count()));
    (gone_files, gone_dirs)
}

/// Remove `files`, then the directories `dirs` (deepest first) below `root` on the host:
/// `rm -f --` with the paths as arguments; `rmdir` from a fixed script that takes them as
/// positional arguments. A directory that still holds something kept (an excluded file)
/// stays.
async fn remove_remote(
    c: &Connected,
    root: &str,
    files: &[String],
    dirs: &[String],
) -> Result<(), Error> {
    let host = c.connector.host().to_string();
    for chunk in files.chunks(256) {
        let paths: Vec<String> = chunk.iter().map(|r| walk::join(root, r)).collect();
        let out = c
            .connector
            .exec(&RemoteCommand::new("rm").args(["-f", "--"]).args(&paths))
            .await?;
        if !out.success() {
            return Err(Error::usage(
                format!(
                    "sync --delete: rm -f {root}/… on {host} failed: {}",
                    out.stderr_text()
                ),
                "check that you may write there",
            ));
        }
    }
    // Deepest first, in one fixed script per 256: the paths are its positional
    // arguments, data to the shell, never code.
    const RMDIRS: &str = r#"for d do rmdir -- "$d" 2>/dev/null; done; exit 0"#;
    for chunk in dirs.chunks(256) {
        let paths: Vec<String> = chunk.iter().map(|r| walk::join(root, r)).collect();
        c.connector
            .exec(
                &RemoteCommand::new("/bin/sh")
                    .args(["-c", RMDIRS, "sremote-sync"])
                    .args(&paths),
            )
            .await?;
    }
    Ok(())
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
            return Err(Error::usage(
                format!(
                    "hashing files on {} failed: {}",
                    c.connector.host(),
                    res.stderr_text()
                ),
                "drop --checksum to compare sizes and times",
            ));
        }
        out.extend(lines);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extraneous_keeps_what_is_here_and_what_is_not_sent() {
        let local = LocalTree {
            files: vec![LocalFile {
                rel: "a/keep.txt".into(),
                path: PathBuf::from("/x"),
                size: 1,
                mtime: 0,
            }],
            dirs: vec!["a".into()],
            skipped: vec!["link (a symlink to a directory)".into()],
            skipped_rels: vec!["link".into()],
        };
        let file = || walk::RemoteFile { size: 1, mtime: 0 };
        let remote = walk::RemoteTree {
            files: [
                ("a/keep.txt", file()),
                ("a/old.txt", file()),
                ("link/inside.txt", file()),
                ("linked.txt", file()),
                ("b/c/old.txt", file()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
            dirs: vec!["a".into(), "b".into(), "b/c".into(), "link".into()],
            skipped: Vec::new(),
            links: Default::default(),
        };
        let (files, dirs) = extraneous(&local, &remote);
        assert_eq!(files, ["a/old.txt", "b/c/old.txt", "linked.txt"]);
        assert_eq!(dirs, ["b/c", "b"], "deepest first; `link` is kept");
    }

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
