"""Arguments are data, Ctrl-C cancels on the host, a dropped connection recovers."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import sremote
from conftest import alive


def hostile_strings():
    base = ["", " ", "a b", "'", '"', "\\", "$HOME", "$(id)", "`id`", ";", "|", "&", "*", "~",
            "\n", "\t", "\r\n", "é🦀", "-n", "--", "-", "--help", "%s%n", "{}", '{"$ref": "a"}',
            "$bytes", "\x7f", "\x1b[31m", "a\x00b", "\u2028", "\ufeff", "../../etc/passwd",
            "C:\\x", "<script>", "&&", "||", "!", "#", "'\"'\"'", "${IFS}"]
    out = list(base)
    for i, s in enumerate(base):
        out.append(s * 3)
        out.append("x%sy%d" % (s, i))
        out.append(" %s " % s)
        out.append("\n".join([s, s]))
    out += ["".join(chr(c) for c in range(1, 128))[:n] for n in range(1, 40)]
    return out[:200]


HOSTILE = hostile_strings()


def test_200_hostile_strings_travel_byte_identical(client):
    assert len(HOSTILE) == 200
    # One call with all of them (Python bridge), each through the endpoint's own echo too.
    assert client.call("builtins", "list", HOSTILE) == HOSTILE
    for s in HOSTILE:
        assert client.call("sys", "echo", s) == s, repr(s)
        assert client.call("builtins", "str", s) == s, repr(s)
    kw = {"k%d" % i: s for i, s in enumerate(HOSTILE)}
    assert client.call("builtins", "dict", **kw) == kw
    # Programs get them as argv words, never through a shell (NUL cannot be in argv).
    words = [s for s in HOSTILE if "\x00" not in s]
    r = client.exec(["python3", "-c", "import sys, json; print(json.dumps(sys.argv[1:]))"] + words)
    import json
    assert json.loads(r.stdout) == words


CTRL_C_SCRIPT = textwrap.dedent('''
    import sys, sremote
    host, ssh_config, pidfile = sys.argv[1:]
    c = sremote.Client(host, ssh_config=ssh_config or None)
    c.call("os", "getpid")
    print("ready", flush=True)
    try:
        c.call("subprocess", "run", ["sh", "-c", 'echo $$ > "$1"; exec sleep 300', "sh", pidfile])
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        print("next", c.call("os", "getenv", "NOPE", "ok"), flush=True)
''')


@pytest.mark.parametrize("kind", ["local", "ssh"])
def test_ctrl_c_cancels_the_remote_call(kind, sshd, tmp_path):
    pidfile = tmp_path / "sleep.pid"
    host, cfg = ("local", "") if kind == "local" else (sshd.alias, sshd.ssh_config)
    p = subprocess.Popen([sys.executable, "-c", CTRL_C_SCRIPT, host, cfg, str(pidfile)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    deadline = time.monotonic() + 30
    while not (pidfile.exists() and pidfile.read_text().strip()):
        assert time.monotonic() < deadline, p.stderr.read()
        time.sleep(0.05)
    sleep_pid = int(pidfile.read_text())
    assert alive(sleep_pid)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=30)
    assert "interrupted" in out and "next ok" in out, err
    deadline = time.monotonic() + 10
    while alive(sleep_pid):
        assert time.monotonic() < deadline, "the remote sleep %d outlived Ctrl-C" % sleep_pid
        time.sleep(0.05)


def test_async_ctrl_c_while_waiting_cancels(tmp_path):
    pidfile = tmp_path / "sleep.pid"
    script = textwrap.dedent('''
        import sys, sremote
        c = sremote.Client("local")
        ar = c.call_async("subprocess", "run", ["sh", "-c", 'echo $$ > "$1"; exec sleep 300', "sh", sys.argv[1]])
        print("ready", flush=True)
        try:
            ar.get()
        except KeyboardInterrupt:
            print("interrupted", ar.ready(), flush=True)
    ''')
    p = subprocess.Popen([sys.executable, "-c", script, str(pidfile)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    while not (pidfile.exists() and pidfile.read_text().strip()):
        time.sleep(0.05)
    sleep_pid = int(pidfile.read_text())
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=30)
    assert "interrupted True" in out, err
    deadline = time.monotonic() + 10
    while alive(sleep_pid):
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_dropped_connection_then_a_working_call(sshd):
    with sremote.Client(sshd.alias, ssh_config=sshd.ssh_config) as c:
        assert c.call("os", "getenv", "HOME") == sshd.home
        ar = c.call_async("time", "sleep", 30)
        time.sleep(0.3)
        sshd.kill_sessions()
        with pytest.raises(sremote.TransportError) as e:
            ar.get(timeout=30)
        assert e.value.kind == "disconnected", str(e.value)
        deadline = time.monotonic() + 30
        while True:  # the next call reconnects
            try:
                assert c.call("os", "getenv", "HOME") == sshd.home
                break
            except sremote.TransportError:
                assert time.monotonic() < deadline
                time.sleep(0.2)


def test_newt_connector_against_the_gateway(gateway, tmp_path):
    conn = sremote.NewtConnector(gateway.url, gateway.MACHINE, gateway.USER, gateway.PASSWORD)
    with sremote.Client(conn) as c:
        assert c.call("os", "getenv", "NOPE", "via newt") == "via newt"
        assert c.call("datetime.date", "today")
        assert c.exec(["echo", "a b"]).stdout == "a b\n"
        src = tmp_path / "f.bin"
        src.write_bytes(os.urandom(10_000))
        c.push_file(str(src), "data/f.bin")
        c.pull_file("data/f.bin", str(tmp_path / "g.bin"))
        assert (tmp_path / "g.bin").read_bytes() == src.read_bytes()
        assert c.call("builtins", "list", HOSTILE) == HOSTILE
    url = gateway.url.replace("http://", "newt+http://%s@" % gateway.USER) + "/" + gateway.MACHINE
    with pytest.raises(sremote.SremoteError):
        sremote.Client(url, password="wrong password")
