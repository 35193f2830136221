#!/usr/bin/env python3
"""Per-call profile of a session call (`os.getenv("HOME")`, one in flight), client and
endpoint side: instructions (callgrind), syscalls (strace -c, and perf's
`raw_syscalls:sys_enter`) and context switches (perf's software event), each per call as
the difference between a run of N and of 2N calls divided by N (start-up, bootstrap and
warm-up cancel out).

  * endpoint: `ENDPOINT serve` driven directly over pipes by this script (frames as in
    PROTOCOL.md, "Session mode"): the same request JSON the Rust client sends, one at a
    time; only the endpoint process (all its threads) is measured.
  * client: `SREMOTE bench local --mode session --calls N --concurrency 1` (the local
    connector, the endpoint a child that is not measured); callgrind without
    --trace-children, strace without -f, perf with --no-inherit: the client process only
    (its call path runs on the main thread: the CLI's runtime is current-thread).

usage: bench/percall.py --sremote PATH --endpoint PATH [--calls N] [--only client|endpoint]
                        [--json]

Build the binaries with line tables so callgrind can name functions, e.g.
`cargo build --profile profiling --config 'profile.profiling.inherits="release"'
--config 'profile.profiling.debug="line-tables-only"' -p sremote-cli -p sremote-endpoint`
(target/profiling/{sremote,sremote-endpoint}). Instruction counts are stable on a noisy
machine; wall-clock figures are not taken here (bench/peers.py does those).
"""
import argparse
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile

MAGIC = b"SRMT\x00\x01\r\n"


def request_frame(i):
    body = json.dumps({"protocol": 1, "id": f"percall-{i}", "module": "os", "function": "getenv",
                       "args": ["HOME"], "kwargs": {}}, separators=(",", ":")).encode()
    return struct.pack("<IB", 1 + 4 + len(body), 2) + struct.pack("<I", len(body)) + body


def read_exact(f, n):
    out = b""
    while len(out) < n:
        chunk = f.read(n - len(out))
        if not chunk:
            raise SystemExit("the endpoint closed its output early")
        out += chunk
    return out


def read_frame(f):
    length, kind = struct.unpack("<IB", read_exact(f, 5))
    return kind, read_exact(f, length - 1)


def drive_endpoint(prefix, endpoint, calls, env):
    """Run `prefix + [endpoint, serve]` and make `calls` calls, one at a time."""
    p = subprocess.Popen(prefix + [endpoint, "serve"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, env=env, bufsize=0)
    if read_exact(p.stdout, 8) != MAGIC:
        raise SystemExit("no session magic from the endpoint")
    read_frame(p.stdout)  # Hello
    for i in range(calls):
        p.stdin.write(request_frame(i))
        kind, body = read_frame(p.stdout)
        if kind != 3:
            raise SystemExit(f"unexpected frame kind {kind}")
    p.stdin.close()
    p.wait()


def callgrind_total(path):
    with open(path) as f:
        for line in f:
            if line.startswith("summary:") or line.startswith("totals:"):
                return int(line.split()[1])
    raise SystemExit(f"no totals in {path}")


def strace_total(path):
    """Total syscalls and the per-name counts from `strace -c` output."""
    names, total = {}, 0
    with open(path) as f:
        for line in f:
            cols = line.split()
            if len(cols) >= 5 and re.match(r"^[\d.]+$", cols[0]) and cols[-1] != "total":
                calls = int(cols[3])
                names[cols[-1]] = calls
            elif cols and cols[-1] == "total":
                total = int(cols[3]) if len(cols) >= 5 else int(cols[2])
    return total, names


def perf_counts(path):
    out = {}
    with open(path) as f:
        for line in f:
            cols = line.strip().split(",")
            if len(cols) > 2 and cols[0].replace(".", "").isdigit():
                out[cols[2]] = float(cols[0])
    return out


class Runner:
    def __init__(self, args, state):
        self.args, self.state = args, state
        self.home = os.path.join(state, "home")
        os.makedirs(self.home, exist_ok=True)
        self.env = dict(os.environ, HOME=self.home, SREMOTE_ENDPOINT=os.path.abspath(args.endpoint),
                        SREMOTE_CONTROL_DIR=os.path.join(state, "ctl"))
        self.env.pop("SREMOTE_CONFIG", None)

    def client(self, prefix, calls):
        cmd = prefix + [self.args.sremote, "bench", "local", "--mode", "session",
                        "--calls", str(calls), "--concurrency", "1", "--json"]
        out = subprocess.run(cmd, env=self.env, capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"{cmd} failed: {out.stderr}")

    def endpoint(self, prefix, calls):
        drive_endpoint(prefix, self.args.endpoint, calls, self.env)

    def per_call(self, side, tool, calls):
        """Run `side` under `tool` with N and 2N calls; the per-call difference."""
        results = []
        for n in (calls, 2 * calls):
            out = os.path.join(self.state, f"{side}-{tool}-{n}")
            prefix = {
                "callgrind": ["valgrind", "--tool=callgrind", "-q", f"--callgrind-out-file={out}"],
                "strace": ["strace", "-c", "-o", out] + (["-f"] if side == "endpoint" else []),
                "perf": ["perf", "stat", "-x,", "-o", out,
                         "-e", "raw_syscalls:sys_enter,context-switches,cpu-migrations,task-clock"]
                + (["--no-inherit"] if side == "client" else []),
            }[tool]
            getattr(self, side)(prefix + ["--"] if tool == "perf" else prefix, n)
            if tool == "callgrind":
                results.append(callgrind_total(out))
            elif tool == "strace":
                results.append(strace_total(out))
            else:
                results.append(perf_counts(out))
            if tool == "callgrind" and self.args.keep:
                shutil.copy(out, os.path.join(self.args.keep, os.path.basename(out)))
        a, b = results
        if tool == "callgrind":
            return (b - a) / calls
        if tool == "strace":
            names = {k: (b[1].get(k, 0) - a[1].get(k, 0)) / calls for k in set(a[1]) | set(b[1])}
            return {"total": (b[0] - a[0]) / calls,
                    "by_name": {k: round(v, 2) for k, v in sorted(names.items()) if abs(v) >= 0.01}}
        return {k: (b.get(k, 0) - a.get(k, 0)) / calls for k in b}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sremote", required=True)
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--only", choices=["client", "endpoint"])
    ap.add_argument("--tools", default="callgrind,strace,perf")
    ap.add_argument("--keep", help="copy the callgrind outputs into this directory")
    args = ap.parse_args()
    state = tempfile.mkdtemp(prefix="sremote-percall-")
    try:
        r = Runner(args, state)
        # Install the endpoint once (the local connector's bootstrap), outside the counts.
        subprocess.run([args.sremote, "bootstrap", "local"], env=r.env, check=True, capture_output=True)
        report = {}
        for side in ("endpoint", "client"):
            if args.only and side != args.only:
                continue
            for tool in args.tools.split(","):
                report.setdefault(side, {})[tool] = r.per_call(side, tool, args.calls)
                print(f"{side} {tool}: {json.dumps(report[side][tool])}", file=sys.stderr)
        print(json.dumps(report, indent=1))
    finally:
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
