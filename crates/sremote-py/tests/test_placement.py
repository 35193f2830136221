"""``sremote.Client(pool, needs={...})`` picks the host at connect (issue 13), and
``venv=`` works in a project's environment: over a real sshd plus the local connector,
with a stub ``nvidia-smi`` on one host's PATH."""

import os
import stat

import pytest

import sremote


@pytest.fixture
def pool_config(sshd, tmp_path, monkeypatch):
    stub = tmp_path / "gpu"
    stub.mkdir()
    smi = stub / "nvidia-smi"
    smi.write_text('#!/bin/sh\necho "Tesla T4, 15360, 8192"\n')
    smi.chmod(smi.stat().st_mode | stat.S_IXUSR)
    path = tmp_path / "config.toml"
    path.write_text(
        '[hosts.gpu]\ndestination = "%s"\nssh_config = "%s"\npath = ["%s"]\n'
        'env = { WHO = "gpu" }\n'
        '[hosts.plain]\nconnector = "local"\nenv = { WHO = "plain" }\nlabels = ["big"]\n'
        '[groups]\nlab = ["gpu", "plain"]\n' % (sshd.alias, sshd.ssh_config, stub))
    monkeypatch.setenv("SREMOTE_PROBE_CACHE", "0")
    return str(path)


def test_needs_pick_the_host_at_connect(pool_config):
    with sremote.Client("@lab", config=pool_config, needs={"gpu_mem": "1.5G"}) as c:
        assert c.call("os", "getenv", "WHO") == "gpu"
        p = c.placement
        assert p["chosen"] == "gpu"
        assert len(p["candidates"]) == 2
        assert "1 of 2 hosts fit" in p["reason"]
    with sremote.Client("gpu,plain", config=pool_config, needs={"label": ["big"], "cpus": 1}) as c:
        assert c.call("os", "getenv", "WHO") == "plain"
    with sremote.Client("plain", config=pool_config) as c:
        assert c.placement is None


def test_no_host_fits_and_bad_needs_raise(pool_config):
    with pytest.raises(sremote.UsageError) as err:
        sremote.Client("@lab", config=pool_config, needs={"gpu_mem": "100G"})
    assert "no host fits" in str(err.value) and "gpu:" in str(err.value)
    assert err.value.hint.startswith("ask for less")
    with pytest.raises(sremote.UsageError) as err:
        sremote.Client("@lab", config=pool_config, needs={"colour": "red"})
    assert "gpu-mem=SIZE" in str(err.value)


def test_venv_is_checked_and_named_in_errors(sshd):
    with pytest.raises(sremote.UsageError):
        sremote.Client(sshd.alias, ssh_config=sshd.ssh_config, venv="../escape")
    with sremote.Client(sshd.alias, ssh_config=sshd.ssh_config, venv="nosuch-venv") as c:
        assert c.venv == "nosuch-venv"
        with pytest.raises(sremote.RemoteError) as err:
            c.call("json", "dumps", [1])
        assert "the venv nosuch-venv does not exist" in str(err.value)
        # Built-in modules do not need Python.
        assert c.call("os", "getenv", "HOME") == sshd.home
