#!/usr/bin/env python3
"""The job store at 1 M jobs (issue 16): builds such a store itself, then measures

* whole-process `sremote jobs ls …` (wall time, peak RSS) for the usual listings;
* the store lookups behind `jobs show ID` and a resubmission (by id, by call hash, and
  the claim transaction a resubmission runs);
* recording a `map` of 100,000 items into one batch (group-committed as a batch does,
  and one transaction per write for contrast).

Usage: bench/jobs_store.py [--jobs 1000000] [--reps 5] [--write]
(`--write` replaces the "Job store at 1 M jobs" section of BENCHMARKS.md). Release
builds of `sremote` and the `store_bench` example are made first.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEGIN = "<!-- jobs-store: written by bench/jobs_store.py -->"
END = "<!-- jobs-store: end -->"

LISTINGS = [
    ("jobs ls --status running", ["jobs", "ls", "--status", "running"], "≤ 20 ms"),
    ("jobs ls", ["jobs", "ls"], "RSS ≤ 50 MB"),
    ("jobs ls --json", ["--json", "jobs", "ls"], "RSS ≤ 50 MB"),
    ("jobs ls --host bench", ["jobs", "ls", "--host", "bench"], ""),
    ("jobs ls --all --json", ["--json", "jobs", "ls", "--all"], "RSS ≤ 50 MB"),
    ("jobs ls --all", ["jobs", "ls", "--all"], "RSS ≤ 50 MB"),
]


def build():
    for args in (
        ["cargo", "build", "--release", "-p", "sremote-cli", "--bin", "sremote"],
        ["cargo", "build", "--release", "-p", "sremote-jobs", "--example", "store_bench"],
    ):
        subprocess.run(args, cwd=ROOT, check=True)
    target = ROOT / "target" / "release"
    return target / "sremote", target / "examples" / "store_bench"


def run_measured(argv, env):
    """Wall seconds and peak RSS (MB) of one process, its stdout discarded."""
    t = time.perf_counter()
    p = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    p.returncode = os.waitstatus_to_exitcode(status)
    err = p.stderr.read().decode(errors="replace")
    if p.returncode != 0:
        sys.exit(f"{' '.join(argv)} exited {p.returncode}: {err}")
    return wall, usage.ru_maxrss / 1024


def bench_json(argv):
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=1_000_000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--map", type=int, default=100_000)
    ap.add_argument("--write", action="store_true")
    a = ap.parse_args()
    sremote, store_bench = build()
    with tempfile.TemporaryDirectory(prefix="srstore-") as tmp:
        db = Path(tmp) / "jobs.sqlite3"
        built = bench_json([str(store_bench), "build", str(db), str(a.jobs)])
        env = dict(os.environ, HOME=tmp, SREMOTE_JOBS_DB=str(db), NO_COLOR="1")
        env.pop("SREMOTE_CONFIG", None)
        rows = []
        for label, args, goal in LISTINGS:
            argv = [str(sremote), *args]
            run_measured(argv, env)  # warm the page cache
            runs = [run_measured(argv, env) for _ in range(a.reps)]
            wall = statistics.median(r[0] for r in runs)
            rss = max(r[1] for r in runs)
            rows.append((label, wall, rss, goal))
            print(f"{label:28} {wall * 1000:9.1f} ms {rss:7.1f} MB", flush=True)
        look = bench_json([str(store_bench), "lookups", str(db), str(a.jobs)])
        print(json.dumps(look), flush=True)
        grouped = bench_json([str(store_bench), "map", str(db), str(a.map), "64"])
        single = bench_json([str(store_bench), "map", str(db), str(a.map), "1"])
        print(json.dumps(grouped), json.dumps(single), flush=True)
    section = render(a, built, rows, look, grouped, single)
    print(section)
    if a.write:
        path = ROOT / "BENCHMARKS.md"
        text = path.read_text()
        if BEGIN in text:
            head, rest = text.split(BEGIN, 1)
            tail = rest.split(END, 1)[1] if END in rest else ""
            text = head + section + tail
        else:
            text = text.rstrip("\n") + "\n\n" + section + "\n"
        path.write_text(text)


def render(a, built, rows, look, grouped, single):
    machine = f"{platform.node() and 'vm'}, {os.cpu_count()} CPUs, {platform.platform()}"
    lines = [
        BEGIN,
        "## Job store at 1 M jobs (bench/jobs_store.py)",
        "",
        f"`bench/jobs_store.py --jobs {a.jobs}` on {time.strftime('%Y-%m-%d')}: {machine}; release",
        f"builds. The store is built by the benchmark itself ({a.jobs:,} jobs over three years on 5",
        "hosts, 80 % of them in sweeps of 1,000, 100 running, 50 queued, the rest over;",
        f"{built['file_mb']:.0f} MB, written at {built['jobs_per_s']:,.0f} jobs/s). Whole processes, stdout",
        f"to /dev/null, median of {a.reps} after one warm-up run; RSS is the peak of all runs.",
        "",
        "| command | wall | peak RSS | goal |",
        "|---|---:|---:|---|",
    ]
    for label, wall, rss, goal in rows:
        lines.append(f"| `sremote {label}` | {wall * 1000:.1f} ms | {rss:.1f} MB | {goal} |")
    us = lambda s: f"{s['p50_us']:.0f} / {s['p99_us']:.0f} µs"  # noqa: E731
    lines += [
        "",
        "| store lookup (p50 / p99 of 2,000) | time | goal |",
        "|---|---:|---|",
        f"| by id (`jobs show ID`) | {us(look['get_by_id'])} | ≤ 1 ms |",
        f"| newest job of a call hash (resubmission) | {us(look['find_by_call_hash'])} | ≤ 1 ms |",
        f"| the resubmission's claim transaction (reattaches) | {us(look['resubmit_claim'])} | ≤ 1 ms |",
        "",
        f"Recording a `map` of {grouped['map']:,} items into one batch (claim, then where it went, per",
        f"item): group-committed 64 writes a transaction, as `Batch` does with 64 items in flight,",
        f"**{grouped['jobs_per_s']:,.0f} jobs/s**; one transaction per write {single['jobs_per_s']:,.0f} jobs/s",
        "(goal ≥ 5,000 jobs/s).",
        "",
        "Reproduce: `bench/jobs_store.py [--jobs N] [--reps R] [--write]` (release builds of",
        "`sremote` and `crates/sremote-jobs/examples/store_bench.rs`; the store lives in a temporary",
        "directory and is removed afterwards).",
        "",
        "Before (issue 16, the same kind of store): `jobs ls --status running` 0.18 s (no index on",
        "`state`), `jobs ls` 7.9 s and 1.0 GB, `jobs ls --json` 14.7 s and 4.3 GB.",
        END,
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
