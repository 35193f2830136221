"""The native API over the local connector and a real loopback sshd."""

import array
import asyncio
import datetime
import os
import pathlib
import time

import pytest

import sremote


def test_call_and_output(client):
    home = client.call("os", "getenv", "HOME")
    assert isinstance(home, str) and home
    assert client.call("os", "getenv", "SREMOTE_NOPE", "fallback") == "fallback"
    assert client.call("os", "getenv", "SREMOTE_NOPE", default="kw") == "kw"
    out = client.call_output("subprocess", "run", ["sh", "-c", "echo out; echo err >&2"])
    assert out.value["stdout"] == "out\n" and out.value["stderr"] == "err\n"
    out = client.call_output("builtins", "print", "printed")
    assert out.value is None and out.stdout == "printed\n"
    assert out.meta["pid"] > 0 and out.meta["host"] and out.meta["mode"] == "session"
    assert isinstance(out.meta["started"], datetime.datetime)


def test_names_follow_attributes_after_the_longest_module(client):
    today = datetime.date.today().isoformat()
    assert client.call("datetime.date", "today") == today
    assert client.call("datetime", "date.today") == today
    assert client.call("os.path", "join", "a", "b") == "a/b"
    with pytest.raises(sremote.RemoteError) as e:
        client.call("datetime.date", "nosuch")
    assert e.value.kind == "FunctionNotFound" and "nosuch" in e.value.message
    with pytest.raises(sremote.RemoteError) as e:
        client.call("sremote_no_such_module.sub", "f")
    assert e.value.kind == "ModuleNotFound"
    # The hint is data (Error::hint), and the message still ends with it.
    assert "sremote install HOST PACKAGE" in e.value.hint
    assert e.value.hint in str(e.value)


def test_values(client):
    echo = lambda v: client.call("builtins", "repr", v)  # noqa: E731 — the host's view
    big = 2 ** 200 + 7
    assert echo(big) == repr(big)
    assert client.call("builtins", "int", big) == str(big)  # returned: decimal text
    assert client.call("builtins", "int", -(2 ** 63)) == -(2 ** 63)
    assert client.call("builtins", "int", 2 ** 64 - 1) == 2 ** 64 - 1
    blob = bytes(range(256)) * 10
    assert client.call("builtins", "bytes", blob) == blob
    assert client.call("builtins", "len", bytearray(b"abc")) == 3
    assert client.call("builtins", "list", memoryview(b"xy")) == [120, 121]
    assert client.call("builtins", "list", (1, 2)) == [1, 2]
    assert sorted(client.call("builtins", "list", {3, 1})) == [1, 3]
    d = datetime.datetime(2024, 5, 6, 7, 8, 9, 123456)
    assert client.call("datetime.datetime", "fromisoformat", d) == d.isoformat()
    assert client.call("builtins", "sum", array.array("i", [1, 2, 3])) == 6
    assert client.call("os.path", "basename", pathlib.Path("/a/b.txt")) == "b.txt"
    assert client.call("builtins", "dict", {"x": [1, {"y": None}]}) == {"x": [1, {"y": None}]}
    assert client.call("builtins", "float", 1.5) == 1.5
    assert client.call("builtins", "bool", True) is True
    with pytest.raises(TypeError, match="has type object"):
        client.call("builtins", "repr", object())
    with pytest.raises(TypeError, match="dict key of type tuple"):
        client.call("builtins", "repr", {(1, 2): 3})


def test_numpy_like_tolist(client):
    class Fake:
        def tolist(self):
            return [[1, 2], [3, 4]]

    assert client.call("builtins", "len", Fake()) == 2


def test_remote_errors_carry_kind_type_and_traceback(client):
    with pytest.raises(sremote.RemoteError) as e:
        client.call("json", "loads", "{bad")
    err = e.value
    assert err.kind == "Raised" and err.remote_type == "json.decoder.JSONDecodeError"
    assert "Remote traceback" in str(err) and "json/decoder.py" in str(err)
    assert "JSONDecodeError" in err.traceback and err.module == "json" and err.function == "loads"
    assert isinstance(err, sremote.SremoteError)
    with pytest.raises(sremote.RemoteError) as e:
        client.call("builtins", "len", 1, 2, 3)
    assert e.value.kind == "BadArguments"
    with pytest.raises(sremote.RemoteError) as e:
        client.call("operator", "getitem", {"a": 1}, "b")
    assert e.value.remote_type == "KeyError"


def test_environment_and_path(client, tmp_path):
    client.register_env("SREMOTE_PY_VAR", "value one")
    assert client.call("os", "getenv", "SREMOTE_PY_VAR") == "value one"
    client.register_env_if_unset("HOME", "/not/used")
    assert client.call("os", "getenv", "HOME") != "/not/used"
    client.register_env_if_unset("SREMOTE_PY_UNSET", "set")
    assert client.call("os", "getenv", "SREMOTE_PY_UNSET") == "set"
    client.add_path("/opt/sremote-py-test/bin")
    assert client.call("os", "getenv", "PATH").startswith("/opt/sremote-py-test/bin")


def test_check_modules_and_probe(client):
    client.check_modules("json", "os")
    with pytest.raises(sremote.ModulesMissingError) as e:
        client.check_modules("json", "sremote_no_such_module")
    assert e.value.missing == ["sremote_no_such_module"]
    assert "json" in e.value.present
    probe = client.call("sys", "probe")
    assert probe["cpus"] >= 1
    assert client.probe()["cpus"] >= 1


def test_exec_and_files(client, tmp_path):
    r = client.exec(["uname", "-s"])
    assert r.returncode == 0 and r.stdout.strip() == "Linux"
    r = client.exec(["sh", "-c", 'printf "%s|" "$@"; echo "$X" >&2; exit 4', "sh", "a b", "$HOME"],
                    env={"X": "x"})
    assert (r.returncode, r.stdout, r.stderr) == (4, "a b|$HOME|", "x\n")
    assert client.exec(["cat"], stdin=b"\x00\x01in").stdout_bytes == b"\x00\x01in"
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(300_000))
    seen = []
    client.push_file(str(src), "sremote-py-test/data.bin", progress=seen.append)
    assert seen and seen[-1] == 300_000
    client.pull_file("sremote-py-test/data.bin", str(tmp_path / "back.bin"))
    assert (tmp_path / "back.bin").read_bytes() == src.read_bytes()
    with pytest.raises(sremote.TransportError) as e:
        client.pull_file("sremote-py-test/absent", str(tmp_path / "x"))
    assert e.value.kind == "not_found"


def test_bootstrap_is_a_no_op_when_current(client):
    client.call("os", "getpid")
    report = client.bootstrap()
    assert report["installed"] is False and report["endpoint_path"].endswith(sremote.__version__)


def test_async_result(client):
    ar = client.call_async("time", "sleep", 1.0)
    assert not ar.ready()
    assert ar.metadata["status"] == "pending"
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        ar.get(timeout=0.1)
    assert time.monotonic() - started < 0.8
    with pytest.raises(ValueError):
        ar.successful()
    assert ar.wait(10) is True and ar.ready() and ar.successful()
    assert ar.get() is None and ar.get(0) is None
    meta = ar.metadata
    assert meta["status"] == "ok" and meta["completed"] >= meta["started"]
    assert meta["submitted"] <= meta["received"] and meta["pid"] > 0

    failing = client.call_async("json", "loads", "{")
    assert failing.wait(10) and not failing.successful()
    with pytest.raises(sremote.RemoteError):
        failing.get()
    assert failing.metadata["status"] == "error"


def test_cancel(client):
    ar = client.call_async("subprocess", "run", ["sleep", "30"])
    time.sleep(0.3)
    ar.cancel()
    with pytest.raises(sremote.RemoteError) as e:
        ar.get(10)
    assert e.value.kind == "Cancelled"
    assert client.call("os", "getenv", "SREMOTE_NOPE", "after") == "after"


def test_map_and_acall(client):
    assert client.map("math", "factorial", range(12), concurrency=3) == [
        1, 1, 2, 6, 24, 120, 720, 5040, 40320, 362880, 3628800, 39916800]
    assert client.map("math", "sqrt", []) == []
    with pytest.raises(sremote.RemoteError):
        client.map("math", "sqrt", [1, -1, 4])

    async def main():
        return await asyncio.gather(*(client.acall("math", "factorial", n) for n in range(5)))

    assert asyncio.run(main()) == [1, 1, 2, 6, 24]


def test_namespace(client):
    client.push({"a": [1, 2, 3], "blob": b"\x00raw"})
    assert client.call("builtins", "len", sremote.Reference("a")) == 3
    assert client.pull("a") == [1, 2, 3]
    assert client.pull(("a", "blob")) == [[1, 2, 3], b"\x00raw"]
    client["b"] = {"k": "v"}
    assert client["b"] == {"k": "v"}
    with pytest.raises(sremote.RemoteError) as e:
        client.call("builtins", "len", sremote.Reference("never_pushed"))
    assert "never_pushed" in str(e.value)
    with pytest.raises(sremote.RemoteError):
        client.pull("never_pushed")


def test_reference_before_any_push_is_an_error():
    with sremote.Client("local") as c:  # a new session: nothing pushed yet
        with pytest.raises(sremote.RemoteError) as e:
            c.call("builtins", "len", sremote.Reference("a"))
        assert '"a"' in e.value.message and e.value.kind == "BadArguments"


def test_context_manager_and_close():
    with sremote.Client("local") as c:
        assert c.call("os", "getpid") > 0
    with pytest.raises(sremote.UsageError, match="closed"):
        c.call("os", "getpid")
    c.close()  # twice is fine


def test_configured_host_and_connectors(hosts_config, sshd):
    with sremote.Client("here") as c:
        assert c.call("os", "getenv", "SREMOTE_PY_CONFIGURED") == "yes"
    with sremote.Client("remote-test") as c:
        assert c.call("os", "getenv", "HOME") == sshd.home
    with sremote.Client(sremote.LocalConnector()) as c:
        assert c.call("os", "getpid") > 0
    conn = sremote.SshConnector(sshd.alias, ssh_config=sshd.ssh_config)
    with sremote.Client(conn) as c:
        assert c.call("os", "getenv", "HOME") == sshd.home
    with sremote.Client("ssh://%s@%s:%d" % (sshd.user, sshd.alias, sshd.port),
                        ssh_config=sshd.ssh_config) as c:
        assert c.host.endswith(str(sshd.port))


def test_transport_errors():
    with pytest.raises(sremote.TransportError) as e:
        sremote.Client("ssh://nobody@127.0.0.1:1")
    assert e.value.kind == "connect" and "127.0.0.1" in str(e.value)
    with pytest.raises(sremote.UsageError):
        sremote.Client("-oProxyCommand=evil")
    with pytest.raises(TypeError):
        sremote.Client(42)
