#!/usr/bin/env python3
"""CPU per call, pinned (issue 14, target 1): where a session call's time goes when every
process of the path shares one CPU, against the echo floor on the same path.

One loopback sshd under `taskset -c 0`; the client under `taskset -c 0` too (its ssh and
the remote side inherit the affinity), so the whole path runs on CPU 0 and a call's
latency is the sum of the CPU time its processes spend on it. Two clients, interleaved,
--reps times each:
  * echo floor: the compiled client (tests/src/bin/echo_floor.rs), 64-byte messages through
    one `ssh bench cat`, one in flight;
  * session: `sremote bench bench --mode session --concurrency 1` (the ssh master of a
    first, unmeasured call reused; the endpoint installed).
For every process pinned to CPU 0 that ran during a client (user and system time from
/proc/PID/stat, sampled every 20 ms from CPU 1, so the sampler takes nothing from CPU 0),
the time per call: `ssh` (the client's ssh or the master), `sshd` (the session's sshd),
the client, and the remote side (`cat` or the endpoint). Per call = (a run of 2N calls −
a run of N) / N, N = --calls: start-up, the floor's login (a key exchange) and sremote's
session open cancel out. Tick resolution 1/CLK_TCK s.

usage: bench/cpu_per_call.py [--calls 50000] [--reps 2] [--sremote PATH] [--write]
`--write` replaces the section "CPU per call, pinned" of BENCHMARKS.md. Needs root (sshd)
and two CPUs.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import benchlib

BEGIN = "<!-- cpu-per-call: written by bench/cpu_per_call.py -->"
END = "<!-- cpu-per-call: end -->"
HZ = os.sysconf("SC_CLK_TCK")
# Process names (/proc/PID/stat's comm, 15 bytes at most) by role.
ROLES = {"ssh": "ssh", "sshd": "sshd", "sremote-echo-fl": "client", "sremote": "client",
         "cat": "remote side", "sremote-endpoin": "remote side"}


def snapshot():
    """{(pid, start time): (comm, user ticks, system ticks)} of every process pinned to CPU 0
    alone (the measured path; nothing else on the machine is pinned there)."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            if os.sched_getaffinity(int(d)) != {0}:
                continue
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue
        comm = s[s.index("(") + 1:s.rindex(")")]
        rest = s[s.rindex(")") + 2:].split()
        out[(int(d), int(rest[19]))] = (comm, int(rest[11]), int(rest[12]))
    return out


def cpu_of(cmd, env):
    """Run `cmd` pinned; CPU seconds by role (user, system) and its JSON output."""
    before = snapshot()
    last = dict(before)
    done = threading.Event()

    def sample():
        os.sched_setaffinity(0, {1})
        while not done.is_set():
            last.update(snapshot())
            time.sleep(0.02)

    th = threading.Thread(target=sample)
    th.start()
    out = subprocess.run(benchlib.PIN + cmd, env=env, capture_output=True, text=True)
    done.set()
    th.join()
    last.update(snapshot())
    if out.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed: {out.stderr[-2000:]}")
    roles = {}
    for key, (comm, user, system) in last.items():
        role = ROLES.get(comm)
        b = before.get(key, (comm, 0, 0))
        if role:
            u, s = roles.get(role, (0.0, 0.0))
            roles[role] = (u + (user - b[1]) / HZ, s + (system - b[2]) / HZ)
    return roles, json.loads(out.stdout)


def measure(client, env, calls):
    """CPU µs per call by role: a run of 2N calls minus a run of N, over N (start-up, the
    floor's login, sremote's session open cancel out); the p50 of the 2N run."""
    (one, _), (two, out) = cpu_of(client(calls), env), cpu_of(client(2 * calls), env)
    per = {role: tuple((two[role][i] - one.get(role, (0, 0))[i]) / calls * 1e6 for i in (0, 1))
           for role in two}
    return per, out


def main():
    ap = argparse.ArgumentParser(description="CPU per call, every process on one CPU")
    ap.add_argument("--calls", type=int, default=50000)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--sremote", help="the sremote binary (default: build the release one)")
    ap.add_argument("--write", action="store_true", help="write the section into BENCHMARKS.md")
    args = ap.parse_args()
    if (os.cpu_count() or 1) < 2:
        raise SystemExit("two CPUs are needed: the path on CPU 0, the sampler on CPU 1")
    binary = benchlib.sremote_binary(args.sremote)
    state = tempfile.mkdtemp(prefix="srcpu-", dir="/tmp")
    keydir = benchlib.keys(os.path.join(state, "keys"))
    sshd = benchlib.Sshd(state, keydir, pin=True).start().wait_ready()
    config = os.path.join(state, "ssh_config")
    with open(config, "w") as f:
        f.write(benchlib.ssh_host("bench", sshd.port, keydir))
    env = dict(os.environ, SREMOTE_CONTROL_DIR=os.path.join(state, "ctl"))
    env.pop("SREMOTE_CONFIG", None)
    floor = benchlib.echo_floor_binary(state)
    clients = {
        "echo floor": lambda n: [floor, "--size", "64", "--calls", str(n), "--warmup", "100",
                                 "--inflight", "1", "--", "ssh", "-F", config, "bench", "cat"],
        "sremote session": lambda n: [binary, "--ssh-config", config, "bench", "bench", "--mode",
                                      "session", "--calls", str(n), "--concurrency", "1", "--json"],
    }
    runs = {name: [] for name in clients}
    try:
        subprocess.run(benchlib.PIN + [binary, "--ssh-config", config, "call", "bench", "os",
                                       "getenv", "HOME"], env=env, check=True, capture_output=True)
        for rep in range(args.reps):
            for name, client in clients.items():
                progress(f"{name}, rep {rep + 1} of {args.reps}")
                runs[name].append(measure(client, env, args.calls))
    finally:
        subprocess.run([binary, "disconnect", "--all"], env=env, capture_output=True)
        sshd.stop()
    benchlib.publish(report(args, runs), args.write, BEGIN, END)


def median_roles(rs):
    roles = sorted({r for roles, _ in rs for r in roles})
    return {r: tuple(statistics.median(roles.get(r, (0, 0))[i] for roles, _ in rs) for i in (0, 1))
            for r in roles}


def report(args, runs):
    floor, sess = median_roles(runs["echo floor"]), median_roles(runs["sremote session"])
    p50 = {name: statistics.median(out["p50_us"] for _, out in rs) for name, rs in runs.items()}
    lines = [
        BEGIN,
        "## CPU per call, pinned (bench/cpu_per_call.py)",
        "",
        f"`bench/cpu_per_call.py --calls {args.calls} --reps {args.reps}` on "
        f"{time.strftime('%Y-%m-%d')}: {benchlib.machine()}; a release build. Every process of "
        "the path (client, ssh, sshd, remote side) on CPU 0, so a call's latency is the CPU "
        "its processes spend on it. CPU time per call from /proc/PID/stat (user + system), "
        f"medians of {args.reps} interleaved reps, each a run of {2 * args.calls} calls minus a "
        f"run of {args.calls} (start-up and login cancel out), one in flight; p50 of the longer run.",
        "",
        "| process | echo floor user | system | sremote session user | system |",
        "|---|---:|---:|---:|---:|",
    ]
    tot_f = tot_s = 0.0
    for role in ("client", "ssh", "sshd", "remote side"):
        fu, fs = floor.get(role, (0, 0))
        su, ss = sess.get(role, (0, 0))
        tot_f += fu + fs
        tot_s += su + ss
        lines.append(f"| {role} | {fu:.1f} µs | {fs:.1f} µs | {su:.1f} µs | {ss:.1f} µs |")
    lines += [
        f"| **all** | {tot_f:.1f} µs | | {tot_s:.1f} µs | |",
        f"| p50 latency | {p50['echo floor']:.1f} µs | | {p50['sremote session']:.1f} µs | "
        f"ratio {p50['sremote session'] / p50['echo floor']:.2f} |",
    ]
    ours = sum(sess.get(r, (0, 0))[0] + sess.get(r, (0, 0))[1] for r in ("client", "remote side"))
    theirs = sum(floor.get(r, (0, 0))[0] + floor.get(r, (0, 0))[1] for r in ("client", "remote side"))
    budget = 1.15 * p50["echo floor"] - (p50["echo floor"] - theirs)
    lines += [
        "",
        f"sremote's own processes (client and endpoint) take {ours:.1f} µs per call, the floor's "
        f"(client and `cat`) {theirs:.1f} µs. At ≤ 1.15 × the floor's p50 the client and the "
        f"endpoint together would have {budget:.1f} µs.",
        END,
    ]
    return "\n".join(lines) + "\n"


def progress(msg):
    print(f"[cpu-per-call {time.strftime('%H:%M:%S')}] {msg}", flush=True, file=sys.stderr)


if __name__ == "__main__":
    main()
