"""The session namespace of issue 12 — `c.execute("a = 5"); c.run("myscript.py"); c["a"]` —
over the real sshd and the local connector: code runs in the session's namespace worker on
the host, its names meet the values pushed and pulled, its output reaches our stdout."""

import pytest

import sremote


def test_execute_run_and_getitem_share_one_namespace(client, tmp_path, monkeypatch, capsys):
    client.execute("ns_a = 5")
    assert client["ns_a"] == 5
    monkeypatch.chdir(tmp_path)
    (tmp_path / "myscript.py").write_text(
        "ns_b = ns_a * 2\n"
        "if __name__ == '__main__':\n"
        "    print('ran', __file__, ns_b)\n")
    client.run("myscript.py")
    assert capsys.readouterr().out == "ran myscript.py 10\n"
    assert client["ns_b"] == 10
    client.push({"ns_c": [1, 2, 3]})
    client.execute("ns_d = sum(ns_c)\nimport sys\nprint('to stderr', file=sys.stderr)")
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", "to stderr\n")
    assert client["ns_d"] == 6
    # A pool call sees a namespace value by reference.
    assert client.call("builtins", "abs", sremote.Reference("ns_a")) == 5
    assert client.execute("del ns_d") is None
    with pytest.raises(sremote.RemoteError, match="no stored value"):
        client["ns_d"]


def test_values_without_json_form_stay_on_the_host(client):
    client.execute("import threading\nns_lock = threading.Lock()")
    with pytest.raises(sremote.RemoteError) as e:
        client["ns_lock"]
    for part in ("_thread.lock", "Python namespace", "no JSON form"):
        assert part in e.value.message
    client.execute("ns_locked = ns_lock.locked()")
    assert client["ns_locked"] is False


def test_exceptions_carry_the_users_lines_and_output(client, tmp_path, capsys):
    with pytest.raises(sremote.RemoteError) as e:
        client.execute("print('before')\nns_x = 1\nraise ValueError('boom')")
    assert e.value.kind == "Raised"
    assert e.value.remote_type == "ValueError"
    assert 'File "<sremote-execute>", line 3' in e.value.traceback
    assert capsys.readouterr().out == "before\n"
    assert client["ns_x"] == 1
    script = tmp_path / "broken.py"
    script.write_text("ns_y = 1\n\n1 / 0\n")
    with pytest.raises(sremote.RemoteError) as e:
        client.run(script)
    assert 'File "%s", line 3' % script in e.value.traceback
    with pytest.raises(FileNotFoundError):
        client.run(tmp_path / "missing.py")
