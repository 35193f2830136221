"""Shared pieces of the benchmark scripts in bench/: throwaway loopback sshd's, the release
`sremote` binary, the compiled echo-floor client, /proc sampling and the BENCHMARKS.md
section writer. Not a benchmark itself.
"""

import os
import platform
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "BENCHMARKS.md"
PIN = ["taskset", "-c", "0"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def machine():
    """The machine, named the same way in every section."""
    return f"{platform.node()}, {os.cpu_count()} CPUs, {platform.platform()}"


def pinned(cmd, pin):
    """`cmd` under `taskset -c 0` when `pin` (children inherit the affinity)."""
    return PIN + list(cmd) if pin else list(cmd)


def keys(state):
    """An ed25519 host key and client key under `state` (made once); authorized_keys."""
    os.makedirs(state, exist_ok=True)
    for key in ("host", "client"):
        path = os.path.join(state, key)
        if not os.path.exists(path):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", path], check=True)
    shutil.copy(os.path.join(state, "client.pub"), os.path.join(state, "authorized_keys"))
    return state


def ssh_host(alias, port, keydir, extra=""):
    """One `Host` block of an ssh config for a loopback sshd."""
    return f"""Host {alias}
  HostName 127.0.0.1
  Port {port}
  User root
  IdentityFile {keydir}/client
  IdentitiesOnly yes
  StrictHostKeyChecking accept-new
  UserKnownHostsFile {keydir}/known_hosts
  LogLevel ERROR
{extra}"""


class Sshd:
    """One OpenSSH sshd on loopback: its own port, config, log and HOME (`SetEnv HOME`),
    the keys in `keydir` (see `keys`). Started by `start()`, ready when it sends its
    banner (no login spent on waiting)."""

    def __init__(self, state, keydir, port=None, pin=False, max_startups="256:30:512",
                 max_sessions=256, extra=""):
        self.state = state
        self.keydir = keydir
        self.port = port or free_port()
        self.pin = pin
        self.home = os.path.join(state, "home")
        self.log = os.path.join(state, "sshd.log")
        self.proc = None
        os.makedirs(self.home, exist_ok=True)
        os.makedirs("/run/sshd", exist_ok=True)
        self.config_file = os.path.join(state, "sshd_config")
        with open(self.config_file, "w") as f:
            f.write(f"""ListenAddress 127.0.0.1
Port {self.port}
HostKey {keydir}/host
PidFile {state}/sshd.pid
AuthorizedKeysFile {keydir}/authorized_keys
StrictModes no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
MaxSessions {max_sessions}
MaxStartups {max_startups}
Subsystem sftp internal-sftp
SetEnv HOME={self.home}
{extra}""")

    def start(self):
        cmd = ["/usr/sbin/sshd", "-D", "-f", self.config_file, "-E", self.log]
        self.proc = subprocess.Popen(pinned(cmd, self.pin))
        return self

    def wait_ready(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    if s.recv(4).startswith(b"SSH-"):
                        return self
            except OSError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise SystemExit(f"sshd on port {self.port} did not come up; see {self.log}")

    def logins(self):
        with open(self.log) as f:
            return f.read().count("Accepted ")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


def sremote_binary(path):
    """The release `sremote`: `path` when given, else built (`cargo build --release`)."""
    if path:
        return str(path)
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "sremote-cli"], cwd=ROOT, check=True)
    return str(ROOT / "target" / "release" / "sremote")


def echo_floor_binary(state):
    """The compiled echo-floor client (tests/src/bin/echo_floor.rs, std only) built with
    `rustc -O` into `state`: seconds, without the test crate's dependencies."""
    src = ROOT / "tests" / "src" / "bin" / "echo_floor.rs"
    out = os.path.join(state, "sremote-echo-floor")
    subprocess.run(["rustc", "--edition", "2024", "-C", "opt-level=3", "-o", out, str(src)],
                   check=True)
    return out


def proc_kib(pid, field):
    """A `/proc/PID/status` field in KiB (`VmRSS`, `VmHWM`), None once the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def pss_kib(pid):
    """Proportional set size of a process (shared pages split between their users)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def pids_with(needle):
    """Processes whose command line contains `needle`."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                if needle.encode() in f.read():
                    out.append(int(d))
        except OSError:
            pass
    return out


def run_peak_rss(cmd, env=None, poll=0.005, **kw):
    """Run `cmd`; (returncode, wall seconds, peak RSS KiB of that process itself, stdout,
    stderr). The peak is `VmHWM` polled until exit (a child's RSS does not count)."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
    peak = 0
    box = {}

    def drain():
        box["out"], box["err"] = p.communicate()

    th = threading.Thread(target=drain)
    th.start()
    while p.poll() is None:
        hwm = proc_kib(p.pid, "VmHWM")
        if hwm:
            peak = max(peak, hwm)
        time.sleep(poll)
    wall = time.perf_counter() - t
    th.join()
    return p.returncode, wall, peak, box["out"].decode(errors="replace"), box["err"].decode(errors="replace")


def write_section(begin, end, section):
    """Replace the section between the markers `begin` and `end` in BENCHMARKS.md (append
    it when the markers are not there yet). `section` starts with `begin`, ends with `end`."""
    text = BENCHMARKS.read_text() if BENCHMARKS.exists() else ""
    if begin in text and end in text:
        text = text[: text.index(begin)] + section + text[text.index(end) + len(end) + 1:]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    BENCHMARKS.write_text(text)


def publish(section, write, begin, end):
    """Print the section; with `write` (the scripts' `--write`) also put it into
    BENCHMARKS.md between its markers."""
    print(section)
    if write:
        write_section(begin, end, section)
