"""``sremote.Client(..., setup=[...], login_shell=...)`` over a real sshd (issue 16, item 6):
calls and a detached job see what the setup lines exported; a failing line raises an
error naming the line and the host."""

import os
import uuid

import pytest

import sremote


def test_calls_and_jobs_see_the_setup(sshd, tmp_path):
    tag = uuid.uuid4().hex
    with sremote.Client(sshd.alias, ssh_config=sshd.ssh_config,
                        setup=["export SREMOTE_PY_SETUP='from setup %s'" % tag,
                               "echo a greeting the protocol never sees"]) as c:
        assert c.setup[-2].startswith("export SREMOTE_PY_SETUP=")
        assert c.login_shell is False
        assert c.call("os", "getenv", "SREMOTE_PY_SETUP") == "from setup " + tag
        # The argument stays data even where it looks like shell code.
        assert c.call("os", "getenv", "$(touch pwned-%s)" % tag) is None
        job = c.submit("os.getenv", args=["SREMOTE_PY_SETUP"], force=True,
                       store=str(tmp_path / "jobs.sqlite3"))
        value, _, _ = job.get_results(timeout=60)
        assert value == "from setup " + tag
    assert not os.path.exists(os.path.join(sshd.home, "pwned-" + tag))


def test_a_failing_setup_line_raises_naming_it(sshd):
    with sremote.Client(sshd.alias, ssh_config=sshd.ssh_config,
                        setup=["true", "sremote_no_such_module load python/3.11"]) as c:
        with pytest.raises(sremote.SetupError) as err:
            c.call("os", "getpid")
    assert (err.value.line, err.value.status) == (2, 127)
    assert err.value.text == "sremote_no_such_module load python/3.11"
    assert "not found" in err.value.output
    text = str(err.value)
    assert "setup line 2 `sremote_no_such_module load python/3.11` failed with exit status 127" in text
    assert c.host in text


def test_login_shell_reads_the_profile(sshd):
    profile = os.path.join(sshd.home, ".bash_profile")
    with open(profile, "w") as f:
        f.write("export SREMOTE_PY_PROFILE=login\n")
    try:
        with sremote.Client(sshd.alias, ssh_config=sshd.ssh_config, login_shell=True) as c:
            assert c.login_shell is True
            assert c.call("os", "getenv", "SREMOTE_PY_PROFILE") == "login"
    finally:
        os.remove(profile)
