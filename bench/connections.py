#!/usr/bin/env python3
"""One login for many commands (issue 15): whole `sremote` processes over a persisted
ssh master, against a throwaway loopback sshd, beside plain OpenSSH.

Measures (wall time of whole processes, stdout to /dev/null):

* `sremote call bench os getenv HOME` after the first (the persisted master reused);
* the same with `--no-persist` (a new login every time, as before issue 15);
* `ssh -S <mux> bench true` (an OpenSSH ControlMaster) and `ssh bench true` (new login);
* 40 `sremote call` processes started at once against sshd's stock
  `MaxStartups 10:30:100`, from no master: failures and logins (sshd's `Accepted` lines).

Usage: bench/connections.py [--reps 30] [--sremote PATH] [--write]   (`--write` replaces the section
"One login for many commands" of BENCHMARKS.md). Needs root (sshd) and a release build of
`sremote` (made first).
"""

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time

import benchlib

BEGIN = "<!-- connections: written by bench/connections.py -->"
END = "<!-- connections: end -->"


class Sshd(benchlib.Sshd):
    """sshd on loopback with its own keys and HOME, sshd's stock `MaxStartups 10:30:100`
    and `MaxSessions 10`; ssh aliases `bench` (a new login each time) and `mux` (an OpenSSH
    ControlMaster)."""

    def __init__(self, state):
        keydir = benchlib.keys(state)
        super().__init__(state, keydir, max_startups="10:30:100", max_sessions=10)
        self.start().wait_ready()
        self.config = os.path.join(state, "ssh_config")
        with open(self.config, "w") as f:
            f.write(benchlib.ssh_host("bench", self.port, keydir))
            f.write(benchlib.ssh_host("mux", self.port, keydir,
                                      f"  ControlMaster auto\n  ControlPath {state}/mux\n"
                                      "  ControlPersist 600\n"))

    def stop(self):
        subprocess.run(["ssh", "-F", self.config, "-O", "exit", "mux"], capture_output=True)
        super().stop()


def wall(cmd, env, reps):
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.9) - 1]


def concurrent(cmd, env, n):
    t = time.perf_counter()
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for _ in range(n)]
    failed = sum(1 for p in procs if p.wait() != 0)
    return failed, (time.perf_counter() - t) * 1000


def verdict(rows):
    """The sentence under the table: the warm call against its goal and against `ssh -S`."""
    warm = next(p50 for name, p50, _ in rows if "persisted" in name)
    mux = next(p50 for name, p50, _ in rows if name.startswith("`ssh -S"))
    met = "met" if warm <= 15 else "not met"
    return (f"The goal of ≤ 15 ms for a warm call is {met}: {warm:.1f} ms, "
            f"{warm / mux:.2f}× `ssh -S mux true` ({mux:.1f} ms) in the same run.")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--sremote", help="the sremote binary (default: build the release one)")
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    binary = benchlib.sremote_binary(args.sremote)
    state = tempfile.mkdtemp(prefix="srbc-", dir="/tmp")
    sshd = Sshd(state)
    try:
        run(args, binary, state, sshd)
    finally:
        sshd.stop()
        shutil.rmtree(state, ignore_errors=True)


def run(args, binary, state, sshd):
    env = dict(os.environ, HOME=os.path.join(state, "clienthome"), SREMOTE_CONTROL_DIR=os.path.join(state, "ctl"))
    os.makedirs(env["HOME"], exist_ok=True)
    env.pop("SREMOTE_CONFIG", None)
    call = [binary, "--ssh-config", sshd.config, "call", "bench", "os", "getenv", "HOME"]
    rows = []
    try:
        logins_before = sshd.logins()
        t = time.perf_counter()
        subprocess.run(call, env=env, check=True, stdout=subprocess.DEVNULL)
        first = (time.perf_counter() - t) * 1000
        rows.append(("`sremote call bench os getenv HOME`, first (login + bootstrap)", first, None))
        rows.append(("`sremote call …` after the first (persisted master)",
                     *wall(call, env, args.reps)))
        logins_warm = sshd.logins() - logins_before
        no_persist = [binary, "--no-persist"] + call[1:]
        rows.append(("`sremote --no-persist call …` (a new login each time)",
                     *wall(no_persist, env, max(5, args.reps // 3))))
        subprocess.run(["ssh", "-F", sshd.config, "mux", "true"], check=True)
        rows.append(("`ssh -S mux bench true` (OpenSSH ControlMaster)",
                     *wall(["ssh", "-F", sshd.config, "-S", os.path.join(state, "mux"), "mux", "true"],
                           env, args.reps)))
        rows.append(("`ssh bench true` (a new login each time)",
                     *wall(["ssh", "-F", sshd.config, "bench", "true"], env, max(5, args.reps // 3))))
        subprocess.run([binary, "disconnect", "--all"], env=env, check=True, capture_output=True)
        before = sshd.logins()
        failed, took = concurrent(call, env, 40)
        logins_40 = sshd.logins() - before
        failed_np, _ = concurrent(no_persist, env, 40)
    finally:
        subprocess.run([binary, "disconnect", "--all"], env=env, capture_output=True)
    host = benchlib.machine()
    lines = [
        BEGIN,
        "## One login for many commands (bench/connections.py)",
        "",
        f"`bench/connections.py --reps {args.reps}` on {time.strftime('%Y-%m-%d')}: {host}; a release",
        "build, one loopback sshd with the stock `MaxStartups 10:30:100`. Whole processes,",
        "stdout to /dev/null; median and p90 of the runs. A warm `sremote call` is one remote",
        "program over the master: `sh` checks the sremote dir (builtins and one `stat`) and",
        "`exec`s the endpoint session; load on the 2 CPUs shows in every row (compare with",
        "`ssh -S`, measured in the same run).",
        "",
        "| command | p50 | p90 | goal |",
        "|---|---:|---:|---|",
    ]
    for name, p50, p90 in rows:
        goal = "≤ 15 ms" if "persisted" in name else ""
        p90s = f"{p90:.1f} ms" if p90 is not None else ""
        lines.append(f"| {name} | {p50:.1f} ms | {p90s} | {goal} |")
    lines += [
        "",
        f"Logins for the first call and {args.reps} more: {logins_warm}. 40 `sremote call` processes",
        f"started at once, no master yet: {40 - failed} of 40 succeeded with {logins_40} login(s),",
        f"in {took:.0f} ms; with `--no-persist` (each its own login, as before): {40 - failed_np}",
        "of 40 succeeded.",
        "",
        verdict(rows),
        END,
    ]
    benchlib.publish("\n".join(lines) + "\n", args.write, BEGIN, END)


if __name__ == "__main__":
    main()
