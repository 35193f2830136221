#!/usr/bin/env python3
"""Peer benchmark: sremote against the ssh echo floor, execnet and mitogen, in one run.

Starts its own throwaway sshd on loopback (own keys, clean HOME), then measures, over that
one sshd:
  * echo floor   64-byte messages through one persistent `ssh host cat`, timed by a
                 compiled client (tests/src/bin/echo_floor.rs, built with rustc -O): one in
                 flight (latency) and 64 in flight (the pipelined floor, for throughput)
  * ssh mux true `ssh -S <master> host true` (the cost of one exec over a ControlMaster)
  * sremote      `sremote bench` in session, pipe and file mode; session with 64 in flight
  * execnet      os.getenv("HOME") through a channel to a remote interpreter
  * mitogen      context.call(os.getenv, "HOME")
  * python       the sremote Python package (crates/sremote-py, release wheel):
                 c.call("os", "getenv", "HOME") in session mode
each unpinned and pinned, several repetitions, medians. Every client makes the same number
of untimed calls first (max(100, N/10)): a client timed colder than its peer would lose
to its own start-up (page faults, caches), not to its per-call path. Pinned: EVERY process of every
path on CPU 0 — the client (compiled floor, sremote, Python peers), its ssh (and ssh
master), sshd and the remote side (cat, endpoint, remote interpreter) — by starting sshd
and each client under `taskset -c 0` (children inherit it) and by never reusing an ssh
master started unpinned (sremote's persisted login is dropped when the mode changes; the
peers log in directly). A sampler checks it: every process of the run seen during a pinned
measurement must be on CPU 0, else the report names it. A ratio that puts sremote below
the floor (faster than the transport it rides on) is reported as a measurement error.

usage: bench/peers.py [--calls N] [--reps R] [--sremote PATH] [--venv DIR]
                      [--no-python-client] [--write]
`--write` replaces the peers section at the top of BENCHMARKS.md (the sections of the other
scripts are kept); without it the report is only printed. Needs root (sshd),
openssh-server, python3-venv, rustc; installs execnet, mitogen and maturin from PyPI into a
venv (under the state dir, or --venv to keep it between runs) and builds the sremote Python
package into it (skipped with --no-python-client).
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import benchlib
from benchlib import ROOT, pinned

BEGIN = "<!-- peers: written by bench/peers.py -->"
END = "<!-- peers: end -->"
KEEP_MARKER = "<!-- measured by other benchmarks: kept by bench/peers.py -->"


class Bench:
    """The sshd of one mode (pinned or not), its ssh config and sremote's environment."""

    def __init__(self, state, pin):
        self.state = state
        self.pin = pin
        keydir = benchlib.keys(os.path.join(state, "keys"))
        self.sshd = benchlib.Sshd(state, keydir, pin=pin).start().wait_ready()
        self.home = self.sshd.home
        self.config = os.path.join(state, "ssh_config")
        self.mux = os.path.join(state, "mux")
        with open(self.config, "w") as f:
            # `bench`: a login of its own for every client (the floor and the peers), so
            # none rides on a master started by someone else under another affinity.
            f.write(benchlib.ssh_host("bench", self.sshd.port, keydir))
            f.write(benchlib.ssh_host("mux", self.sshd.port, keydir,
                                      f"  ControlMaster auto\n  ControlPath {self.mux}\n"
                                      "  ControlPersist 600\n"))
        self.env = dict(os.environ, SREMOTE_CONTROL_DIR=os.path.join(state, "ctl"))
        self.env.pop("SREMOTE_CONFIG", None)

    def run(self, cmd, **kw):
        return subprocess.run(pinned(cmd, self.pin), env=self.env, **kw)

    def logout(self, binary):
        """Drop sremote's persisted ssh login: its next command logs in again."""
        subprocess.run([binary, "disconnect", "--all"], env=self.env, capture_output=True)

    def stop(self, binary):
        subprocess.run(["ssh", "-F", self.config, "-O", "exit", "mux"], capture_output=True)
        self.logout(binary)
        self.sshd.stop()


class PinAudit:
    """While a pinned measurement runs: every process of this run (command line naming the
    state dir, and all their descendants: sshd's session children, the remote side) must
    be allowed on CPU 0 only. Samples /proc every 50 ms."""

    def __init__(self, bench, label):
        self.bench, self.label = bench, label
        self.seen, self.offenders = set(), {}
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def __enter__(self):
        if self.bench.pin:
            self.thread.start()
        return self

    def __exit__(self, *exc):
        if self.bench.pin:
            self.stop_flag.set()
            self.thread.join()

    def loop(self):
        while not self.stop_flag.wait(0.05):
            self.sample()

    def sample(self):
        children = {}
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    with open(f"/proc/{d}/stat") as f:
                        ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                    children.setdefault(ppid, []).append(int(d))
                except (OSError, ValueError, IndexError):
                    pass
        todo = benchlib.pids_with(self.bench.state) + [self.bench.sshd.proc.pid]
        while todo:
            pid = todo.pop()
            if pid in self.seen and pid not in children:
                continue
            self.seen.add(pid)
            todo += [c for c in children.get(pid, []) if c not in self.seen]
            self.check(pid)

    def check(self, pid):
        try:
            with open(f"/proc/{pid}/status") as f:
                status = dict(line.split(":", 1) for line in f if ":" in line)
        except OSError:
            return
        cpus = status.get("Cpus_allowed_list", "").strip()
        # `taskset` itself runs unpinned for the instant before it pins and execs.
        if cpus and cpus != "0" and status.get("Name", "").strip() != "taskset":
            self.offenders[pid] = f"{status.get('Name', '?').strip()} (pid {pid}) on CPUs {cpus}"


def warmup(calls):
    """Untimed calls before the timed ones: the same for every client (the floor, sremote,
    the Python peers), so none is timed colder than another."""
    return max(100, calls // 10)


def echo_floor(floor_bin, b, calls, inflight):
    """The compiled client: 64-byte messages through one `ssh bench cat`."""
    cmd = [floor_bin, "--size", "64", "--calls", str(calls), "--warmup", str(warmup(calls)),
           "--inflight", str(inflight), "--", "ssh", "-F", b.config, "bench", "cat"]
    out = b.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"echo floor failed: {out.stderr}")
    return json.loads(out.stdout)


def mux_true(b, calls):
    b.run(["ssh", "-F", b.config, "mux", "true"], check=True)  # the master, same affinity
    lat = []
    for _ in range(calls):
        t = time.perf_counter()
        b.run(["ssh", "-F", b.config, "mux", "true"], check=True)
        lat.append(time.perf_counter() - t)
    return {"p50_us": statistics.median(lat) * 1e6, "calls_per_s": len(lat) / sum(lat)}


def sremote(binary, b, mode, calls, concurrency):
    cmd = [binary, "--ssh-config", b.config, "bench", "bench", "--mode", mode,
           "--calls", str(calls), "--concurrency", str(concurrency), "--warmup", str(warmup(calls)),
           "--json"]
    out = b.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"sremote bench failed: {out.stderr}")
    return json.loads(out.stdout)


PEER_SCRIPT = r"""
import json, os, statistics, sys, time
kind, config, calls, warm = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
lat = []
if kind == "execnet":
    import execnet
    gw = execnet.makegateway(f"ssh=-F {config} bench//python=python3")
    ch = gw.remote_exec("import os\nwhile 1:\n    k = channel.receive()\n    channel.send(os.getenv(k))")
    for i in range(calls + warm):
        t = time.perf_counter(); ch.send("HOME"); ch.receive()
        if i >= warm: lat.append(time.perf_counter() - t)
    gw.exit()
elif kind == "sremote-py":
    import sremote
    c = sremote.Client("bench", ssh_config=config)
    for i in range(calls + warm):
        t = time.perf_counter(); c.call("os", "getenv", "HOME")
        if i >= warm: lat.append(time.perf_counter() - t)
    c.close()
else:
    import mitogen.master
    broker = mitogen.master.Broker(); router = mitogen.master.Router(broker)
    try:
        ctx = router.ssh(hostname="bench", ssh_args=["-F", config], python_path="python3")
        for i in range(calls + warm):
            t = time.perf_counter(); ctx.call(os.getenv, "HOME")
            if i >= warm: lat.append(time.perf_counter() - t)
    finally:
        broker.shutdown(); broker.join()
print(json.dumps({"p50_us": statistics.median(lat) * 1e6, "calls_per_s": len(lat) / sum(lat)}))
"""


def peer(venv_python, kind, b, calls):
    if venv_python is None:
        return {"error": "skipped (--no-python-client)"}
    out = b.run([venv_python, "-c", PEER_SCRIPT, kind, b.config, str(calls), str(warmup(calls))],
                capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"}
    return json.loads(out.stdout)


def cli_wall(binary, b, args, reps, fresh_home=False):
    """Median wall time (µs) of a whole `sremote` invocation (connect included)."""
    lat = []
    for _ in range(reps):
        if fresh_home:
            shutil.rmtree(os.path.join(b.home, ".sremote"), ignore_errors=True)
        t = time.perf_counter()
        b.run([binary, "--ssh-config", b.config] + args, check=True, capture_output=True)
        lat.append(time.perf_counter() - t)
    return {"p50_us": statistics.median(lat) * 1e6, "calls_per_s": len(lat) / sum(lat)}


def transfer(binary, b, state, mib):
    """MB/s of sremote push/pull against ssh cat, one file of `mib` MiB."""
    src = os.path.join(state, "transfer.bin")
    if not os.path.exists(src) or os.path.getsize(src) != mib << 20:
        with open(src, "wb") as f:
            f.write(os.urandom(mib << 20))
    back = os.path.join(state, "back.bin")
    size = (mib << 20) / 1e6

    def timed(cmd, **kw):
        t = time.perf_counter()
        b.run(cmd, check=True, **kw)
        return size / (time.perf_counter() - t)

    out = {}
    # Both sides pay one fresh connection: no ControlMaster for ssh here. Both use files in
    # the same directory: a plain `ssh host cmd` starts in the passwd home, not in the
    # $HOME this sshd sets, so its paths are absolute. And both pull the same file, written
    # before either pull: reading a file whose pages are still being written back is slower,
    # which would favour whichever reads the older file.
    ssh = ["ssh", "-F", b.config, "-o", "ControlMaster=no", "-o", "ControlPath=none", "bench"]
    t_bin = os.path.join(b.home, "t.bin")
    with open(src, "rb") as f:
        out["ssh cat push MB/s"] = timed(ssh + [f"cat > '{t_bin}'"], stdin=f)
    b.logout(binary)  # sremote pays a new login too, not the persisted one
    out["sremote push MB/s"] = timed([binary, "--ssh-config", b.config, "push", "bench", src, "t2.bin"])
    subprocess.run(["sync"], check=True)
    # Neither pays for freeing an old copy of the output (truncating or replacing 256 MiB
    # costs ~0.1 s): the output is removed before each is timed.
    if os.path.exists(back):
        os.remove(back)
    with open(back, "wb") as f:
        out["ssh cat pull MB/s"] = timed(ssh + [f"cat '{t_bin}'"], stdout=f)
    os.remove(back)
    b.logout(binary)
    out["sremote pull MB/s"] = timed([binary, "--ssh-config", b.config, "pull", "bench", "t.bin", back])
    return out


def venv(path, python_client):
    python = os.path.join(path, "bin", "python")
    if not os.path.exists(python):
        subprocess.run([sys.executable, "-m", "venv", path], check=True)
    subprocess.run([python, "-m", "pip", "install", "-q", "execnet", "mitogen", "maturin>=1.5,<2"], check=True)
    if python_client:
        # The Python client as users get it: `pip install ./crates/sremote-py` (release profile).
        env = dict(os.environ, PATH=os.path.dirname(python) + os.pathsep + os.environ.get("PATH", ""))
        subprocess.run([python, "-m", "pip", "install", "-q", "--no-build-isolation",
                        os.path.join(ROOT, "crates", "sremote-py")], check=True, env=env)
    return python


def median_of(runs, key):
    vals = [r[key] for r in runs if key in r]
    return statistics.median(vals) if vals else float("nan")


def measure_mode(args, binary, floor_bin, python, state, pin):
    """Every path in one mode (pinned or not), `args.reps` times; medians, and the pinning
    audit's offenders."""
    b = Bench(os.path.join(state, "pinned" if pin else "unpinned"), pin)
    offenders = {}
    try:
        b.run([binary, "--ssh-config", b.config, "bootstrap", "bench"], check=True, capture_output=True)
        peer_python = python if args.python_client else None
        rows = {}
        for rep in range(args.reps):
            for name, fn in [
                ("echo floor", lambda: echo_floor(floor_bin, b, args.calls, 1)),
                ("echo floor x64", lambda: echo_floor(floor_bin, b, args.calls * 10, 64)),
                ("ssh mux true", lambda: mux_true(b, max(50, args.calls // 20))),
                ("sremote session", lambda: sremote(binary, b, "session", args.calls, 1)),
                ("sremote session x64", lambda: sremote(binary, b, "session", args.calls * 10, 64)),
                ("sremote pipe", lambda: sremote(binary, b, "pipe", max(50, args.calls // 20), 1)),
                ("sremote file", lambda: sremote(binary, b, "file", max(50, args.calls // 40), 1)),
                ("execnet", lambda: peer(python, "execnet", b, args.calls)),
                ("mitogen", lambda: peer(python, "mitogen", b, args.calls)),
                ("python client session", lambda: peer(peer_python, "sremote-py", b, args.calls)),
            ]:
                with PinAudit(b, name) as audit:
                    rows.setdefault(name, []).append(fn())
                for why in audit.offenders.values():
                    offenders.setdefault(name, set()).add(why)
                print(f"[{'pinned' if pin else 'unpinned'} rep {rep}] {name}: {rows[name][-1]}", file=sys.stderr)
        getenv = ["call", "bench", "os", "getenv", "HOME"]
        rows["cli: fresh host, bootstrap + first call"] = [cli_wall(binary, b, getenv, 5, fresh_home=True)]
        rows["cli: warm connect + first call"] = [cli_wall(binary, b, getenv, 10)]
        result = {k: {"p50_us": median_of(v, "p50_us"), "calls_per_s": median_of(v, "calls_per_s")}
                  for k, v in rows.items()}
        # The session/floor ratio of each rep on its own (the two ran seconds apart): how far
        # the machine's speed moved between reps shows in their spread.
        result["_paired"] = [s["p50_us"] / f["p50_us"]
                             for s, f in zip(rows["sremote session"], rows["echo floor"])]
        transfers = None
        if not pin and args.transfer_mib:
            runs = [transfer(binary, b, state, args.transfer_mib) for _ in range(args.reps)]
            transfers = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        return result, transfers, offenders
    finally:
        b.stop(binary)


def main():
    ap = argparse.ArgumentParser(description="sremote against the ssh echo floor, execnet and mitogen")
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--transfer-mib", type=int, default=256, help="0: skip the transfer rows")
    ap.add_argument("--sremote", help="the sremote binary (default: build the release one)")
    ap.add_argument("--venv", help="the venv for the peers (kept; default: a throwaway one)")
    ap.add_argument("--no-python-client", dest="python_client", action="store_false",
                    help="do not build the sremote Python package (its rows stay empty)")
    ap.add_argument("--write", action="store_true", help="write the section into BENCHMARKS.md")
    args = ap.parse_args()
    binary = benchlib.sremote_binary(args.sremote)
    state = tempfile.mkdtemp(prefix="sremote-peers-")
    try:
        floor_bin = benchlib.echo_floor_binary(state)
        python = venv(args.venv or os.path.join(state, "venv"), args.python_client)
        results, offenders = {}, {}
        for pin in (False, True):
            key = "pinned" if pin else "unpinned"
            results[key], transfers, offenders[key] = measure_mode(args, binary, floor_bin, python, state, pin)
            if transfers:
                results["transfer"] = transfers
    finally:
        shutil.rmtree(state, ignore_errors=True)
    section = report(results, offenders["pinned"], args)
    print(section)
    if args.write:
        write(section)


# Per-call paths whose p50 cannot be below the echo floor's, and throughputs that cannot be
# above the pipelined floor's: anything else is a measurement error, not a result.
LATENCY_ROWS = ["sremote session", "execnet", "mitogen", "python client session"]
THROUGHPUT_ROWS = ["sremote session x64"]


def floor_errors(r):
    """The rows of one mode that beat the transport they ride on."""
    errors = []
    for name in LATENCY_ROWS:
        if r[name]["p50_us"] < r["echo floor"]["p50_us"]:
            errors.append(f"{name} p50 {r[name]['p50_us']:.1f} µs < echo floor {r['echo floor']['p50_us']:.1f} µs")
    for name in THROUGHPUT_ROWS:
        if r[name]["calls_per_s"] > r["echo floor x64"]["calls_per_s"]:
            errors.append(f"{name} {r[name]['calls_per_s']:.0f} calls/s > echo floor x64 "
                          f"{r['echo floor x64']['calls_per_s']:.0f}/s")
    return errors


def ratio(results, pin, a, b, key):
    r = results[pin]
    return r[a][key] / r[b][key] if r[b][key] else float("nan")


# (label, a, b, key, goal unpinned, goal pinned, floor check): the floor check marks a
# ratio on the wrong side of 1.0 against the floor as a measurement error.
CHECKS = [
    ("session p50 / echo floor p50", "sremote session", "echo floor", "p50_us", "≤ 1.3", "≤ 1.15", "time"),
    ("session p50 / execnet p50", "sremote session", "execnet", "p50_us", "", "≤ 0.45", None),
    ("session x64 calls/s / echo floor x64 calls/s", "sremote session x64", "echo floor x64",
     "calls_per_s", "", "≥ 0.5", "rate"),
    ("session x64 calls/s / execnet calls/s", "sremote session x64", "execnet", "calls_per_s", "≥ 10", "≥ 10", None),
    ("pipe p50 / ssh mux true p50", "sremote pipe", "ssh mux true", "p50_us", "≤ 1.1", "≤ 1.1", None),
    ("session p50 / mitogen p50", "sremote session", "mitogen", "p50_us", "(smaller is better)", "", None),
    ("execnet p50 / echo floor p50", "execnet", "echo floor", "p50_us", "", "", "time"),
    ("mitogen p50 / echo floor p50", "mitogen", "echo floor", "p50_us", "", "", "time"),
    ("python client p50 / session p50", "python client session", "sremote session", "p50_us", "≤ 1.3", "≤ 1.3", None),
    ("python client p50 / execnet p50", "python client session", "execnet", "p50_us", "≤ 0.6", "≤ 0.6", None),
]


def cell(value, floor_check):
    wrong = (floor_check == "time" and value < 1.0) or (floor_check == "rate" and value > 1.0)
    return f"{value:.2f} **(below the floor: measurement error)**" if wrong else f"{value:.2f}"


def report(results, offenders, args):
    lines = [
        BEGIN,
        "# Benchmarks",
        "",
        f"One run of `bench/peers.py --calls {args.calls} --reps {args.reps}` on "
        f"{time.strftime('%Y-%m-%d')}: {benchlib.machine()}, one loopback OpenSSH sshd. Medians "
        f"over {args.reps} repetitions. `x64` = 64 calls (messages) in flight. The echo floor is "
        "64-byte messages through one `ssh host cat`, timed by a compiled client "
        "(`tests/src/bin/echo_floor.rs`). Pinned = every process (client, ssh, ssh master, "
        "sshd, remote side) under `taskset -c 0`, checked while it runs.",
        "",
        "| path | unpinned p50 (µs) | unpinned calls/s | pinned p50 (µs) | pinned calls/s |",
        "|---|---:|---:|---:|---:|",
    ]
    paired = {pin: results[pin].pop("_paired") for pin in ("unpinned", "pinned")}
    for n in results["unpinned"]:
        u, p = results["unpinned"][n], results["pinned"][n]
        lines.append(f"| {n} | {u['p50_us']:.1f} | {u['calls_per_s']:.0f} | {p['p50_us']:.1f} | {p['calls_per_s']:.0f} |")
    lines += ["", "## Ratios against the targets", "",
              "| target | unpinned | goal | pinned | goal |", "|---|---:|---|---:|---|"]
    for label, a, b, key, goal_u, goal_p, floor_check in CHECKS:
        lines.append(f"| {label} | {cell(ratio(results, 'unpinned', a, b, key), floor_check)} | {goal_u} | "
                     f"{cell(ratio(results, 'pinned', a, b, key), floor_check)} | {goal_p} |")
    lines += ["", "Session p50 / echo floor p50 in each repetition (the two measured seconds apart): "
              + "; ".join(f"{pin} " + ", ".join(f"{x:.2f}" for x in paired[pin])
                          for pin in ("unpinned", "pinned")) + "."]
    x64u = results["unpinned"]["sremote session x64"]["calls_per_s"]
    x64p = results["pinned"]["sremote session x64"]["calls_per_s"]
    lines += ["", f"Session with 64 in flight: {x64u:.0f} calls/s unpinned, {x64p:.0f} pinned "
              "(goal ≥ 200,000 pinned)."]
    errors = [f"{pin}: {e}" for pin in ("unpinned", "pinned") for e in floor_errors(results[pin])]
    if errors:
        lines += ["", "**Measurement error**: faster than the transport it rides on, so these "
                  "figures are not results: " + "; ".join(errors) + "."]
        for e in errors:
            print(f"peers.py: MEASUREMENT ERROR: {e}", file=sys.stderr)
    if offenders:
        lines += ["", "**Pinning leak**: processes seen off CPU 0 during pinned measurements: " +
                  "; ".join(f"{row}: {', '.join(sorted(w))}" for row, w in offenders.items()) + "."]
    else:
        lines += ["", "Pinning checked: every process of the run seen during the pinned "
                  "measurements was on CPU 0 only."]
    t = results.get("transfer")
    if t:
        lines += ["", f"## Transfers ({args.transfer_mib} MiB, unpinned, median of {args.reps})", "",
                  "| direction | ssh cat MB/s | sremote MB/s | ratio (goal ≥ 0.95) |", "|---|---:|---:|---:|"]
        for d in ("push", "pull"):
            a, b = t[f"ssh cat {d} MB/s"], t[f"sremote {d} MB/s"]
            lines.append(f"| {d} | {a:.0f} | {b:.0f} | {b / a:.2f} |")
    lines.append(END)
    return "\n".join(lines) + "\n"


def write(section):
    """The peers section opens BENCHMARKS.md; the sections of the other scripts follow
    `KEEP_MARKER` and are kept as they are."""
    path = benchlib.BENCHMARKS
    text = path.read_text() if path.exists() else ""
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + section + text[text.index(END) + len(END) + 1:]
    elif KEEP_MARKER in text:
        text = section + "\n" + text[text.index(KEEP_MARKER):]
    else:
        text = section + "\n" + KEEP_MARKER + "\n" + text
    path.write_text(text)


if __name__ == "__main__":
    main()
