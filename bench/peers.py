#!/usr/bin/env python3
"""Peer benchmark: sremote against an ssh echo floor, execnet and mitogen, in one run.

Starts its own throwaway sshd on loopback (own keys, clean HOME), then measures, over that
one sshd:
  * echo floor   one byte through a persistent `ssh host cat` (the transport's lower bound)
  * ssh mux true `ssh -S <master> host true` (the cost of one exec over a ControlMaster)
  * sremote      `sremote bench` in session, pipe and file mode; session with 64 in flight
  * execnet      os.getenv("HOME") through a channel to a remote interpreter
  * mitogen      context.call(os.getenv, "HOME")
  * python       the sremote Python package (crates/sremote-py, release wheel):
                 c.call("os", "getenv", "HOME") in session mode
each unpinned and with sshd and client pinned to CPU 0 (`taskset -c 0`), several repetitions,
medians. Writes BENCHMARKS.md (table + ratios against the targets) and prints it.

usage: bench/peers.py [--calls N] [--reps R] [--out BENCHMARKS.md] [--sremote PATH]
Needs root (sshd), openssh-server, python3-venv; installs execnet, mitogen and maturin from
PyPI into a venv under the state dir, and builds the sremote Python package into it.
"""
import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sshd:
    def __init__(self, state, pin):
        self.state = state
        self.port = free_port()
        self.pin = pin
        os.makedirs(state, exist_ok=True)
        self.home = os.path.join(state, "home")
        os.makedirs(self.home, exist_ok=True)
        for key in ("host", "client"):
            path = os.path.join(state, key)
            if not os.path.exists(path):
                subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", path], check=True)
        shutil.copy(os.path.join(state, "client.pub"), os.path.join(state, "authorized_keys"))
        os.makedirs("/run/sshd", exist_ok=True)
        self.config = os.path.join(state, "ssh_config")
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
MaxSessions 256
MaxStartups 256:30:512
Subsystem sftp internal-sftp
SetEnv HOME={self.home}
""")
        with open(self.config, "w") as f:
            f.write(f"""Host bench
  HostName 127.0.0.1
  Port {self.port}
  User root
  IdentityFile {state}/client
  IdentitiesOnly yes
  StrictHostKeyChecking accept-new
  UserKnownHostsFile {state}/known_hosts
  LogLevel ERROR
  ControlMaster auto
  ControlPath {state}/mux-%C
  ControlPersist 600
""")
        cmd = ["/usr/sbin/sshd", "-D", "-f", os.path.join(state, "sshd_config"), "-E", os.path.join(state, "sshd.log")]
        if pin:
            cmd = ["taskset", "-c", "0"] + cmd
        self.proc = subprocess.Popen(cmd)
        for _ in range(100):
            if subprocess.run(["ssh", "-F", self.config, "bench", "true"], capture_output=True).returncode == 0:
                break
            time.sleep(0.05)
        else:
            raise SystemExit("sshd did not come up; see " + os.path.join(state, "sshd.log"))

    def stop(self):
        subprocess.run(["ssh", "-F", self.config, "-O", "exit", "bench"], capture_output=True)
        self.proc.terminate()
        self.proc.wait(timeout=10)


def client_cmd(cmd, pin):
    return (["taskset", "-c", "0"] if pin else []) + cmd


def echo_floor(sshd, calls, pin):
    p = subprocess.Popen(client_cmd(["ssh", "-F", sshd.config, "bench", "cat"], pin),
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
    lat = []
    for i in range(calls + 50):
        t = time.perf_counter()
        p.stdin.write(b"x")
        p.stdout.read(1)
        if i >= 50:
            lat.append(time.perf_counter() - t)
    p.stdin.close()
    p.wait()
    return {"p50_us": statistics.median(lat) * 1e6, "calls_per_s": len(lat) / sum(lat)}


def mux_true(sshd, calls, pin):
    subprocess.run(["ssh", "-F", sshd.config, "bench", "true"], check=True)
    lat = []
    for _ in range(calls):
        t = time.perf_counter()
        subprocess.run(client_cmd(["ssh", "-F", sshd.config, "bench", "true"], pin), check=True)
        lat.append(time.perf_counter() - t)
    return {"p50_us": statistics.median(lat) * 1e6, "calls_per_s": len(lat) / sum(lat)}


def sremote(binary, sshd, mode, calls, concurrency, pin):
    cmd = [binary, "--ssh-config", sshd.config, "bench", "bench", "--mode", mode,
           "--calls", str(calls), "--concurrency", str(concurrency), "--json"]
    out = subprocess.run(client_cmd(cmd, pin), capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"sremote bench failed: {out.stderr}")
    return json.loads(out.stdout)


PEER_SCRIPT = r"""
import json, os, statistics, sys, time
kind, config, calls = sys.argv[1], sys.argv[2], int(sys.argv[3])
lat = []
if kind == "execnet":
    import execnet
    gw = execnet.makegateway(f"ssh=-F {config} bench//python=python3")
    ch = gw.remote_exec("import os\nwhile 1:\n    k = channel.receive()\n    channel.send(os.getenv(k))")
    for i in range(calls + 50):
        t = time.perf_counter(); ch.send("HOME"); ch.receive()
        if i >= 50: lat.append(time.perf_counter() - t)
    gw.exit()
elif kind == "sremote-py":
    import sremote
    c = sremote.Client("bench", ssh_config=config)
    for i in range(calls + 50):
        t = time.perf_counter(); c.call("os", "getenv", "HOME")
        if i >= 50: lat.append(time.perf_counter() - t)
    c.close()
else:
    import mitogen.master
    broker = mitogen.master.Broker(); router = mitogen.master.Router(broker)
    try:
        ctx = router.ssh(hostname="bench", ssh_args=["-F", config], python_path="python3")
        for i in range(calls + 50):
            t = time.perf_counter(); ctx.call(os.getenv, "HOME")
            if i >= 50: lat.append(time.perf_counter() - t)
    finally:
        broker.shutdown(); broker.join()
print(json.dumps({"p50_us": statistics.median(lat) * 1e6, "calls_per_s": len(lat) / sum(lat)}))
"""


def peer(venv_python, kind, sshd, calls, pin):
    out = subprocess.run(client_cmd([venv_python, "-c", PEER_SCRIPT, kind, sshd.config, str(calls)], pin),
                         capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"}
    return json.loads(out.stdout)


def cli_wall(binary, sshd, args, pin, reps, fresh_home=False):
    """Median wall time (µs) of a whole `sremote` invocation (connect included)."""
    lat = []
    for _ in range(reps):
        if fresh_home:
            shutil.rmtree(os.path.join(sshd.home, ".sremote"), ignore_errors=True)
        t = time.perf_counter()
        subprocess.run(client_cmd([binary, "--ssh-config", sshd.config] + args, pin), check=True, capture_output=True)
        lat.append(time.perf_counter() - t)
    return {"p50_us": statistics.median(lat) * 1e6, "calls_per_s": len(lat) / sum(lat)}


def transfer(binary, sshd, state, mib, pin):
    """MB/s of sremote push/pull against ssh cat, one file of `mib` MiB."""
    src = os.path.join(state, "transfer.bin")
    if not os.path.exists(src) or os.path.getsize(src) != mib << 20:
        with open(src, "wb") as f:
            f.write(os.urandom(mib << 20))
    back = os.path.join(state, "back.bin")
    size = (mib << 20) / 1e6

    def timed(cmd, **kw):
        t = time.perf_counter()
        subprocess.run(client_cmd(cmd, pin), check=True, **kw)
        return size / (time.perf_counter() - t)

    out = {}
    # Both sides pay one fresh connection: no ControlMaster for ssh here. Both use files in
    # the same directory: a plain `ssh host cmd` starts in the passwd home, not in the
    # $HOME this sshd sets, so its paths are absolute. And both pull the same file, written
    # before either pull: reading a file whose pages are still being written back is slower,
    # which would favour whichever reads the older file.
    ssh = ["ssh", "-F", sshd.config, "-o", "ControlMaster=no", "-o", "ControlPath=none", "bench"]
    t_bin = os.path.join(sshd.home, "t.bin")
    with open(src, "rb") as f:
        out["ssh cat push MB/s"] = timed(ssh + [f"cat > '{t_bin}'"], stdin=f)
    out["sremote push MB/s"] = timed([binary, "--ssh-config", sshd.config, "push", "bench", src, "t2.bin"])
    subprocess.run(["sync"], check=True)
    # Neither pays for freeing an old copy of the output (truncating or replacing 256 MiB
    # costs ~0.1 s): the output is removed before each is timed.
    if os.path.exists(back):
        os.remove(back)
    with open(back, "wb") as f:
        out["ssh cat pull MB/s"] = timed(ssh + [f"cat '{t_bin}'"], stdout=f)
    os.remove(back)
    out["sremote pull MB/s"] = timed([binary, "--ssh-config", sshd.config, "pull", "bench", "t.bin", back])
    return out


def venv(state):
    path = os.path.join(state, "venv")
    python = os.path.join(path, "bin", "python")
    if not os.path.exists(python):
        subprocess.run([sys.executable, "-m", "venv", path], check=True)
    subprocess.run([python, "-m", "pip", "install", "-q", "execnet", "mitogen", "maturin>=1.5,<2"], check=True)
    # The Python client as users get it: `pip install ./crates/sremote-py` (release profile).
    env = dict(os.environ, PATH=os.path.dirname(python) + os.pathsep + os.environ.get("PATH", ""))
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-build-isolation",
                    os.path.join(ROOT, "crates", "sremote-py")], check=True, env=env)
    return python


def median_of(runs, key):
    vals = [r[key] for r in runs if key in r]
    return statistics.median(vals) if vals else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", default=os.path.join(ROOT, "BENCHMARKS.md"))
    ap.add_argument("--transfer-mib", type=int, default=256)
    ap.add_argument("--sremote", default=os.path.join(ROOT, "target", "release", "sremote"))
    args = ap.parse_args()
    if not os.path.exists(args.sremote):
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "sremote-cli"], cwd=ROOT, check=True)
    state = tempfile.mkdtemp(prefix="sremote-peers-")
    python = venv(state)
    results = {}
    for pin in (False, True):
        sshd = Sshd(os.path.join(state, "pinned" if pin else "unpinned"), pin)
        try:
            subprocess.run([args.sremote, "--ssh-config", sshd.config, "bootstrap", "bench"], check=True,
                           capture_output=True)
            rows = {}
            for rep in range(args.reps):
                for name, fn in [
                    ("echo floor", lambda: echo_floor(sshd, args.calls, pin)),
                    ("ssh mux true", lambda: mux_true(sshd, max(50, args.calls // 20), pin)),
                    ("sremote session", lambda: sremote(args.sremote, sshd, "session", args.calls, 1, pin)),
                    ("sremote session x64", lambda: sremote(args.sremote, sshd, "session", args.calls * 10, 64, pin)),
                    ("sremote pipe", lambda: sremote(args.sremote, sshd, "pipe", max(50, args.calls // 20), 1, pin)),
                    ("sremote file", lambda: sremote(args.sremote, sshd, "file", max(50, args.calls // 40), 1, pin)),
                    ("execnet", lambda: peer(python, "execnet", sshd, args.calls, pin)),
                    ("mitogen", lambda: peer(python, "mitogen", sshd, args.calls, pin)),
                    ("python client session", lambda: peer(python, "sremote-py", sshd, args.calls, pin)),
                ]:
                    rows.setdefault(name, []).append(fn())
                    print(f"[{'pinned' if pin else 'unpinned'} rep {rep}] {name}: {rows[name][-1]}", file=sys.stderr)
            getenv = ["call", "bench", "os", "getenv", "HOME"]
            rows["cli: fresh host, bootstrap + first call"] = [cli_wall(args.sremote, sshd, getenv, pin, 5, fresh_home=True)]
            rows["cli: warm connect + first call"] = [cli_wall(args.sremote, sshd, getenv, pin, 10)]
            results["pinned" if pin else "unpinned"] = {
                k: {"p50_us": median_of(v, "p50_us"), "calls_per_s": median_of(v, "calls_per_s")} for k, v in rows.items()
            }
            if not pin:
                runs = [transfer(args.sremote, sshd, state, args.transfer_mib, pin) for _ in range(args.reps)]
                results["transfer"] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        finally:
            sshd.stop()
    write_report(args.out, results, args)
    shutil.rmtree(state, ignore_errors=True)


def write_report(path, results, args):
    lines = [
        "# Benchmarks",
        "",
        f"One run of `bench/peers.py --calls {args.calls} --reps {args.reps}` on "
        f"{time.strftime('%Y-%m-%d')}: {platform.node()}, {os.cpu_count()} CPUs, "
        f"{platform.platform()}, one loopback OpenSSH sshd. Medians over {args.reps} repetitions. "
        "`x64` = 64 calls in flight. Pinned = sshd and client under `taskset -c 0`.",
        "",
        "| path | unpinned p50 (µs) | unpinned calls/s | pinned p50 (µs) | pinned calls/s |",
        "|---|---:|---:|---:|---:|",
    ]
    names = list(results["unpinned"].keys())
    for n in names:
        u, p = results["unpinned"][n], results["pinned"][n]
        lines.append(f"| {n} | {u['p50_us']:.1f} | {u['calls_per_s']:.0f} | {p['p50_us']:.1f} | {p['calls_per_s']:.0f} |")
    lines += ["", "## Ratios against the targets", "",
              "| target | unpinned | pinned | goal |", "|---|---:|---:|---|"]

    def ratio(pin, a, b, key="p50_us"):
        r = results[pin]
        return r[a][key] / r[b][key] if r[b][key] else float("nan")

    checks = [
        ("session p50 / echo floor p50", "sremote session", "echo floor", "p50_us", "≤ 1.3"),
        ("session p50 / execnet p50", "sremote session", "execnet", "p50_us", "≤ 0.5"),
        ("session x64 calls/s / execnet calls/s", "sremote session x64", "execnet", "calls_per_s", "≥ 10"),
        ("pipe p50 / ssh mux true p50", "sremote pipe", "ssh mux true", "p50_us", "≤ 1.1"),
        ("session p50 / mitogen p50", "sremote session", "mitogen", "p50_us", "(smaller is better)"),
        ("python client p50 / session p50", "python client session", "sremote session", "p50_us", "≤ 1.3"),
        ("python client p50 / execnet p50", "python client session", "execnet", "p50_us", "≤ 0.6"),
    ]
    for label, a, b, key, goal in checks:
        lines.append(f"| {label} | {ratio('unpinned', a, b, key):.2f} | {ratio('pinned', a, b, key):.2f} | {goal} |")
    t = results.get("transfer")
    if t:
        lines += ["", f"## Transfers ({args.transfer_mib} MiB, unpinned, median of {args.reps})", "",
                  "| direction | ssh cat MB/s | sremote MB/s | ratio (goal ≥ 0.95) |", "|---|---:|---:|---:|"]
        for d in ("push", "pull"):
            a, b = t[f"ssh cat {d} MB/s"], t[f"sremote {d} MB/s"]
            lines.append(f"| {d} | {a:.0f} | {b:.0f} | {b / a:.2f} |")
    x64 = results["unpinned"]["sremote session x64"]["calls_per_s"]
    lines += ["", f"Session with 64 in flight: {x64:.0f} calls/s unpinned (goal ≥ 20,000).", ""]
    # Sections measured by other benchmarks (criterion, the gateway's) follow this marker
    # and are kept as they are.
    kept = ""
    if os.path.exists(path):
        with open(path) as f:
            old = f.read()
        at = old.find(KEEP_MARKER)
        if at >= 0:
            kept = "\n" + old[at:]
    with open(path, "w") as f:
        f.write("\n".join(lines) + kept)
    print("\n".join(lines))


KEEP_MARKER = "<!-- measured by other benchmarks: kept by bench/peers.py -->"


if __name__ == "__main__":
    main()
