"""Helpers of the job tests: hosts with a Python module directory on their PYTHONPATH, and
the machine's single-node Slurm, joined the way the Rust test kit does it
(crates/sremote-testkit/src/slurm.rs): a machine-wide lock serialises starting and
stopping, every user holds a shared lock while it uses Slurm, and the last user stops it
only if the harness started it (scripts/slurm-up.sh, scripts/slurm-down.sh)."""

import fcntl
import os
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]

SLURM_LOCK = "/tmp/sremote-slurm.lock"
SLURM_USERS = "/tmp/sremote-slurm.users"
SLURM_MARKER = "/tmp/sremote-slurm.started-by-testkit"
SLURM_ENV = {"SLURM_TEST_DIR": "/tmp/sremote-slurm", "SLURM_INSTALL": "1"}

#: The partition of the test Slurm (scripts/slurm-up.sh).
SLURM_PARTITION = "debug"


class Unavailable(Exception):
    """The service cannot run here (why is the message)."""


def _run(argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""


def slurm_is_up() -> bool:
    if "is UP" not in _run(["scontrol", "ping"]):
        return False
    states = _run(["sinfo", "-h", "-o", "%T"]).split()
    return any(s.rstrip("*+-~#!%$@^") in ("idle", "mixed", "allocated", "completing") for s in states)


class Slurm:
    """A running single-node Slurm shared by every test process on this machine."""

    def __init__(self) -> None:
        if os.geteuid() != 0:
            raise Unavailable("single-node Slurm needs root (daemons, configuration under /etc)")
        lock = open(SLURM_LOCK, "a")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            users = open(SLURM_USERS, "a")
            try:
                fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
                in_use = False
            except OSError:
                in_use = True  # another process uses it now: never restart it under that one
            fcntl.flock(users, fcntl.LOCK_SH)
            if not in_use and not slurm_is_up():
                self._start()
            self.users = users
        finally:
            lock.close()

    def _start(self) -> None:
        last = ""
        for _ in range(5):  # another test binary may hold the dpkg lock while installing
            p = subprocess.run(["bash", str(REPO / "scripts/slurm-up.sh")], capture_output=True,
                               text=True, stdin=subprocess.DEVNULL, env=dict(os.environ, **SLURM_ENV))
            if p.returncode == 0:
                if "already up" not in p.stderr:
                    Path(SLURM_MARKER).write_text(str(os.getpid()))
                return
            last = p.stderr.strip()
            time.sleep(2)
        raise RuntimeError("scripts/slurm-up.sh failed: %s" % last[-2000:])

    def stop(self) -> None:
        """Leave; the last user stops what the harness started."""
        with open(SLURM_LOCK, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                fcntl.flock(self.users, fcntl.LOCK_EX | fcntl.LOCK_NB)
                last = True
            except OSError:
                last = False
            if last and os.path.exists(SLURM_MARKER):
                subprocess.run(["bash", str(REPO / "scripts/slurm-down.sh")], capture_output=True,
                               env=dict(os.environ, **SLURM_ENV))
                os.remove(SLURM_MARKER)
            self.users.close()


def write_hosts_config(path: Path, sshd, moddir: Path) -> Path:
    """A hosts config with `jobhost` (local) and `jobssh` (the sshd), both with `moddir`
    first on PATH and PYTHONPATH."""
    path.write_text(
        '[hosts.jobhost]\nconnector = "local"\npath = ["%s"]\n'
        '[hosts.jobssh]\ndestination = "%s"\nssh_config = "%s"\npath = ["%s"]\n'
        % (moddir, sshd.alias, sshd.ssh_config, moddir))
    return path


#: A module on the test hosts' PYTHONPATH (the `jobhosts` fixture writes it).
JOBMOD = '''
import sys, time

def multiply(a, b):
    print("multiplying", a, b)
    print("on stderr", file=sys.stderr)
    return a * b

def multiply_slow(a, b):
    time.sleep(1)
    return a * b

def fail():
    print("about to fail")
    raise ValueError("bad value")

def slow(n, pause, tag=None):
    for i in range(n):
        print("line", i, flush=True)
        time.sleep(pause)
    return [n, tag]
'''


@pytest.fixture(scope="module")
def jobhosts(sshd, tmp_path_factory):
    """(config path, module dir): hosts `jobhost` (local) and `jobssh` (the sshd) with the
    module dir on PYTHONPATH, holding `jobmod.py`."""
    root = tmp_path_factory.mktemp("jobs")
    moddir = root / "pymods"
    moddir.mkdir()
    (moddir / "jobmod.py").write_text(JOBMOD)
    return write_hosts_config(root / "config.toml", sshd, moddir), moddir


@pytest.fixture(scope="module")
def ssh_client(jobhosts):
    import sremote
    c = sremote.Client("jobssh", config=str(jobhosts[0]))
    yield c
    c.close()


@pytest.fixture(scope="module")
def local_client(jobhosts):
    import sremote
    c = sremote.Client("jobhost", config=str(jobhosts[0]))
    yield c
    c.close()


@pytest.fixture(scope="module")
def slurm():
    try:
        s = Slurm()
    except Unavailable as e:
        pytest.skip(str(e))
    yield s
    s.stop()


def cli(config, *args, check=True):
    """Run the `sremote` CLI with the hosts config `config` (the same job store: HOME)."""
    from conftest import binary
    env = dict(os.environ, SREMOTE_CONFIG=str(config), NO_COLOR="1")
    p = subprocess.run([str(binary("sremote")), *args], capture_output=True, text=True, env=env,
                       timeout=300)
    if check and p.returncode != 0:
        raise AssertionError("sremote %s: exit %d\n%s\n%s" % (" ".join(args), p.returncode, p.stdout,
                                                               p.stderr))
    return p
