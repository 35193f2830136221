"""Your own functions on the host (issue 12): shipped by source, cached by hash,
called in parallel — against the local connector and a real sshd."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time

import types

import pytest

# A module this process has (as if installed) and no host has: shipbroken imports it.
sys.modules["sremote_no_such_module_xyz"] = types.ModuleType("sremote_no_such_module_xyz")
import shipbroken  # noqa: E402
import shipme  # noqa: E402
import sremote  # noqa: E402


def test_a_local_module_travels_with_its_local_imports(client):
    assert client.apply(shipme.multiply, 10, 7) == 70
    out = client.apply_output(shipme.shout, "hi")
    assert out.value == "HI" and out.stdout == "shipped says hi\n"


def test_installed_functions_are_called_by_name(client):
    assert client.apply(os.path.join, "a", "b") == "a/b"
    assert client.apply(len, [1, 2, 3]) == 3
    assert client.apply("json.dumps", [1]) == "[1]"
    assert sremote.functions.describe(os.path.join)[2] == []


def test_errors_keep_the_users_traceback(client):
    with pytest.raises(sremote.RemoteError) as e:
        client.apply(shipme.fails, 1)
    assert e.value.remote_type == "ValueError" and "bad value 2" in str(e.value)
    assert "raise ValueError" in e.value.traceback, e.value.traceback


def test_a_module_the_host_lacks_names_the_fix(client):
    with pytest.raises(sremote.RemoteError) as e:
        client.apply(shipbroken.f)
    assert e.value.kind == "ModuleNotFound", e.value
    assert "sremote_no_such_module_xyz" in str(e.value) and "sremote install" in str(e.value)


def test_what_cannot_travel_is_refused_before_sending(client):
    factor = 3

    def scaled(x):
        return x * factor

    with pytest.raises(sremote.ShipError, match="closes over local variables.*factor"):
        client.apply(scaled, 2)
    import threading
    lock = threading.Lock()
    g = {"lock": lock}
    exec("def uses_lock():\n    return lock\n", g)
    with pytest.raises(TypeError):
        client.apply(g["uses_lock"])


def test_a_host_that_lost_its_cache_gets_the_source_again(sshd):
    with sremote.Client(sshd.alias, ssh_config=sshd.ssh_config) as c:
        assert c.apply(shipme.multiply, 3, 4) == 12
        shutil.rmtree(os.path.join(sshd.home, ".sremote", "cache", "python"))
        assert c.apply(shipme.multiply, 3, 5) == 15
        assert c.apply(shipme.multiply, 3, 5, ) == 15


SCRIPT = """
import json, os, sys, time
import sremote

c = sremote.Client(sys.argv[1], ssh_config=sys.argv[2] or None)
SCALE = int(sys.argv[3])

def multiply(a, b):
    import time; time.sleep(0.2); return a * b * SCALE

@c.remote(block=True)
def getpid():
    import os
    return os.getpid()

@c.remote(block=False)
def later(x):
    return multiply(x, 2)

out = {}
out["apply"] = c.apply(multiply, 10, 7)
ar = c.apply_async(multiply, 10, 7)
out["async"] = ar.get(timeout=30)
out["pid"] = getpid()
out["later"] = later(5).get(timeout=30)
out["map"] = c.map(multiply, [1, 2, 3], [4, 5, 6])
out["lambda"] = c.apply(lambda x: x * SCALE, 21)
out["local_pid"] = os.getpid()
print(json.dumps(out))
"""


def run_script(tmp_path, host, ssh_config, scale):
    script = tmp_path / "myscript.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, PYTHONPATH="")
    p = subprocess.run([sys.executable, str(script), host, ssh_config or "", str(scale)], env=env,
                       capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_functions_of_a_script_run_on_the_host(sshd, tmp_path):
    out = run_script(tmp_path, sshd.alias, sshd.ssh_config, 1)
    assert out["apply"] == 70 and out["async"] == 70 and out["later"] == 10
    assert out["map"] == [4, 10, 18]
    assert out["lambda"] == 21
    assert out["pid"] != out["local_pid"]
    # The same script with other code (a changed global): the new code runs.
    out = run_script(tmp_path, sshd.alias, sshd.ssh_config, 1000)
    assert out["apply"] == 70000 and out["map"] == [4000, 10000, 18000]


def test_map_runs_in_parallel_on_the_host(client):
    started = time.monotonic()
    assert client.map("time", "sleep", [0.5] * 4) == [None] * 4
    # Four calls of 0.5 s at once; a serial session took 2 s. A loose bound: correctness,
    # not speed (the benchmark measures that).
    assert time.monotonic() - started < 1.9


def test_describe_caches_until_the_code_or_a_global_changes():
    from sremote import _ship
    g = {"__name__": "__main__", "K": 1}
    src = "def f(x):\n    return x + K\n"
    path = os.path.join(os.path.dirname(__file__), "_ship_cache_probe.py")
    with open(path, "w") as fh:
        fh.write(src)
    try:
        exec(compile(src, path, "exec"), g)
        first = _ship.describe(g["f"])
        assert "K = 1" in first[2][0][1]
        assert _ship.describe(g["f"]) is first
        g["K"] = 2
        second = _ship.describe(g["f"])
        assert "K = 2" in second[2][0][1]
    finally:
        os.unlink(path)
