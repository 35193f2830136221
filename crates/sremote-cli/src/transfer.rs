//! `sremote push` and `sremote pull`: files and directory trees, `--exclude` globs, a
//! progress bar on a terminal.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use serde_json::json;
use sremote_core::{ConnectorErrorKind, Dest, Error, RemoteCommand, Source};
use tokio::task::JoinSet;

use crate::batch::{self, Batch};
use crate::fanout::{self, Outcome};
use crate::hosts::{Connected, HostOptions, connect_transport};
use crate::progress::{Bar, Bars};
use crate::walk::{self, Excludes, LocalFile, LocalTree};

/// Files moved at once within one transfer.
const FILES_IN_FLIGHT: usize = 4;

/// Copy a local file or directory to HOST.
#[derive(Args, Debug)]
#[command(
    after_help = "REMOTE is relative to the home directory unless absolute; ending it with `/`
puts LOCAL inside it. A directory is copied with everything below it. Every file lands
whole or not at all; a push that fails (a full disk) names the files it did not write.
Nothing outside LOCAL is sent: a symlink to a file inside LOCAL is sent as that file, one
that leads out of LOCAL stops the push before anything is sent (--exclude it, or replace
it with a copy); symlinks to directories are left out.

Examples:
  sremote push local ./big.bin data/big.bin
  sremote push gpu1 ./project work/project --exclude target/ --exclude '*.o'
  sremote push lab1,lab2 ./env.sh bin/        # to several hosts at once"
)]
pub struct PushArgs {
    /// Host, config name, a,b,c or @group.
    pub host: String,
    pub local: PathBuf,
    pub remote: String,
    /// Leave out matching files and directories (repeatable): `*.o` matches names at any
    /// depth, `data/*.tmp` paths from the top, `build/` directories only.
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
}

/// Copy a file or directory from HOST.
#[derive(Args, Debug)]
#[command(
    after_help = "LOCAL that is an existing directory (or ends with `/`) receives REMOTE inside it.
From several hosts, each host's copy goes to LOCAL/<host>/. Every file lands whole or not
at all. A symlink in a pulled tree comes back only when it stays inside the tree (a
relative target that does not climb above it); others are left out with a warning.

Examples:
  sremote pull local data/big.bin ./copy.bin
  sremote pull gpu1 work/results ./results --exclude '*.ckpt'
  sremote pull @cluster logs/run.log ./logs/   # ./logs/<host>/run.log"
)]
pub struct PullArgs {
    /// Host, config name, a,b,c or @group.
    pub host: String,
    pub remote: String,
    pub local: PathBuf,
    /// Leave out matching files and directories (repeatable), as for push.
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
}

fn basename(p: &str) -> &str {
    p.trim_end_matches('/').rsplit('/').next().unwrap_or(p)
}

/// What a transfer moved.
#[derive(Debug, Clone, Default)]
pub struct Moved {
    pub files: usize,
    pub bytes: u64,
    /// Files that went one by one (not in a tar batch, which keeps modification times).
    pub one_by_one: Vec<String>,
}

impl Moved {
    fn outcome(&self, started: Instant, bar: &Bar) -> Outcome {
        bar.finish(&format!(
            "{} file{}",
            self.files,
            if self.files == 1 { "" } else { "s" }
        ));
        Outcome::text(
            "",
            json!({"files": self.files, "bytes": self.bytes, "seconds": started.elapsed().as_secs_f64()}),
        )
    }
}

pub async fn push(a: PushArgs, opts: Arc<HostOptions>) -> Result<ExitCode, Error> {
    let targets = opts.resolve(&[&a.host])?;
    let meta = std::fs::metadata(&a.local).map_err(|e| {
        Error::usage(
            format!("cannot push {}: {e}", a.local.display()),
            "check the local path",
        )
    })?;
    let mut remote = a.remote.clone();
    if remote.ends_with('/') {
        let name = a
            .local
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        remote.push_str(name);
    }
    let tree = if meta.is_dir() {
        let tree = walk::local_tree(&a.local, &mut Excludes::new(&a.exclude)?)?;
        for s in &tree.skipped {
            crate::output::warn(&format!("{}: {s} is not copied", a.local.display()));
        }
        Some(Arc::new(tree))
    } else {
        None
    };
    let bars = Bars::new(opts.json);
    let (local, fan) = (Arc::new(a.local), targets.fanout);
    let (remote, o) = (Arc::new(remote), opts.clone());
    Ok(fanout::each(targets, &opts, move |spec| {
        let (local, remote, tree, bars, opts) = (
            local.clone(),
            remote.clone(),
            tree.clone(),
            bars.clone(),
            o.clone(),
        );
        async move {
            let label = if fan { spec.name.as_str() } else { "" };
            let c = connect_transport(&spec, &opts).await?;
            let started = Instant::now();
            let (moved, bar) = match &tree {
                Some(tree) => {
                    let bar = bars.bar(tree.bytes(), label);
                    (push_tree(&c, tree, &remote, &bar).await, bar)
                }
                None => push_file(&c, &local, &remote, &bars, label).await,
            };
            settle(moved, started, &bar)
        }
    })
    .await)
}

/// Push one file (`sremote push` of a file) with a bar, then give it the local
/// modification time.
async fn push_file(
    c: &Connected,
    local: &Path,
    remote: &str,
    bars: &Bars,
    label: &str,
) -> (Result<Moved, Error>, Bar) {
    let meta = std::fs::metadata(local);
    let size = meta.as_ref().map(|m| m.len()).unwrap_or(0);
    let mtime = meta.ok().and_then(|m| m.modified().ok()).map(walk::secs);
    let bar = bars.bar(size, label);
    let cb = bar.file_callback();
    let r = c
        .connector
        .push(Source::file(local).progress(&cb), remote)
        .await
        .map(|()| Moved {
            files: 1,
            bytes: size,
            ..Default::default()
        })
        .map_err(Error::from);
    let r = match (r, mtime) {
        (Ok(m), Some(t)) => set_mtimes(c, &[(remote.to_string(), t)]).await.map(|()| m),
        (r, _) => r,
    };
    (r, bar)
}

/// A transfer's outcome for the report; a failed one abandons its bar.
fn settle(moved: Result<Moved, Error>, started: Instant, bar: &Bar) -> Result<Outcome, Error> {
    match moved {
        Ok(m) => Ok(m.outcome(started, bar)),
        Err(e) => {
            bar.abandon();
            Err(e)
        }
    }
}

/// Create `dirs` under `root` on the host (`mkdir -p`, names passed as data).
pub async fn make_dirs(c: &Connected, root: &str, dirs: &[String]) -> Result<(), Error> {
    let all: Vec<String> = std::iter::once(root.to_string())
        .chain(dirs.iter().map(|d| walk::join(root, d)))
        .collect();
    for chunk in all.chunks(256) {
        let out = c
            .connector
            .exec(&RemoteCommand::new("mkdir").args(["-p", "--"]).args(chunk))
            .await?;
        if !out.success() {
            return Err(Error::usage(
                format!(
                    "mkdir -p {root}/… on {} failed: {}",
                    c.connector.host(),
                    out.stderr_text()
                ),
                "check that you may write there",
            ));
        }
    }
    Ok(())
}

/// Push every file of `files` to `root/<rel>`: small ones in tar batches, large ones a
/// few at a time. Every file lands whole or not at all (tar batches through a private
/// directory, single files through a temp name); when the push stops, the error names
/// the files that were not written.
pub async fn push_files(
    c: &Connected,
    files: &[LocalFile],
    root: &str,
    bar: &Bar,
) -> Result<Moved, Error> {
    let mut landed = HashSet::new();
    push_each(c, files, root, bar, &mut landed)
        .await
        .map_err(|e| incomplete(e, root, files, &landed))
}

async fn push_each(
    c: &Connected,
    files: &[LocalFile],
    root: &str,
    bar: &Bar,
    landed: &mut HashSet<String>,
) -> Result<Moved, Error> {
    let (batches, mut singles) = batch::split(files, |f| f.size);
    let mut moved = Moved::default();
    let mut tar = true;
    for b in batches {
        if !tar {
            singles.extend(b);
            continue;
        }
        let n = b.len();
        match batch::push(c, b.clone(), root).await? {
            Batch::Done(bytes) => {
                moved.files += n;
                moved.bytes += bytes;
                bar.inc(bytes);
                landed.extend(b.into_iter().map(|f| f.rel));
            }
            Batch::NoTar => {
                tar = false;
                singles.extend(b);
            }
        }
    }
    moved.one_by_one = singles.iter().map(|f| f.rel.clone()).collect();
    let mut tasks = JoinSet::new();
    let mut queue = singles.into_iter();
    // After a failure no new transfer starts, but those in flight finish (and clean up
    // after themselves) rather than being cut off.
    let mut failed = None;
    loop {
        while failed.is_none() && tasks.len() < FILES_IN_FLIGHT {
            let Some(f) = queue.next() else { break };
            let (conn, dest, bar) = (c.connector.clone(), walk::join(root, &f.rel), bar.clone());
            tasks.spawn(async move {
                let cb = bar.file_callback();
                conn.push(Source::file(&f.path).progress(&cb), &dest)
                    .await
                    .map(|()| (f.rel, f.size))
            });
        }
        let Some(done) = tasks.join_next().await else {
            break;
        };
        match done.map_err(|e| Error::Usage(format!("transfer task failed: {e}")))? {
            Ok((rel, size)) => {
                moved.files += 1;
                moved.bytes += size;
                landed.insert(rel);
            }
            Err(e) => {
                failed.get_or_insert(Error::from(e));
            }
        }
    }
    failed.map_or(Ok(moved), Err)
}

/// `cause` stopped a push into `root`: say which of `files` were not written.
fn incomplete(cause: Error, root: &str, files: &[LocalFile], landed: &HashSet<String>) -> Error {
    const SHOWN: usize = 100;
    let missing: Vec<&str> = files
        .iter()
        .filter(|f| !landed.contains(&f.rel))
        .map(|f| f.rel.as_str())
        .collect();
    let mut list: Vec<String> = missing
        .iter()
        .take(SHOWN)
        .map(|r| format!("{r:?}"))
        .collect();
    if missing.len() > SHOWN {
        list.push(format!("and {} more", missing.len() - SHOWN));
    }
    let note = format!(
        "{} of {} files may not have been written to {root} — each file lands whole or not \
         at all, none is left truncated under its name; send them again once the cause is \
         fixed (a sync sends just these): {}",
        missing.len(),
        files.len(),
        list.join(", ")
    );
    match cause {
        Error::Transport(mut e) => {
            e.detail = format!("{}; {note}", e.detail);
            Error::Transport(e)
        }
        other => Error::Usage(format!("{other}; {note}")),
    }
}

/// `touch -t` wants local time: with TZ=UTC0 it is UTC. `$1` time, `$2` file, repeated.
const TOUCH: &str = r#"export TZ=UTC0; s=0
while [ $# -ge 2 ]; do touch -c -m -t "$1" -- "$2" || s=1; shift 2; done; exit $s"#;

/// `[[CC]YY]MMDDhhmm.SS` in UTC for seconds since the epoch.
pub fn touch_stamp(secs: i64) -> String {
    let (y, m, d, hh, mm, ss) = sremote_core::civil::utc(secs);
    format!("{y:04}{m:02}{d:02}{hh:02}{mm:02}.{ss:02}")
}

/// Give files on the host these modification times (`(path, seconds)`).
pub async fn set_mtimes(c: &Connected, files: &[(String, i64)]) -> Result<(), Error> {
    let files: Vec<&(String, i64)> = files
        .iter()
        .filter(|f| (0..253_402_300_800).contains(&f.1))
        .collect();
    for chunk in files.chunks(256) {
        let mut cmd = RemoteCommand::new("/bin/sh").args(["-c", TOUCH, "sremote-touch"]);
        for (path, mtime) in chunk {
            cmd = cmd.arg(touch_stamp(*mtime)).arg(path);
        }
        let out = c.connector.exec(&cmd).await?;
        if !out.success() {
            crate::output::warn(&format!(
                "{}: could not set modification times ({}); the next sync may send them again",
                c.spec.name,
                out.stderr_text()
            ));
        }
    }
    Ok(())
}

/// After `push_files`: files in tar batches kept their times; give the others theirs.
pub async fn keep_mtimes(
    c: &Connected,
    root: &str,
    files: &[LocalFile],
    moved: &Moved,
) -> Result<(), Error> {
    let singles: Vec<(String, i64)> = files
        .iter()
        .filter(|f| moved.one_by_one.contains(&f.rel))
        .map(|f| (walk::join(root, &f.rel), f.mtime))
        .collect();
    set_mtimes(c, &singles).await
}

async fn push_tree(
    c: &Connected,
    tree: &LocalTree,
    remote: &str,
    bar: &Bar,
) -> Result<Moved, Error> {
    make_dirs(c, remote, &tree.dirs).await?;
    let moved = push_files(c, &tree.files, remote, bar).await?;
    keep_mtimes(c, remote, &tree.files, &moved).await?;
    Ok(moved)
}

pub async fn pull(a: PullArgs, opts: Arc<HostOptions>) -> Result<ExitCode, Error> {
    let targets = opts.resolve(&[&a.host])?;
    let ex = Arc::new(Excludes::new(&a.exclude)?);
    let bars = Bars::new(opts.json);
    let fan = targets.fanout;
    let a = Arc::new(a);
    let o = opts.clone();
    Ok(fanout::each(targets, &opts, move |spec| {
        let (a, ex, bars, opts) = (a.clone(), ex.clone(), bars.clone(), o.clone());
        async move {
            let local = pull_target(&a, fan.then_some(spec.name.as_str()))?;
            let c = connect_transport(&spec, &opts).await?;
            let label = if fan { spec.name.as_str() } else { "" };
            let started = Instant::now();
            // The bar's total first (rate and ETA need it), only when there is a bar.
            let total = if bars.visible() {
                remote_size(&c, &a.remote).await.unwrap_or(0)
            } else {
                0
            };
            let bar = bars.bar(total, label);
            let cb = bar.file_callback();
            let first = c
                .connector
                .pull(&a.remote, Dest::file(&local).progress(&cb))
                .await;
            let moved = match first {
                Ok(()) => Ok(Moved {
                    files: 1,
                    bytes: std::fs::metadata(&local).map(|m| m.len()).unwrap_or(0),
                    ..Default::default()
                }),
                Err(e)
                    if matches!(
                        e.kind,
                        ConnectorErrorKind::Connect
                            | ConnectorErrorKind::Auth
                            | ConnectorErrorKind::HostKey
                            | ConnectorErrorKind::Disconnected
                    ) =>
                {
                    Err(e.into())
                }
                // Not a file: a directory? (asked through the endpoint)
                Err(e) => match remote_is_dir(&c, &a.remote).await {
                    true => {
                        bar.abandon();
                        pull_tree(&c, &a.remote, &local, &ex, &bars, label).await
                    }
                    false => Err(e.into()),
                },
            };
            settle(moved, started, &bar)
        }
    })
    .await)
}

/// Where `sremote pull` writes: LOCAL, in a directory per host when several are pulled
/// from (`host`, created), and below LOCAL when it is a directory.
fn pull_target(a: &PullArgs, host: Option<&str>) -> Result<PathBuf, Error> {
    let mut local = a.local.clone();
    if let Some(host) = host {
        local = local.join(host);
        std::fs::create_dir_all(&local)
            .map_err(|e| Error::Usage(format!("cannot create {}: {e}", local.display())))?;
    }
    if local.is_dir() || a.local.to_string_lossy().ends_with('/') {
        local = local.join(basename(&a.remote));
    }
    Ok(local)
}

/// Whether `path` on the host is a directory (asked through the endpoint).
async fn remote_is_dir(c: &Connected, path: &str) -> bool {
    let stat = match c.endpoint_client().await {
        Ok(client) => walk::remote_stat(&client, path).await,
        Err(other) => Err(other),
    };
    matches!(stat, Ok(Some(st)) if st.is_dir)
}

/// Size in bytes of the file `path` on the host (`wc -c`, the path an argument), or
/// `None` when it is not a readable file.
async fn remote_size(c: &Connected, path: &str) -> Option<u64> {
    let cmd = RemoteCommand::new("/bin/sh")
        .args(["-c", r#"exec wc -c < "$1""#, "sremote-size", path])
        .timeout(std::time::Duration::from_secs(30));
    let out = c.connector.exec(&cmd).await.ok()?;
    if !out.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// List the tree `remote` on the host and make its directories below `local`.
async fn list_and_mkdir(
    c: &Connected,
    remote: &str,
    local: &Path,
    ex: &Excludes,
) -> Result<walk::RemoteTree, Error> {
    let client = c.endpoint_client().await?;
    let tree = walk::remote_tree(&client, remote, ex)
        .await?
        .ok_or_else(|| {
            Error::Usage(format!("{remote} on {} does not exist", c.connector.host()))
        })?;
    for s in &tree.skipped {
        crate::output::warn(&format!("{}:{remote}: {s} is not copied", c.spec.name));
    }
    let mkdir = |p: &Path| {
        std::fs::create_dir_all(p).map_err(|e| {
            Error::usage(
                format!("cannot create {}: {e}", p.display()),
                "check the local path",
            )
        })
    };
    mkdir(local)?;
    for d in &tree.dirs {
        mkdir(&local.join(d))?;
    }
    Ok(tree)
}

/// Pull the tar `batches` (relative paths and sizes) of `remote` into `local`; what is
/// left to pull one by one (`singles`, and every batch after the host turned out to
/// have no tar).
async fn pull_batches(
    c: &Connected,
    batches: Vec<Vec<(String, u64)>>,
    mut singles: Vec<(String, u64)>,
    remote: &str,
    local: &Path,
    bar: &Bar,
    warn: &(dyn Fn(&str) + Sync),
) -> Result<(Moved, Vec<(String, u64)>), Error> {
    let mut moved = Moved::default();
    let mut tar = true;
    for b in batches {
        if !tar {
            singles.extend(b);
            continue;
        }
        let rels: Vec<String> = b.iter().map(|f| f.0.clone()).collect();
        match batch::pull(c, &rels, remote, local).await? {
            Some(got) => {
                moved.files += rels.len() - got.skipped.len();
                moved.bytes += got.bytes;
                bar.inc(got.bytes);
                got.skipped.iter().for_each(|s| warn(s));
            }
            None => {
                tar = false;
                singles.extend(b);
            }
        }
    }
    Ok((moved, singles))
}

async fn pull_tree(
    c: &Connected,
    remote: &str,
    local: &Path,
    ex: &Excludes,
    bars: &Bars,
    label: &str,
) -> Result<Moved, Error> {
    let tree = list_and_mkdir(c, remote, local, ex).await?;
    let total = tree.files.values().map(|f| f.size).sum();
    let bar = bars.bar(total, label);
    // Symlinks travel in tar batches whatever the size of what they point to: tar says
    // where they point, so that only links that stay inside the tree come back.
    let all: Vec<(String, u64)> = tree
        .files
        .iter()
        .map(|(r, f)| (r.clone(), if tree.links.contains(r) { 0 } else { f.size }))
        .collect();
    let (batches, singles) = batch::split(&all, |f| f.1);
    let warn = |what: &str| {
        crate::output::warn(&format!("{}:{remote}: {what} is not copied", c.spec.name));
    };
    let (mut moved, mut singles) =
        match pull_batches(c, batches, singles, remote, local, &bar, &warn).await {
            Ok(r) => r,
            Err(e) => {
                bar.abandon();
                return Err(e);
            }
        };
    // One by one, a link would come back as a copy of whatever it points to.
    singles.retain(|(rel, _)| {
        let link = tree.links.contains(rel);
        if link {
            warn(&format!(
                "{rel} (a symlink, and the host has no tar to tell where it points)"
            ));
        }
        !link
    });
    let mut tasks = JoinSet::new();
    let mut queue = singles.into_iter();
    loop {
        while tasks.len() < FILES_IN_FLIGHT {
            let Some((rel, size)) = queue.next() else {
                break;
            };
            let (conn, src, dest, bar) = (
                c.connector.clone(),
                walk::join(remote, &rel),
                local.join(&rel),
                bar.clone(),
            );
            tasks.spawn(async move {
                let cb = bar.file_callback();
                conn.pull(&src, Dest::file(&dest).progress(&cb))
                    .await
                    .map(|()| size)
            });
        }
        let Some(done) = tasks.join_next().await else {
            break;
        };
        match done.map_err(|e| Error::Usage(format!("transfer task failed: {e}")))? {
            Ok(size) => {
                moved.files += 1;
                moved.bytes += size;
            }
            Err(e) => {
                bar.abandon();
                return Err(e.into());
            }
        }
    }
    bar.finish(&format!("{} files", moved.files));
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps() {
        assert_eq!(touch_stamp(0), "197001010000.00");
        assert_eq!(touch_stamp(951_782_400), "200002290000.00");
        assert_eq!(touch_stamp(1_700_000_000), "202311142213.20");
    }
}
