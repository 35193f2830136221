#!/usr/bin/env python3
"""Your own Python functions on a host (issue 12), measured over one throwaway loopback
sshd with the Python package as users get it (release wheel), unpinned and pinned
(everything under `taskset -c 0`):

  * parallel   8 calls of `time.sleep(1)` in one session with 8 Python workers (warm):
               wall time (goal ≤ 1.3 s), and the same with 1 worker for contrast.
  * first      the first call of a function in a new session: a shipped one (a module
               file new to the host: sent, cached, imported) against an installed one
               (`operator.mul`); medians of 15 sessions each (goal ≤ 1.5×).
  * later      later calls in the same session: p50 of 300 calls each (goal ≤ 1.1×).

Writes its section of BENCHMARKS.md (between the functions markers; the rest is kept)
and prints it. usage: bench/functions.py [--out BENCHMARKS.md]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peers  # noqa: E402  (the sshd and the venv of the peer benchmark)

ROOT = peers.ROOT
BEGIN = "<!-- functions: written by bench/functions.py -->"
END = "<!-- functions: end -->"

CHILD = r"""
import json, operator, os, statistics, sys, tempfile, time, uuid, importlib
import sremote

config, work = sys.argv[1], sys.argv[2]
sys.path.insert(0, work)

def client():
    c = sremote.Client("bench", ssh_config=config)
    c.call("os", "getenv", "HOME")          # the session is open (no Python worker yet)
    return c

def fresh_module():
    name = "shipped_" + uuid.uuid4().hex[:12]
    with open(os.path.join(work, name + ".py"), "w") as f:
        f.write("def multiply(a, b):\n    return a * b\n")
    importlib.invalidate_caches()
    return importlib.import_module(name)

def timed(fn):
    t = time.perf_counter(); fn(); return time.perf_counter() - t

out = {}
c = client()
for n in (1, 8):
    c.set_workers(n)
    c.map("time", "sleep", [0.01] * 8)      # start the workers
    out["sleep8_workers%d_s" % n] = timed(lambda: c.map("time", "sleep", [1] * 8))
c.close()

first_installed, first_shipped = [], []
for _ in range(15):
    c = client(); c.set_workers(1)
    first_installed.append(timed(lambda: c.apply(operator.mul, 6, 7)))
    c.close()
    m = fresh_module()
    c = client(); c.set_workers(1)
    first_shipped.append(timed(lambda: c.apply(m.multiply, 6, 7)))
    c.close()
out["first_installed_ms"] = statistics.median(first_installed) * 1e3
out["first_shipped_ms"] = statistics.median(first_shipped) * 1e3

c = client(); c.set_workers(1)
m = fresh_module()
for f in (operator.mul, m.multiply):
    for _ in range(30):
        c.apply(f, 6, 7)
inst, ship = [], []
for _ in range(300):
    inst.append(timed(lambda: c.apply(operator.mul, 6, 7)))
    ship.append(timed(lambda: c.apply(m.multiply, 6, 7)))
out["later_installed_us"] = statistics.median(inst) * 1e6
out["later_shipped_us"] = statistics.median(ship) * 1e6
c.close()
print(json.dumps(out))
"""


def measure(python, sshd, pin):
    with tempfile.TemporaryDirectory(prefix="sremote-fn-") as work:
        p = subprocess.run(peers.client_cmd([python, "-c", CHILD, sshd.config, work], pin),
                           capture_output=True, text=True, timeout=1200)
    if p.returncode != 0:
        raise SystemExit("the functions benchmark failed:\n" + p.stderr)
    return json.loads(p.stdout.strip().splitlines()[-1])


def section(results):
    lines = [BEGIN, "## Your own Python functions (bench/functions.py)", "",
             "One loopback sshd, the release wheel; `pinned`: every process under `taskset -c 0`.", "",
             "| measure | unpinned | pinned | goal |", "|---|---:|---:|---|"]

    def row(label, fmt, key, goal):
        lines.append("| %s | %s | %s | %s |" % (label, fmt(results["unpinned"]), fmt(results["pinned"]), goal))

    row("8 × `time.sleep(1)`, 8 workers", lambda r: "%.2f s" % r["sleep8_workers8_s"], None, "≤ 1.3 s")
    row("8 × `time.sleep(1)`, 1 worker", lambda r: "%.2f s" % r["sleep8_workers1_s"], None, "(contrast)")
    row("first call: shipped / installed",
        lambda r: "%.2f (%.1f / %.1f ms)" % (r["first_shipped_ms"] / r["first_installed_ms"], r["first_shipped_ms"],
                                              r["first_installed_ms"]), None, "≤ 1.5")
    row("later calls p50: shipped / installed",
        lambda r: "%.2f (%.0f / %.0f µs)" % (r["later_shipped_us"] / r["later_installed_us"], r["later_shipped_us"],
                                              r["later_installed_us"]), None, "≤ 1.1")
    lines += ["", END]
    return "\n".join(lines)


def write(path, text):
    old = open(path).read() if os.path.exists(path) else ""
    if BEGIN in old and END in old:
        new = old[:old.index(BEGIN)] + text + old[old.index(END) + len(END):]
    elif peers.KEEP_MARKER in old:
        at = old.index(peers.KEEP_MARKER) + len(peers.KEEP_MARKER)
        new = old[:at] + "\n\n" + text + "\n" + old[at:]
    else:
        new = old + "\n" + peers.KEEP_MARKER + "\n\n" + text + "\n"
    with open(path, "w") as f:
        f.write(new)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "BENCHMARKS.md"))
    ap.add_argument("--python", help="a python with the sremote package (default: build a venv)")
    args = ap.parse_args()
    state = tempfile.mkdtemp(prefix="sremote-fnbench-")
    python = args.python or peers.venv(state)
    results = {}
    for pin in (False, True):
        sshd = peers.Sshd(os.path.join(state, "pinned" if pin else "unpinned"), pin)
        try:
            results["pinned" if pin else "unpinned"] = measure(python, sshd, pin)
            print(("pinned" if pin else "unpinned"), results["pinned" if pin else "unpinned"], file=sys.stderr)
        finally:
            sshd.stop()
    text = section(results)
    write(args.out, text)
    print(text)


if __name__ == "__main__":
    main()
