"""Fixtures: real servers on loopback, started by the project's own harness and stopped
by PID — an OpenSSH sshd (`sremote-testkit sshd`), an `sremote-gateway` — and the local
connector in a throwaway HOME.

The binaries come from `$SREMOTE_TEST_BIN_DIR` (default: `<repo>/target/debug`), built
with cargo when missing.
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
BIN_DIR = Path(os.environ.get("SREMOTE_TEST_BIN_DIR")
               or Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target") / "debug")

# Every `Client("local")` of the tests works in its own HOME (the endpoint is installed
# into <HOME>/.sremote): set before anything reads it.
_HOME = tempfile.TemporaryDirectory(prefix="sremote-py-home-")
os.environ["HOME"] = _HOME.name
os.environ.pop("SREMOTE_CONFIG", None)


def binary(name: str) -> Path:
    path = BIN_DIR / name
    if not path.exists():
        subprocess.run(["cargo", "build", "-q", "--bin", name], cwd=REPO, check=True)
    return path


class SshServer:
    """A running `sremote-testkit sshd`: .alias, .ssh_config, .home, .port, .pid."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([str(binary("sremote-testkit")), "sshd"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("sremote-testkit sshd did not start (is openssh-server installed?)")
        info = json.loads(line)
        self.__dict__.update(info)

    def kill_sessions(self) -> None:
        """Break every established connection (new ones work)."""
        self.proc.stdin.write("kill-sessions\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "ok"

    def stop(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="session")
def sshd():
    server = SshServer()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def hosts_config(sshd, tmp_path_factory):
    """A hosts config naming the sshd `remote-test` (what the seed examples use in place
    of remote.host.org), as `$SREMOTE_CONFIG`."""
    path = tmp_path_factory.mktemp("config") / "config.toml"
    path.write_text(
        '[hosts.remote-test]\ndestination = "%s"\nssh_config = "%s"\n'
        '[hosts.here]\nconnector = "local"\nenv = { SREMOTE_PY_CONFIGURED = "yes" }\n'
        % (sshd.alias, sshd.ssh_config))
    os.environ["SREMOTE_CONFIG"] = str(path)
    yield path


@pytest.fixture(scope="session", params=["local", "ssh"])
def client(request, sshd):
    """One client per host kind, shared by the tests of a session."""
    import sremote

    if request.param == "local":
        c = sremote.Client("local")
    else:
        c = sremote.Client(sshd.alias, ssh_config=sshd.ssh_config)
    yield c
    c.close()


class Gateway:
    """A running `sremote-gateway` on loopback (plain http, allowed there)."""

    USER, PASSWORD, MACHINE = "alice", "correct horse battery staple", "testhost"

    def __init__(self, root: Path) -> None:
        home = root / "home"
        home.mkdir()
        exe = str(binary("sremote-gateway"))
        subprocess.run([exe, "adduser", "--users", str(root / "users"), self.USER],
                       input=self.PASSWORD + "\n", text=True, check=True, capture_output=True)
        (root / "gateway.toml").write_text(
            'listen = "127.0.0.1:0"\nbase_path = "/newt"\nmachines = ["%s"]\nusers_file = "users"\n'
            'roots = ["~"]\n' % self.MACHINE)
        env = dict(os.environ, HOME=str(home))
        self.proc = subprocess.Popen([exe, "--config", str(root / "gateway.toml")], env=env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        self.url = None
        for line in self.proc.stderr:
            m = re.search(r"listening on (\S+)", line)
            if m:
                self.url = m.group(1)
                break
        if self.url is None:
            raise RuntimeError("sremote-gateway did not start")
        # Keep reading its log so that the pipe never fills up.
        threading.Thread(target=lambda: [None for _ in self.proc.stderr], daemon=True).start()
        self.home = home

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="session")
def gateway(tmp_path_factory):
    g = Gateway(tmp_path_factory.mktemp("gateway"))
    yield g
    g.stop()


def alive(pid: int) -> bool:
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ")[-1][:1] != "Z"
    except OSError:
        return False


@pytest.fixture
def python():
    return sys.executable
