"""Every example of the original sremote's documentation (../shared/seeds/
sremote-original.txt), as written there, run against real hosts: the sshd under the
configured name `remote-test` in place of remote.host.org, a real sremote-gateway in place
of NERSC's NEWT (machine `testhost` for edison), a local git repository in place of the
qdo repository on bitbucket (tests stay on loopback).

The only edits are those substitutions, the Python 2 statement `print return_value` as
the function call, and the lines that show printed output removed.
"""

import os
import re
import subprocess
import textwrap

import pytest

DEPLOYMENT = '''
    import sremote.api as remote
    import sremote.connector.ssh as ssh
    
    connector = ssh.ClientSSHConnector("remote.host.org")
    connector.auth("username")
    client = remote.RemoteClient(connector)
    client.do_bootstrap_install()
    
    #- install a python library from a git repo in the remote endpoint
     client.do_install_git_module(
             "https://bitbucket.org/berkeleylab/qdo.git", 
             "master", "qdo")
'''

SIMPLE = '''
    import sremote.api as remote
    import sremote.connector.ssh as ssh
    
    connector = ssh.ClientSSHConnector("remote.host.org")
    connector.auth("username")
    client = remote.RemoteClient(connector)
    
    #- executes os.makedirs("/tmp/mydir") in the remote host
    client.do_remote_call("os", "makedirs", args=["/tmp/mydir"])
'''

SELF_CONTAINED_SSH = '''
    import sremote.api as remote
    import sremote.connector.ssh as ssh
    
    connector = ssh.ClientSSHConnector("remote.host.org")
    connector.auth("username")
    
    client = remote.RemoteClient(connector)
    client.do_bootstrap_install()
    
    #- Previous code is only required to execute once.
    
    #- Sets a remote environment variable. It will be effective while consequent
    #  remote calls are executed. 
    client.register_remote_env_variable("myVar", "myValue")
    
    #- Execute os.getenv("myvar") and retrieve result.
    return_value, out = client.do_remote_call("os", "getenv", 
                                          args=["myVar"]
                                          ) 
    print return_value
        "myValue"
'''

SELF_CONTAINED_NEWT = '''
    import sremote.api as remote
    import sremote.connector.newt as newt
    
    connector = newt.ClientNEWTConnector("edison")
    connector.auth("username", "password")
    
    client = remote.RemoteClient(connector)
    client.do_bootstrap_install()
    
    #- Previous code is only required to execute once.
    
    #- Sets a remote environment variable. It will be effective while consequent
    #  remote calls are executed.
    client.register_remote_env_variable("myVar", "myValue")
    
    #- Execute os.getenv("myvar") and retrieve result.
    return_value, out = client.do_remote_call("os", "getenv", 
                                          args=["myVar"]
                                          ) 
    print return_value
        "myValue"
'''


def runnable(example, **subst):
    """The example as Python 3: substitutions, `print x` -> `print(x)`, shown output
    lines (indented past the code) dropped, the one stray leading space of the
    deployment example's call removed."""
    lines = []
    for line in textwrap.dedent(example).splitlines():
        if re.match(r'^\s{4,}"', line) and lines and lines[-1].startswith("print"):
            continue  # printed output shown in the documentation
        line = re.sub(r"^print (.+)$", r"print(\1)", line)
        if line.startswith(" client."):
            line = line[1:]
        lines.append(line)
    code = "\n".join(lines)
    for old, new in subst.items():
        code = code.replace(old, new)
    return code


def run(code, capsys):
    namespace = {}
    exec(compile(code, "<seed example>", "exec"), namespace)
    return namespace, capsys.readouterr().out


def git_repo(root):
    repo = root / "qdo"
    (repo / "qdo").mkdir(parents=True)
    (repo / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "qdo"\nversion = "0.1"\n')
    (repo / "qdo" / "__init__.py").write_text("def hello():\n    return 'qdo here'\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "-c", "init.defaultBranch=master"]
    for args in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "qdo"]):
        subprocess.run(git + args, cwd=repo, check=True, capture_output=True)
    return "file://%s" % repo


def ssh_subst(sshd):
    return {"remote.host.org": "remote-test", '"username"': '"%s"' % sshd.user}


def test_self_contained_ssh(hosts_config, sshd, capsys):
    ns, printed = run(runnable(SELF_CONTAINED_SSH, **ssh_subst(sshd)), capsys)
    assert ns["return_value"] == "myValue" and ns["out"] == ""
    assert printed == "myValue\n"


def test_simple_remote_operation(hosts_config, sshd, capsys):
    target = "/tmp/mydir"
    subprocess.run(["rm", "-rf", target], check=True)
    try:
        run(runnable(SIMPLE, **ssh_subst(sshd)), capsys)
        assert os.path.isdir(target)  # the sshd runs on this machine
    finally:
        subprocess.run(["rm", "-rf", target], check=True)


def test_deployment_with_git_module(hosts_config, sshd, capsys, tmp_path):
    url = git_repo(tmp_path)
    subst = dict(ssh_subst(sshd))
    subst["https://bitbucket.org/berkeleylab/qdo.git"] = url
    ns, _ = run(runnable(DEPLOYMENT, **subst), capsys)
    client = ns["client"]
    assert client.do_check_module("qdo")
    assert client.do_remote_call("qdo", "hello") == ("qdo here", "")


def test_self_contained_newt(gateway, capsys, monkeypatch):
    monkeypatch.setenv("SREMOTE_NEWT_URL", gateway.url)
    subst = {'"edison"': '"%s"' % gateway.MACHINE, '"username", "password"':
             '"%s", "%s"' % (gateway.USER, gateway.PASSWORD)}
    ns, printed = run(runnable(SELF_CONTAINED_NEWT, **subst), capsys)
    assert ns["return_value"] == "myValue" and printed == "myValue\n"


def test_drop_in_details(hosts_config, sshd, tmp_path):
    import sremote.api as remote
    import sremote.connector.ssh as ssh

    assert issubclass(remote.ExceptionRemoteExecError, remote.SremoteError)
    assert issubclass(remote.ExceptionRemoteNotSetup, remote.SremoteError)
    connector = ssh.ClientSSHConnector("remote-test")
    connector.auth(sshd.user)
    client = remote.RemoteClient(connector)
    assert client.do_remote_call("os.path", "join", args=["a", "b"]) == ("a/b", "")
    assert client.do_remote_call("os", "getenv", args={"key": "NOPE", "default": "d"})[0] == "d"
    assert client.do_remote_call("builtins", "print", args=["x"], kwargs={"end": "!"}) == (None, "x!")
    with pytest.raises(remote.ExceptionRemoteExecError) as e:
        client.do_remote_call("os", "no_such_function")
    assert e.value.kind == "FunctionNotFound"
    client.register_remote_env_variable("HOME", "/ignored", only_if_no_set=True)
    assert client.do_remote_call("os", "getenv", args=["HOME"])[0] == sshd.home
    client.register_remote_path("/opt/seed/bin")
    assert client.do_remote_call("os", "getenv", args=["PATH"])[0].startswith("/opt/seed/bin")
    assert client.do_check_module("json") and not client.do_check_module("no_such_mod_xyz")
    # Self-discovery: no file -> unchanged; a file -> its directories.
    assert connector.do_self_discovery("no-such-file.json") is False
    os.makedirs(os.path.join(sshd.home, ".sremote"), exist_ok=True)
    with open(os.path.join(sshd.home, ".sremote", "where.json"), "w") as f:
        f.write('{"sremote": "alt-sremote", "absolute_tmp": "alt-tmp"}')
    assert connector.do_self_discovery("where.json") is True
    client.do_bootstrap_install()
    assert client.do_remote_call("os", "getenv", args=["NOPE", "z"])[0] == "z"
    assert os.path.isdir(os.path.join(sshd.home, "alt-sremote", "bin"))


def test_install_packages_into_the_venv(sshd, tmp_path):
    import sremote

    pkg = tmp_path / "pkg"
    (pkg / "sremote_py_tinypkg").mkdir(parents=True)
    (pkg / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "sremote-py-tinypkg"\nversion = "0.2"\n')
    (pkg / "sremote_py_tinypkg" / "__init__.py").write_text("def twice(x):\n    return 2 * x\n")
    with sremote.Client(sshd.alias, ssh_config=sshd.ssh_config) as c:
        report = c.install_packages([str(pkg)])
        assert report["python"].endswith("venv/bin/python3")
        c.check_modules("sremote_py_tinypkg")
        assert c.call("sremote_py_tinypkg", "twice", 21) == 42
        with pytest.raises(sremote.SremoteError) as e:
            c.install_packages([str(tmp_path / "no such package dir")])
        assert "no such package dir" in str(e.value)
