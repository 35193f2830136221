#!/usr/bin/env python3
"""One login for many commands (issue 15): whole `sremote` processes over a persisted
ssh master, against a throwaway loopback sshd, beside plain OpenSSH.

Measures (wall time of whole processes, stdout to /dev/null):

* `sremote call bench os getenv HOME` after the first (the persisted master reused);
* the same with `--no-persist` (a new login every time, as before issue 15);
* `ssh -S <mux> bench true` (an OpenSSH ControlMaster) and `ssh bench true` (new login);
* 40 `sremote call` processes started at once against sshd's stock
  `MaxStartups 10:30:100`, from no master: failures and logins (sshd's `Accepted` lines).

Usage: bench/connections.py [--reps 30] [--write]   (`--write` replaces the section
"One login for many commands" of BENCHMARKS.md). Needs root (sshd) and a release build of
`sremote` (made first).
"""

import argparse
import os
import platform
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEGIN = "<!-- connections: written by bench/connections.py -->"
END = "<!-- connections: end -->"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sshd:
    """sshd on loopback with its own keys and HOME, stock MaxStartups."""

    def __init__(self, state):
        self.state = state
        self.port = free_port()
        self.home = os.path.join(state, "home")
        os.makedirs(self.home, exist_ok=True)
        for key in ("host", "client"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                            os.path.join(state, key)], check=True)
        shutil.copy(os.path.join(state, "client.pub"), os.path.join(state, "authorized_keys"))
        os.makedirs("/run/sshd", exist_ok=True)
        self.log = os.path.join(state, "sshd.log")
        with open(os.path.join(state, "sshd_config"), "w") as f:
            f.write(f"""ListenAddress 127.0.0.1
Port {self.port}
HostKey {state}/host
PidFile {state}/sshd.pid
AuthorizedKeysFile {state}/authorized_keys
StrictModes no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
MaxStartups 10:30:100
SetEnv HOME={self.home}
""")
        self.config = os.path.join(state, "ssh_config")
        common = f"""  HostName 127.0.0.1
  Port {self.port}
  User root
  IdentityFile {state}/client
  IdentitiesOnly yes
  StrictHostKeyChecking accept-new
  UserKnownHostsFile {state}/known_hosts
  LogLevel ERROR
"""
        with open(self.config, "w") as f:
            f.write(f"Host bench\n{common}Host mux\n{common}  ControlMaster auto\n"
                    f"  ControlPath {state}/mux\n  ControlPersist 600\n")
        self.proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-f",
                                      os.path.join(state, "sshd_config"), "-E", self.log])
        for _ in range(100):
            if subprocess.run(["ssh", "-F", self.config, "bench", "true"],
                              capture_output=True).returncode == 0:
                return
            time.sleep(0.05)
        raise SystemExit("sshd did not come up; see " + self.log)

    def logins(self):
        with open(self.log) as f:
            return f.read().count("Accepted ")

    def stop(self):
        subprocess.run(["ssh", "-F", self.config, "-O", "exit", "mux"], capture_output=True)
        self.proc.terminate()
        self.proc.wait(timeout=10)


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
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "sremote-cli"], cwd=ROOT, check=True)
    binary = str(ROOT / "target/release/sremote")
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
    host = f"{platform.node()}, {os.cpu_count()} CPUs, {platform.platform()}"
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
    section = "\n".join(lines) + "\n"
    print(section)
    if args.write:
        path = ROOT / "BENCHMARKS.md"
        text = path.read_text()
        if BEGIN in text and END in text:
            text = text[: text.index(BEGIN)] + section + text[text.index(END) + len(END) + 1:]
        else:
            text = text.rstrip("\n") + "\n\n" + section
        path.write_text(text)


if __name__ == "__main__":
    main()
