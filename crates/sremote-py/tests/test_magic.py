"""The notebook magics, tested by executing a real notebook headless (nbclient + an
ipykernel running this venv's Python), against the loopback sshd: ``%load_ext sremote``,
``%%sremote HOST --push a,b --pull c`` on the host's persistent namespace, and remotemanager's
``%%sanzu`` with ``magic_dataset``."""

import os

import pytest

from jobhelpers import jobhosts  # noqa: F401 (fixture)

nbformat = pytest.importorskip("nbformat", reason="the notebook test needs nbformat (scripts/test-python.sh installs it)")
nbclient = pytest.importorskip("nbclient", reason="the notebook test needs nbclient (scripts/test-python.sh installs it)")


def kernel_can_start():
    """Skip (saying why) when no Python kernel can start here; the notebook runs after."""
    from jupyter_client.manager import start_new_kernel
    try:
        km, kc = start_new_kernel(kernel_name="python3", startup_timeout=120)
    except Exception as e:  # no kernelspec, no ipykernel, a kernel that dies at start
        pytest.skip("the notebook kernel cannot start here: %s: %s" % (type(e).__name__, e))
    kc.stop_channels()
    km.shutdown_kernel(now=True)


def text_of(cell):
    out = []
    for o in cell.outputs:
        if o.output_type == "stream":
            out.append(o.text)
        elif o.output_type == "execute_result":
            out.append(o.data.get("text/plain", ""))
        elif o.output_type == "error":
            out.append("%s: %s" % (o.ename, o.evalue))
    return "".join(out)


def run_notebook(cells, config, cwd):
    """Execute ``cells`` in a fresh kernel (errors stay in the outputs); their texts."""
    kernel_can_start()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=True,
                                     resources={"metadata": {"path": str(cwd)}})
    old = dict(os.environ)
    os.environ["SREMOTE_CONFIG"] = config  # the kernel inherits it (and HOME: the job store)
    try:
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(old)
    return [text_of(c) for c in nb.cells]


def test_sremote_cell_magic(jobhosts, tmp_path):
    config = str(jobhosts[0])
    out = run_notebook([
        "%load_ext sremote",
        "a = 5\nb = [1, 2]",
        "%%%%sremote jobssh --config %s --push a,b --pull c\n"
        "import os\nc = a * 2 + sum(b)\nhost_pid = os.getpid()\nprint('on the host', c)" % config,
        "print('here', c)",
        # The namespace persists between cells (host_pid, c); several pulls at once.
        "%%%%sremote jobssh --config %s --pull same,d\nsame = host_pid == os.getpid()\nd = c + 1" % config,
        "print(same, d)",
        # Errors: the remote traceback; a bad magic line names the form.
        "%%%%sremote jobssh --config %s\n1 / 0" % config,
        "%%sremote --push a\npass",
        "%%sremote jobssh --push nothere\npass",
    ], config, tmp_path)
    assert out[0] == "", out[0]
    assert out[2] == "on the host 13\n", out[2]
    assert out[3] == "here 13\n", out[3]
    assert out[4] == "", out[4]
    assert out[5] == "True 14\n", out[5]
    assert "RemoteError" in out[6] and "ZeroDivisionError" in out[6], out[6]
    assert "MagicError: %%sremote: name the host; usage: %%sremote HOST" in out[7], out[7]
    assert "NameError: %%sremote --push: nothere not defined in the notebook" in out[8], out[8]


def test_sanzu_magic_and_magic_dataset(jobhosts, tmp_path):
    config = str(jobhosts[0])
    out = run_notebook([
        "%load_ext sremote",
        "import sremote\nclient = sremote.magic.client_for('jobssh', %r)" % config,
        # remotemanager's %%sanzu: the cell becomes a function of the %%sargs, run as a job.
        "%%sanzu url=client name='cell'\n%%sargs a=10\n%%sargs b=7\n\nprint('in the job')\na * b",
        "print(magic_dataset.results, magic_dataset.errors, sremote.magic_dataset is magic_dataset)",
        "%%sanzu url=client\n%%sargs\nx = 'text'\nx.upper()",
        "%%sanzu url=client\nraise KeyError('k')",
        "%%sanzu nope=1\n1",
    ], config, tmp_path)
    assert out[2] == "in the job\n70", out[2]
    assert out[3] == "[70] [None] True\n", out[3]
    assert out[4] == "'TEXT'", out[4]
    assert "RemoteError" in out[5] and "KeyError" in out[5], out[5]
    assert "MagicError: %%sanzu: unknown option(s) nope" in out[6], out[6]
