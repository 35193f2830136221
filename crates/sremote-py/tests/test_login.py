"""SshConnector(persist=..., prompt=...): one login shared with later programs, and
answering login prompts from Python, against the testkit's sshd."""

import os
import shutil
import subprocess
import tempfile

import pytest

import sremote


@pytest.fixture
def control_dir(monkeypatch):
    # Short: the control socket's path must fit in a unix socket address.
    d = tempfile.mkdtemp(prefix="srp", dir="/tmp")
    monkeypatch.setenv("SREMOTE_CONTROL_DIR", os.path.join(d, "ctl"))
    yield os.path.join(d, "ctl")
    for name in os.listdir(os.path.join(d, "ctl")) if os.path.isdir(os.path.join(d, "ctl")) else []:
        path = os.path.join(d, "ctl", name)
        if "." not in name:
            subprocess.run(["ssh", "-S", path, "-O", "exit", "x"], capture_output=True)
    shutil.rmtree(d, ignore_errors=True)


def test_a_persisted_login_outlives_its_connector(sshd, control_dir):
    calls = []

    def never(prompt):  # a key login: nothing to answer
        calls.append(prompt)
        return None

    c = sremote.SshConnector(sshd.alias, ssh_config=sshd.ssh_config, persist="1m", prompt=never)
    client = sremote.Client(c)
    assert client.exec(["true"]).returncode == 0
    del client, c
    sockets = [n for n in os.listdir(control_dir) if "." not in n]
    assert len(sockets) == 1, os.listdir(control_dir)
    check = subprocess.run(["ssh", "-S", os.path.join(control_dir, sockets[0]), "-O", "check", "x"],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    assert oct(os.stat(control_dir).st_mode & 0o777) == "0o700"
    # The next connector reuses it.
    again = sremote.SshConnector(sshd.alias, ssh_config=sshd.ssh_config, persist=60)
    assert sremote.Client(again).exec(["true"]).returncode == 0
    assert [n for n in os.listdir(control_dir) if "." not in n] == sockets
    assert calls == []


def test_bad_persist_values_are_refused(sshd):
    with pytest.raises(ValueError, match="not a duration"):
        sremote.SshConnector(sshd.alias, ssh_config=sshd.ssh_config, persist="soon")


def test_client_by_name_takes_persist_and_prompt(sshd, control_dir):
    """Client("host", persist=, prompt=) as SshConnector(...) does; persist=False keeps
    no login for later programs."""
    def never(prompt):
        raise AssertionError("a key login asked: " + prompt)

    c = sremote.Client(sshd.alias, ssh_config=sshd.ssh_config, persist=False, prompt=never)
    assert c.exec(["true"]).returncode == 0
    del c
    if os.path.isdir(control_dir):
        assert [n for n in os.listdir(control_dir) if "." not in n] == []
    c = sremote.Client(sshd.alias, ssh_config=sshd.ssh_config, persist="1m", prompt=never)
    assert c.exec(["true"]).returncode == 0
    del c
    sockets = [n for n in os.listdir(control_dir) if "." not in n]
    assert len(sockets) == 1, os.listdir(control_dir)
    check = subprocess.run(["ssh", "-S", os.path.join(control_dir, sockets[0]), "-O", "check", "x"],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    with pytest.raises(ValueError, match="not a duration"):
        sremote.Client(sshd.alias, ssh_config=sshd.ssh_config, persist="soon")


def _masters(alias):
    """The pids of ssh master processes (`-M`) logged in to `alias`."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == b"ssh" and b"-M" in argv \
                and alias.encode() in argv:
            found.append(int(pid))
    return found


def test_close_ends_a_login_that_is_not_persisted_and_keeps_a_persisted_one(sshd, control_dir):
    """close() on a Client that logged in itself with persist=False ends its ssh master at
    once, while the Python object is still alive; a persisted login stays for later
    programs. (Earlier tests' persisted masters for this sshd may still run: only the
    masters that appear here count.)"""
    before = set(_masters(sshd.alias))
    c = sremote.Client(sshd.alias, ssh_config=sshd.ssh_config, persist=False)
    assert c.call("os", "getenv", "HOME") == sshd.home
    own = set(_masters(sshd.alias)) - before
    assert len(own) == 1, own
    c.close()
    assert own.isdisjoint(_masters(sshd.alias))
    with pytest.raises(sremote.UsageError, match="closed"):
        c.call("os", "getenv", "HOME")

    before = set(_masters(sshd.alias))
    kept = sremote.Client(sshd.alias, ssh_config=sshd.ssh_config, persist="1m")
    assert kept.exec(["true"]).returncode == 0
    persisted = set(_masters(sshd.alias)) - before
    assert len(persisted) == 1, persisted
    kept.close()
    assert persisted <= set(_masters(sshd.alias))
