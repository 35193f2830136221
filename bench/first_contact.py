#!/usr/bin/env python3
"""First contact (issue 14, target 3): a host to its first result, whole `sremote` process.

Over one throwaway loopback sshd (own keys, own HOME), with the client's own HOME and
control dir, every run from no ssh login at all:

Whole processes, wall time, unperturbed (--reps each, medians; the cases interleaved, one
run of each in turn per rep):
  * fresh host  `sremote call bench os getenv HOME`, no endpoint on the host (wiped before
                each run): login, bootstrap and first call (goal ≤ 250 ms);
  * installed   the same with the endpoint installed: connect + first call
                (goal ≤ 1.05 × `ssh bench true`);
  * `ssh bench true` on a new connection (no ControlMaster), the ratio's peer;
  * with --venv DIR (a venv holding execnet and mitogen, e.g. bench/peers.py --venv DIR):
    execnet and mitogen from a new Python process to `os.getenv("HOME")` on the host;
  * with --against PATH: fresh and installed with another `sremote` build, interleaved
    with the others (an A/B of a change).
With each: the client's CPU time per run (user + system of the process and the children it
waited for — the ssh login runs in the `ssh` that sremote waits for, before the master
forks away): what a client logging in to many hosts at once spends per host.
Every ssh here (sremote's master, plain ssh, the peers') uses the same key exchange and
host key algorithm: the ones OpenSSH negotiates by default here (read from `ssh -v`), or
--kex, written into the ssh config for all of them.

Phases (--trace-reps traced runs each, medians): `strace -f --seccomp-bpf -ttt -e
trace=execve,connect` on the client (sremote and its ssh) and on sshd (every remote
program), one clock. Client side: process start to the ssh master's spawn (config via
`ssh -G`), ssh start + TCP connect (the master's spawn to its `connect`), key exchange +
authentication (to the master going to the background, which ssh -f does once logged in). Host side: every remote command (each
starts as `<login shell> -c "exec /bin/sh -c …"`), from its start to its exit, named by
what it runs: the session attempt that finds no endpoint, probe (`uname`), push (`cat` to
a `.part`), verify + install (`sha256sum`, `mv`), session open (up to the endpoint's
`exec`), then first call + close (endpoint start to sremote's exit). "gaps" is the rest:
channel opens and client work between remote commands. Traced runs are slower than the
untraced walls above; the phases show where the time goes, the walls are the figures.

usage: bench/first_contact.py [--reps 10] [--trace-reps 3] [--kex NAME] [--venv DIR]
                              [--sremote PATH] [--against PATH] [--write]
`--write` replaces the section "First contact" of BENCHMARKS.md. Needs root (sshd) and
strace; a release `sremote` (built first unless --sremote).
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import benchlib

BEGIN = "<!-- first-contact: written by bench/first_contact.py -->"
END = "<!-- first-contact: end -->"
STRACE = ["strace", "-f", "--seccomp-bpf", "-ttt", "-e", "trace=execve,connect", "-s", "4096"]
LINE = re.compile(r"^(\d+)\s+(\d+\.\d+)\s+(.*)$")

PEER_SCRIPT = r"""
import os, sys
kind, config = sys.argv[1], sys.argv[2]
if kind == "execnet":
    import execnet
    gw = execnet.makegateway(f"ssh=-F {config} bench//python=python3")
    ch = gw.remote_exec("import os; channel.send(os.getenv('HOME'))")
    print(ch.receive())
    gw.exit()
else:
    import mitogen.master
    broker = mitogen.master.Broker(); router = mitogen.master.Router(broker)
    try:
        ctx = router.ssh(hostname="bench", ssh_args=["-F", config], python_path="python3")
        print(ctx.call(os.getenv, "HOME"))
    finally:
        broker.shutdown(); broker.join()
"""


class Host:
    """The sshd, ssh config (with one key exchange for everyone) and the client's env."""

    def __init__(self, state, kex):
        self.state = state
        keydir = benchlib.keys(os.path.join(state, "keys"))
        self.keydir = keydir
        self.sshd = benchlib.Sshd(state, keydir)
        self.config = os.path.join(state, "ssh_config")
        self.env = dict(os.environ, HOME=os.path.join(state, "clienthome"),
                        SREMOTE_CONTROL_DIR=os.path.join(state, "ctl"))
        for var in ("SREMOTE_CONFIG", "SREMOTE_LOG", "SREMOTE_NO_PERSIST"):
            self.env.pop(var, None)
        os.makedirs(self.env["HOME"], exist_ok=True)
        self.kex = kex

    def start(self, traced=False):
        cmd = ["/usr/sbin/sshd", "-D", "-f", self.sshd.config_file, "-E", self.sshd.log]
        self.trace = os.path.join(self.state, "sshd.strace") if traced else None
        if traced:
            cmd = STRACE + ["-o", self.trace] + cmd
        self.sshd.proc = subprocess.Popen(cmd)
        self.sshd.wait_ready()
        if self.kex is None:
            self.write_config("")
            self.kex = negotiated(self.config)
        self.write_config(f"  KexAlgorithms {self.kex[0]}\n  HostKeyAlgorithms {self.kex[1]}\n")

    def write_config(self, extra):
        with open(self.config, "w") as f:
            f.write(benchlib.ssh_host("bench", self.sshd.port, self.keydir, extra))

    def stop(self, binary):
        self.logout(binary)
        # Under strace, sshd is strace's child: stop sshd (its PidFile), then strace ends.
        try:
            with open(os.path.join(self.state, "sshd.pid")) as f:
                os.kill(int(f.read().strip()), 15)
        except (OSError, ValueError):
            self.sshd.proc.terminate()
        self.sshd.proc.wait(timeout=10)

    def logout(self, binary):
        subprocess.run([binary, "disconnect", "--all"], env=self.env, capture_output=True)

    def wipe(self):
        shutil.rmtree(os.path.join(self.sshd.home, ".sremote"), ignore_errors=True)


def negotiated(config):
    """The key exchange and host key algorithm OpenSSH picks here by default."""
    out = subprocess.run(["ssh", "-v", "-F", config, "-o", "LogLevel=DEBUG1", "bench", "true"],
                         capture_output=True, text=True)
    kex = re.search(r"kex: algorithm: (\S+)", out.stderr)
    hostkey = re.search(r"kex: host key algorithm: (\S+)", out.stderr)
    if out.returncode != 0 or not kex or not hostkey:
        raise SystemExit(f"cannot read the negotiated key exchange from `ssh -v`: {out.stderr[-500:]}")
    return kex.group(1), hostkey.group(1)


def wall(cmd, env, reps, before=None, cpu=None):
    """Median wall (ms) of `cmd`, `before()` untimed before each run. With a list `cpu`,
    each run's CPU time (ms, user + system, the process and the children it waited for:
    an ssh master's login runs in the `ssh` it waits for, before that forks away) is
    appended to it."""
    times = []
    for _ in range(reps):
        if before:
            before()
        t = time.perf_counter()
        p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        err = p.stderr.read()
        _, status, usage = os.wait4(p.pid, 0)
        times.append((time.perf_counter() - t) * 1000)
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode != 0:
            raise SystemExit(f"{cmd[0]} failed ({p.returncode}): {err.decode(errors='replace')[-1000:]}")
        if cpu is not None:
            cpu.append((usage.ru_utime + usage.ru_stime) * 1000)
    return statistics.median(times)


def parse_strace(path):
    """(pid, time, text) of every line of an strace -f -ttt log."""
    out = []
    with open(path) as f:
        for line in f:
            m = LINE.match(line)
            if m:
                out.append((int(m.group(1)), float(m.group(2)), m.group(3)))
    return out


def client_phases(lines):
    """Times from the client's trace: sremote start and exit, the ssh master's spawn, its
    TCP connect and its going to the background (logged in)."""
    t = {}
    sremote_pid = None
    master = None
    for pid, ts, text in lines:
        if sremote_pid is None and text.startswith("execve(") and "sremote" in text:
            sremote_pid, t["start"] = pid, ts
        elif text.startswith("execve(") and '"-M"' in text and master is None:
            master, t["ssh spawn"] = pid, ts
        elif pid == master and text.startswith("connect(") and "AF_INET" in text:
            t.setdefault("tcp connect", ts)
        elif pid == master and text.startswith("+++ exited"):
            t.setdefault("logged in", ts)
        elif pid == sremote_pid and text.startswith("+++ exited"):
            t["exit"] = ts
    return t


def remote_commands(lines):
    """The remote commands in the host's trace: (name, start, end, endpoint exec time)."""
    starts = {}
    for pid, ts, text in lines:
        if text.startswith("execve(") and '"-c", "exec /bin/sh -c ' in text and pid not in starts:
            starts[pid] = ts
    commands = []
    for pid, start in starts.items():
        end = next((ts for p, ts, text in lines if p == pid and text.startswith("+++ ")), None)
        code = next((text for p, ts, text in lines if p == pid and text.startswith("+++ ")), "")
        window = [(p, ts, text) for p, ts, text in lines
                  if start <= ts <= (end or float("inf")) and text.startswith("execve(")]
        serve = next((ts for p, ts, text in window if p == pid and text.endswith("= 0")
                      and "sremote-endpoint" in program(text)), None)
        commands.append((classify(window, code, serve), start, end, serve))
    return sorted(commands, key=lambda c: c[1])


def program(text):
    """The path an `execve("PATH", …)` line runs."""
    m = re.match(r'execve\("([^"]*)"', text)
    return m.group(1) if m else ""


def classify(window, code, serve):
    text = "\n".join(t for _, _, t in window)
    if serve is not None:
        return "session open"
    if '["uname"' in text:
        return "probe"
    if '["sha256sum"' in text:
        return "verify + install"
    if '["cat"]' in text and ".part" in text:
        return "push"
    if "sremote_untrusted" in text and "exited with 0" not in code:
        return "session attempt (no endpoint)"
    return "other remote command"


def phases(client_trace, host_trace):
    """Phase name → ms, for one traced run."""
    c = client_phases(parse_strace(client_trace))
    cmds = remote_commands(parse_strace(host_trace))
    need = ("start", "ssh spawn", "logged in", "exit")
    if any(k not in c for k in need):
        raise SystemExit(f"the client trace {client_trace} lacks {[k for k in need if k not in c]}")
    tcp = c.get("tcp connect", c["ssh spawn"])
    out = {"process start + ssh config (`ssh -G`)": c["ssh spawn"] - c["start"],
           "ssh start + TCP connect": tcp - c["ssh spawn"],
           "ssh key exchange + auth": c["logged in"] - tcp}
    busy = 0.0
    for name, start, end, serve in cmds:
        end = end if end is not None else c["exit"]
        if name == "session open":
            out["session open"] = out.get("session open", 0) + (serve - start)
            out["first call + close"] = c["exit"] - serve
            busy += c["exit"] - start
        else:
            out[name] = out.get(name, 0) + (end - start)
            busy += end - start
    total = c["exit"] - c["start"]
    out["gaps (channel opens, client work)"] = total - busy - (c["logged in"] - c["start"])
    out["total (traced)"] = total
    return {k: v * 1000 for k, v in out.items()}


def traced_call(binary, host, trace):
    """`sremote call` under strace -f. The persisted ssh master it leaves is strace's
    tracee too, and strace waits for it: strace is stopped (it detaches) once sremote's
    exit is in the trace."""
    p = subprocess.Popen(STRACE + ["-o", trace, binary, "--ssh-config", host.config, "call",
                                   "bench", "os", "getenv", "HOME"],
                         env=host.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        lines = parse_strace(trace) if os.path.exists(trace) else []
        first = lines[0][0] if lines else None
        done = [text for pid, _, text in lines if pid == first and text.startswith("+++ exited")]
        if done:
            break
        if p.poll() is not None:
            break
        time.sleep(0.05)
    else:
        p.kill()
        raise SystemExit(f"the traced sremote call did not end within 60 s; see {trace}")
    if p.poll() is None:
        # SIGKILL: the kernel detaches the tracees (strace's SIGTERM handling waits on the
        # master). The master then only relays over its socket; it neither execs nor
        # connects, the two calls the seccomp filter still reports.
        p.kill()
    p.wait(timeout=10)
    if not done or done[0] != "+++ exited with 0 +++":
        raise SystemExit(f"the traced sremote call failed ({done}): {p.stderr.read().decode()[-500:]}")


def traced_runs(binary, host, reps, fresh):
    """Median phases over `reps` traced runs (fresh host or endpoint installed)."""
    runs = []
    for i in range(reps):
        host.logout(binary)
        if fresh:
            host.wipe()
        else:
            # Installed: one untraced bootstrap, then log out so the run logs in again.
            subprocess.run([binary, "--ssh-config", host.config, "bootstrap", "bench"],
                           env=host.env, check=True, capture_output=True)
            host.logout(binary)
        mark = os.path.getsize(host.trace)
        client_trace = os.path.join(host.state, f"client-{int(fresh)}-{i}.strace")
        traced_call(binary, host, client_trace)
        time.sleep(0.1)  # the host side's last lines
        host_trace = os.path.join(host.state, f"host-{int(fresh)}-{i}.strace")
        with open(host.trace) as src, open(host_trace, "w") as dst:
            src.seek(mark)
            dst.write(src.read())
        runs.append(phases(client_trace, host_trace))
    names = [n for n in runs[0]]
    for r in runs[1:]:
        names += [n for n in r if n not in names]
    return {n: statistics.median(r.get(n, 0.0) for r in runs) for n in names}


def peer_wall(venv, kind, host, reps):
    python = os.path.join(venv, "bin", "python")
    return wall([python, "-c", PEER_SCRIPT, kind, host.config], host.env, reps)


def progress(msg):
    print(f"[first-contact {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def main():
    ap = argparse.ArgumentParser(description="a host to its first result, and its phases")
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--trace-reps", type=int, default=3)
    ap.add_argument("--kex", help="KEX,HOSTKEY (default: what OpenSSH negotiates here)")
    ap.add_argument("--venv", help="a venv with execnet and mitogen: their first contact too")
    ap.add_argument("--sremote", help="the sremote binary (default: build the release one)")
    ap.add_argument("--against", help="another sremote binary measured in the same runs (A/B)")
    ap.add_argument("--write", action="store_true", help="write the section into BENCHMARKS.md")
    args = ap.parse_args()
    if shutil.which("strace") is None:
        raise SystemExit("strace is needed for the phases (apt-get install strace)")
    binary = benchlib.sremote_binary(args.sremote)
    kex = tuple(args.kex.split(",", 1)) if args.kex else None
    if kex and len(kex) != 2:
        ap.error("--kex is KEX,HOSTKEY, e.g. curve25519-sha256,ssh-ed25519")
    state = tempfile.mkdtemp(prefix="srfc-", dir="/tmp")
    results = {}
    try:
        host = Host(os.path.join(state, "plain"), kex)
        host.start()
        try:
            results["walls"] = measure_walls(args, binary, host)
        finally:
            host.stop(binary)
        progress("traced runs")
        traced = Host(os.path.join(state, "traced"), host.kex)
        traced.start(traced=True)
        try:
            results["fresh"] = traced_runs(binary, traced, args.trace_reps, fresh=True)
            results["installed"] = traced_runs(binary, traced, args.trace_reps, fresh=False)
        finally:
            traced.stop(binary)
        results["kex"] = host.kex
    finally:
        shutil.rmtree(state, ignore_errors=True)
    benchlib.publish(report(args, results), args.write, BEGIN, END)


def measure_walls(args, binary, host):
    """The walls, interleaved: each rep runs every case once in turn, so a slow spell of
    this noisy VM hits all of them alike (a median of one case against another is then a
    ratio taken under the same conditions)."""
    def call(b):
        return [b, "--ssh-config", host.config, "call", "bench", "os", "getenv", "HOME"]

    def fresh(b):
        return lambda: (host.logout(b), host.wipe())

    cases = [("fresh", call(binary), fresh(binary)),
             ("installed", call(binary), lambda: host.logout(binary)),
             ("ssh true", ["ssh", "-F", host.config, "bench", "true"], None)]
    if args.against:
        cases += [("fresh (against)", call(args.against), fresh(args.against)),
                  ("installed (against)", call(args.against), lambda: host.logout(args.against))]
    progress(f"key exchange {host.kex[0]}, host key {host.kex[1]}; "
             f"{', '.join(c[0] for c in cases)}, interleaved")
    times = {name: [] for name, _, _ in cases}
    cpu = {name: [] for name, _, _ in cases}
    for _ in range(args.reps):
        for name, cmd, before in cases:
            times[name].append(wall(cmd, host.env, 1, before=before, cpu=cpu[name]))
    walls = {name: statistics.median(t) for name, t in times.items()}
    walls["cpu"] = {name: statistics.median(c) for name, c in cpu.items()}
    if args.venv:
        for kind in ("execnet", "mitogen"):
            progress(kind)
            walls[kind] = peer_wall(args.venv, kind, host, args.reps)
    return walls


def report(args, results):
    w = results["walls"]
    kex, hostkey = results["kex"]
    lines = [
        BEGIN,
        "## First contact (bench/first_contact.py)",
        "",
        f"`bench/first_contact.py --reps {args.reps} --trace-reps {args.trace_reps}` on "
        f"{time.strftime('%Y-%m-%d')}: {benchlib.machine()}; a release build, one loopback "
        f"sshd, every run from no ssh login. Every ssh uses key exchange `{kex}` and host key "
        f"`{hostkey}`. Whole processes, medians of {args.reps}.",
        "",
        "| from | to | wall | ratio | goal |",
        "|---|---|---:|---:|---|",
        f"| fresh host (no endpoint) | first result of `sremote call` | {w['fresh']:.0f} ms | | ≤ 250 ms |",
        f"| endpoint installed | first result of `sremote call` | {w['installed']:.0f} ms | "
        f"{w['installed'] / w['ssh true']:.2f} × ssh true | ≤ 1.05 × |",
        f"| new connection | `ssh bench true` | {w['ssh true']:.0f} ms | | |",
    ]
    for case in ("fresh", "installed"):
        other = w.get(f"{case} (against)")
        if other:
            lines.append(f"| {case}, the `--against` build | first result of `sremote call` | "
                         f"{other:.0f} ms | {w[case] / other:.2f} (this / against) | |")
    for kind in ("execnet", "mitogen"):
        if kind in w:
            lines.append(f"| fresh host, new Python process | first result of {kind} | {w[kind]:.0f} ms | "
                         f"{w['fresh'] / w[kind]:.2f} (sremote / {kind}) | |")
    cpu = w["cpu"]
    lines += [
        "",
        f"Client CPU per run (user + system of `sremote` or `ssh` and the children it waited "
        f"for, which include the ssh login before its master forks away): fresh "
        f"{cpu['fresh']:.0f} ms, installed {cpu['installed']:.0f} ms, `ssh bench true` "
        f"{cpu['ssh true']:.0f} ms. A client logging in to many hosts at once spends that much "
        "of its own CPU per host.",
    ]
    fresh, inst = results["fresh"], results["installed"]
    names = list(fresh) + [n for n in inst if n not in fresh]
    names.sort(key=lambda n: n.startswith("total"))
    lines += [
        "",
        f"Phases (medians of {args.trace_reps} runs under strace, client and sshd, so slower "
        "than the walls above):",
        "",
        "| phase | fresh host | endpoint installed |",
        "|---|---:|---:|",
    ]
    for n in names:
        cell = lambda r: f"{r[n]:.1f} ms" if n in r else "–"  # noqa: E731
        lines.append(f"| {n} | {cell(fresh)} | {cell(inst)} |")
    lines.append(END)
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
