//! `sremote jobs ls` and `sremote jobs watch`: the job list people look at all day.
//!
//! Rows come straight from SQLite ([`JobStore::for_each`]) into the output, the newest 50
//! by default: memory does not grow with the store. Text is a table (comfy-table) in
//! local time, relative for recent jobs; `--json` is one object per job per line (JSON
//! Lines). `--refresh` asks the hosts of unfinished jobs where they are first (a few hosts
//! and jobs at once; a host that fails is reported and the rest listed); `watch` does that
//! again and again until every listed job is over.

use std::collections::{BTreeMap, HashMap};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use chrono::TimeZone;
use comfy_table::{ColumnConstraint, Table, Width};
use futures_util::StreamExt;
use serde_json::{Value, json};
use sremote_core::Error;
use sremote_jobs::{JobError, JobFilter, JobRecord, JobState, JobStore, JobsExt};

use crate::hosts::{self, HostOptions};
use crate::jobs::store;
use crate::jobs_reach::spec_of;
use crate::output::{self, say};

/// Which jobs `jobs ls` and `jobs watch` show.
#[derive(clap::Args, Debug, Clone)]
pub struct ListArgs {
    /// Only jobs on this host (a config name or destination; a,b,c or @group for several).
    #[arg(long)]
    host: Option<String>,
    /// Only jobs in this state (submitting, queued, running, succeeded, failed, cancelled, died).
    #[arg(long, value_parser = parse_state)]
    status: Option<JobState>,
    /// Show the newest N jobs.
    #[arg(long, default_value_t = 50, value_name = "N")]
    limit: usize,
    /// Show every job (streams; no limit).
    #[arg(long, conflicts_with = "limit")]
    all: bool,
}

/// `sremote jobs ls`.
#[derive(clap::Args, Debug, Clone)]
pub struct LsArgs {
    #[command(flatten)]
    list: ListArgs,
    /// Ask the hosts of the listed unfinished jobs where they are first.
    #[arg(long)]
    refresh: bool,
}

/// `sremote jobs watch`.
#[derive(clap::Args, Debug, Clone)]
pub struct WatchArgs {
    #[command(flatten)]
    list: ListArgs,
    /// Seconds between looks at the hosts.
    #[arg(long, default_value_t = 2.0)]
    interval: f64,
}

fn parse_state(s: &str) -> Result<JobState, String> {
    JobState::parse(s).ok_or_else(|| {
        format!(
            "unknown state {s:?} (submitting, queued, running, succeeded, failed, cancelled, died)"
        )
    })
}

/// Hosts worked on at once by `--refresh`, and jobs per host at once.
const HOSTS_AT_ONCE: usize = 8;
const JOBS_PER_HOST: usize = 8;
/// Rows per table chunk under `--all` (widths of the first chunk are kept).
const CHUNK: usize = 1000;
/// The program column is cut here.
const WHAT_WIDTH: usize = 60;

/// `sremote jobs ls`.
pub async fn ls(a: LsArgs, opts: &HostOptions) -> Result<ExitCode, Error> {
    let json = opts.json;
    let store = match store() {
        Ok(s) => s,
        Err(e) => return Ok(output::report(&e, json, json!({}))),
    };
    let mut code = ExitCode::SUCCESS;
    if a.refresh {
        let ids = match unfinished_ids(&store, &a.list, opts) {
            Ok(ids) => ids,
            Err(e) => return Ok(output::report(&e, json, json!({}))),
        };
        if !refresh(&store, &ids, opts).await {
            code = ExitCode::from(3);
        }
    }
    let now = now_ms();
    let shown = if json {
        let mut out = std::io::stdout().lock();
        each(&store, &a.list, opts, |r| {
            let _ = writeln!(out, "{}", record_json(r));
        })
    } else {
        let mut t = Chunked::new(now);
        let r = each(&store, &a.list, opts, |r| t.push(r));
        t.flush();
        if r.is_ok() && !a.list.all && a.list.host.is_none() {
            let filter = JobFilter {
                state: a.list.status,
                ..Default::default()
            };
            if store.count(&filter, a.list.limit + 1).unwrap_or(0) > a.list.limit {
                eprintln!(
                    "(the newest {} shown — `--limit N` or `--all` for more)",
                    a.list.limit
                );
            }
        }
        r
    };
    match shown {
        Ok(()) => Ok(code),
        Err(e) => Ok(output::report(&e, json, json!({}))),
    }
}

/// `sremote jobs watch`: refresh and redraw until every listed job is over (on a terminal:
/// the table again; else only the jobs whose state changed, a line each).
pub async fn watch(a: WatchArgs, opts: &HostOptions) -> Result<ExitCode, Error> {
    let json = opts.json;
    let Ok(interval) = Duration::try_from_secs_f64(a.interval) else {
        let e = JobError::usage(
            format!("--interval {}: not a number of seconds", a.interval),
            "give seconds > 0, e.g. --interval 5",
        );
        return Ok(output::report(&e, json, json!({})));
    };
    let store = match store() {
        Ok(s) => s,
        Err(e) => return Ok(output::report(&e, json, json!({}))),
    };
    let mut ids = Vec::new();
    if let Err(e) = each(&store, &a.list, opts, |r| ids.push(r.id.clone())) {
        return Ok(output::report(&e, json, json!({})));
    }
    let redraw = std::io::stdout().is_terminal() && !json;
    let mut seen: HashMap<String, JobState> = HashMap::new();
    loop {
        let records: Vec<JobRecord> = ids.iter().filter_map(|id| store.get(id).ok()).collect();
        let unfinished: Vec<String> = records
            .iter()
            .filter(|r| !r.state.is_terminal())
            .map(|r| r.id.clone())
            .collect();
        if !unfinished.is_empty() {
            refresh(&store, &unfinished, opts).await;
        }
        let records: Vec<JobRecord> = ids.iter().filter_map(|id| store.get(id).ok()).collect();
        let now = now_ms();
        if redraw {
            print!("\x1b[H\x1b[2J");
            let mut t = Chunked::new(now);
            records.iter().for_each(|r| t.push(r));
            t.flush();
        } else {
            let changed: Vec<&JobRecord> = records
                .iter()
                .filter(|r| seen.get(&r.id) != Some(&r.state))
                .collect();
            if json {
                changed.iter().for_each(|r| say!("{}", record_json(r)));
            } else if !changed.is_empty() {
                let mut t = Chunked::new(now);
                t.header = seen.is_empty();
                changed.iter().for_each(|r| t.push(r));
                t.flush();
            }
        }
        let _ = std::io::stdout().flush();
        seen = records.iter().map(|r| (r.id.clone(), r.state)).collect();
        if records.iter().all(|r| r.state.is_terminal()) {
            return Ok(ExitCode::SUCCESS);
        }
        tokio::time::sleep(interval).await;
    }
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Hand every listed record to `f`, oldest first, straight from the store. A host list or
/// group (`a,b`, `@g`) is one query per member, merged (the newest `limit` of all).
fn each(
    store: &JobStore,
    a: &ListArgs,
    opts: &HostOptions,
    mut f: impl FnMut(&JobRecord),
) -> Result<(), JobError> {
    let filter = |host| JobFilter {
        host,
        state: a.status,
        limit: (!a.all).then_some(a.limit),
        ..Default::default()
    };
    let host = match &a.host {
        None => return store.for_each(&filter(None), |r| (f(&r), true).1),
        Some(h) if !h.contains(',') && !h.starts_with('@') => {
            return store.for_each(&filter(Some(h.clone())), |r| (f(&r), true).1);
        }
        Some(h) => h.clone(),
    };
    let names: Vec<String> = opts
        .resolve(&[host])?
        .hosts
        .into_iter()
        .map(|h| h.name)
        .collect();
    // Merged by list order; each member's query is limited already.
    let mut all: BTreeMap<(u64, Option<u64>, String), JobRecord> = BTreeMap::new();
    for name in names {
        store.for_each(&filter(Some(name)), |r| {
            let key = (r.submitted_ms, r.batch.as_ref().map(|b| b.1), r.id.clone());
            all.insert(key, r);
            true
        })?;
    }
    let skip = if a.all {
        0
    } else {
        all.len().saturating_sub(a.limit)
    };
    all.values().skip(skip).for_each(f);
    Ok(())
}

/// The listed jobs that are not over yet.
fn unfinished_ids(
    store: &JobStore,
    a: &ListArgs,
    opts: &HostOptions,
) -> Result<Vec<String>, JobError> {
    let mut ids = Vec::new();
    each(store, a, opts, |r| {
        if !r.state.is_terminal() {
            ids.push(r.id.clone());
        }
    })?;
    Ok(ids)
}

/// Ask the hosts of `ids` where those jobs are (the store is updated): one connection per
/// host, [`HOSTS_AT_ONCE`] hosts and [`JOBS_PER_HOST`] jobs each at once. A host that
/// cannot be reached is reported on stderr (a JSON line under `--json`: on stdout) and its
/// jobs listed as recorded. `false` when any host failed.
async fn refresh(store: &JobStore, ids: &[String], opts: &HostOptions) -> bool {
    let mut by_host: BTreeMap<String, Vec<JobRecord>> = BTreeMap::new();
    for id in ids {
        if let Ok(r) = store.get(id) {
            let key = match &r.reach {
                Some(reach) => reach.to_json(),
                None => r.destination.clone().unwrap_or_else(|| r.host.clone()),
            };
            by_host.entry(key).or_default().push(r);
        }
    }
    let work = by_host.into_values().map(|recs| async move {
        let shown = recs[0]
            .destination
            .clone()
            .unwrap_or_else(|| recs[0].host.clone());
        let client = async {
            let spec = spec_of(&recs[0], opts)?;
            Ok::<_, JobError>(hosts::connect_spec(&spec, opts).await?.client())
        };
        let client = match client.await {
            Ok(c) => c,
            Err(e) => return Err((shown, recs.len(), e)),
        };
        let statuses = futures_util::stream::iter(recs.iter().map(|r| {
            let client = client.clone();
            async move {
                let job = client.job(&r.id, Some(store))?;
                job.status().await.map(drop)
            }
        }))
        .buffer_unordered(JOBS_PER_HOST)
        .collect::<Vec<Result<(), JobError>>>()
        .await;
        match statuses.into_iter().find_map(Result::err) {
            Some(e) => Err((shown, recs.len(), e)),
            None => Ok(()),
        }
    });
    let results: Vec<_> = futures_util::stream::iter(work)
        .buffer_unordered(HOSTS_AT_ONCE)
        .collect()
        .await;
    let mut ok = true;
    for (host, n, e) in results.into_iter().filter_map(Result::err) {
        ok = false;
        let (message, hint) = output::error_lines(&e);
        if opts.json {
            say!(
                "{}",
                json!({"host": host, "refreshed": false, "jobs": n, "error": output::error_json(&e)})
            );
        } else {
            crate::output::warn(&format!(
                "cannot refresh {n} job(s) on {host}: {} — listed as last seen{}",
                message,
                hint.map(|h| format!(" ({h})")).unwrap_or_default()
            ));
        }
    }
    ok
}

/// The program of a `job.run` job (the argv it runs, without the PATH wrapper `run
/// --detach` puts first), else `None`.
fn argv(r: &JobRecord) -> Option<Vec<String>> {
    if r.request.module != "job" || r.request.function != "run" {
        return None;
    }
    let words: Vec<String> = r
        .request
        .args
        .first()?
        .as_array()?
        .iter()
        .map(|w| w.as_str().map(str::to_string))
        .collect::<Option<_>>()?;
    let wrapped = words.len() >= 5
        && words[0] == "/bin/sh"
        && words[1] == "-c"
        && words[2] == hosts::PATH_WRAPPER
        && words[3] == "sremote-path";
    Some(if wrapped { words[5..].to_vec() } else { words })
}

/// What the job runs, for people: the program's argv (shell-quoted), or `module.function`.
fn what(r: &JobRecord) -> String {
    match argv(r) {
        Some(words) => sremote_core::shell::join(&words),
        None => format!("{}.{}", r.request.module, r.request.function),
    }
}

/// `when` (Unix ms) for people, seen at `now`: `12 s ago`, `3 min ago`, `5 h ago`, else
/// the local date and time.
pub(crate) fn when_text(when: u64, now: u64) -> String {
    let ago = now.saturating_sub(when) / 1000;
    match ago {
        0..60 => format!("{ago} s ago"),
        60..3600 => format!("{} min ago", ago / 60),
        3600..43200 => format!("{} h ago", ago / 3600),
        _ => local_time(when),
    }
}

/// Unix ms as local `YYYY-MM-DD HH:MM`.
fn local_time(ms: u64) -> String {
    match chrono::Local.timestamp_millis_opt(ms as i64) {
        chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => {
            t.format("%Y-%m-%d %H:%M").to_string()
        }
        chrono::LocalResult::None => format!("{ms} ms"),
    }
}

/// Unix ms as local RFC 3339 (`2026-12-03T01:05:07.123+01:00`).
fn local_rfc3339(ms: u64) -> Option<String> {
    chrono::Local
        .timestamp_millis_opt(ms as i64)
        .single()
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, false))
}

/// A duration for people: `45 s`, `12 min`, `3.5 h`, `2 d`.
fn took_text(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..120 => format!("{s} s"),
        120..7200 => format!("{} min", s / 60),
        7200..172_800 => format!("{:.1} h", s as f64 / 3600.0),
        _ => format!("{} d", s / 86_400),
    }
}

fn state_text(r: &JobRecord) -> String {
    match r.failure_class {
        Some(c) if matches!(r.state, JobState::Died | JobState::Failed) => {
            format!("{}:{c}", r.state)
        }
        _ => r.state.to_string(),
    }
}

/// One job as a JSON object (one line of `--json`).
pub(crate) fn record_json(r: &JobRecord) -> Value {
    json!({
        "id": r.id, "host": r.destination.as_deref().unwrap_or(&r.host), "state": r.state.as_str(),
        "module": r.request.module, "function": r.request.function, "argv": argv(r), "name": r.name,
        "scheduler": r.scheduler.as_str(), "scheduler_id": r.scheduler_id, "remote_dir": r.remote_dir,
        "partition": r.resources.partition,
        "failure_class": r.failure_class.map(|c| c.as_str()), "failure": r.failure, "processed": r.processed,
        "batch": r.batch.as_ref().map(|b| json!({"id": b.0, "index": b.1})),
        "submitted": local_rfc3339(r.submitted_ms), "finished": r.finished_ms.and_then(local_rfc3339),
        "submitted_unix_ms": r.submitted_ms, "finished_unix_ms": r.finished_ms,
    })
}

const HEADER: [&str; 7] = [
    "ID",
    "STATE",
    "HOST",
    "SCHEDULER",
    "SUBMITTED",
    "TOOK",
    "WHAT",
];

/// The table, printed a chunk of rows at a time with the first chunk's column widths.
struct Chunked {
    now: u64,
    rows: Vec<[String; 7]>,
    widths: Option<[usize; 7]>,
    header: bool,
}

impl Chunked {
    fn new(now: u64) -> Chunked {
        Chunked {
            now,
            rows: Vec::new(),
            widths: None,
            header: true,
        }
    }

    fn push(&mut self, r: &JobRecord) {
        let sched = match &r.scheduler_id {
            Some(sid) => format!("{}:{sid}", r.scheduler),
            None => r.scheduler.to_string(),
        };
        let took = match r.finished_ms {
            Some(end) => took_text(end.saturating_sub(r.submitted_ms)),
            None if !r.state.is_terminal() => {
                format!("{}…", took_text(self.now.saturating_sub(r.submitted_ms)))
            }
            None => "-".into(),
        };
        let mut what = what(r);
        if what.chars().count() > WHAT_WIDTH {
            what = what.chars().take(WHAT_WIDTH - 1).collect::<String>() + "…";
        }
        self.rows.push([
            r.id.clone(),
            state_text(r),
            r.destination.clone().unwrap_or_else(|| r.host.clone()),
            sched,
            when_text(r.submitted_ms, self.now),
            took,
            what,
        ]);
        if self.rows.len() >= CHUNK {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.rows.is_empty() && (!self.header || self.widths.is_some()) {
            return;
        }
        let widths = *self.widths.get_or_insert_with(|| {
            let mut w = HEADER.map(str::len);
            for row in &self.rows {
                for (i, cell) in row.iter().enumerate() {
                    w[i] = w[i].max(cell.chars().count());
                }
            }
            w
        });
        let mut t = Table::new();
        t.load_preset(comfy_table::presets::NOTHING)
            .set_content_arrangement(comfy_table::ContentArrangement::Disabled);
        if std::mem::take(&mut self.header) {
            t.set_header(HEADER);
        }
        for row in self.rows.drain(..) {
            t.add_row(row);
        }
        t.set_constraints(
            widths.map(|w| ColumnConstraint::Absolute(Width::Fixed((w + 2).min(200) as u16))),
        );
        for column in t.column_iter_mut() {
            column.set_padding((0, 2));
        }
        let mut out = std::io::stdout().lock();
        for line in t.lines() {
            let _ = writeln!(out, "{}", line.trim_end());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_times_are_relative_older_ones_local() {
        let now = 1_800_000_000_000;
        assert_eq!(when_text(now - 5_000, now), "5 s ago");
        assert_eq!(when_text(now - 180_000, now), "3 min ago");
        assert_eq!(when_text(now - 5 * 3_600_000, now), "5 h ago");
        let old = when_text(now - 3 * 86_400_000, now);
        assert!(
            old.len() == 16 && old.as_bytes()[4] == b'-' && old.as_bytes()[13] == b':',
            "{old}"
        );
        assert_eq!(took_text(45_000), "45 s");
        assert_eq!(took_text(30 * 60_000), "30 min");
    }
}
