"""Jobs from Python (ExPyRe's API) against real servers: a loopback sshd, the local
connector, the machine's single-node Slurm, and the `sremote` CLI sharing the job store.

Each snippet of issue 12's jobs part: `c.submit(np.sum, …, scheduler="slurm")`,
`job.get_results(timeout=600)`, `job.mark_processed()`; reattach after the Python
process was killed with SIGKILL; changed code → a new job (also through
`sremote submit --wait`)."""

import json
import os
import signal
import subprocess
import sys
import uuid

import pytest

import sremote
from jobhelpers import SLURM_PARTITION, cli, jobhosts, local_client, slurm, ssh_client  # noqa: F401 (fixtures)

CALC = "def multiply(a, b):\n    return a * b%s\n"


def test_results_output_reattach_and_listing(local_client, jobhosts):
    c = local_client
    tag = uuid.uuid4().hex
    job = c.submit("jobmod.multiply", args=[10, 7], kwargs={}, name="mul-" + tag)
    assert not job.reattached
    value, stdout, stderr = job.get_results(timeout=60)
    assert value == 70
    assert "multiplying 10 7" in stdout
    assert "on stderr" in stdout + stderr
    assert job.status() == "succeeded" and job.state["state"] == "succeeded"
    # The same call again (the same code on the host): the same job.
    again = c.submit("jobmod.multiply", args=[10, 7])
    assert again.reattached and again.id == job.id
    assert c.job(job.id).get_results(timeout=10)[0] == 70
    assert job.id in [j.id for j in c.jobs(state="succeeded")]
    # The CLI lists it from the same store, and collects it.
    listed = [json.loads(line) for line in cli(jobhosts[0], "jobs", "ls", "--json").stdout.splitlines()]
    assert any(r["id"] == job.id and r["name"] == "mul-" + tag for r in listed), listed
    assert not job.record()["processed"]
    assert cli(jobhosts[0], "jobs", "result", job.id).stdout.strip() == "70"
    assert job.record()["processed"]  # the CLI marked what it printed, in the same store
    assert "<sremote.Job %s jobmod.multiply on jobhost (succeeded)>" % job.id == repr(job)


def test_remote_error_timeout_cancel_and_logs(local_client):
    c = local_client
    failing = c.submit("jobmod.fail")
    with pytest.raises(sremote.RemoteError) as e:
        failing.get_results(timeout=60)
    assert e.value.kind == "Raised" and e.value.remote_type == "ValueError"
    assert "bad value" in str(e.value) and "jobmod.py" in e.value.traceback
    assert "about to fail" in e.value.stdout + (e.value.log or "")
    assert failing.status() == "failed"
    failing.mark_processed()
    assert failing.record()["processed"]

    slow = c.submit("jobmod.slow", args=[600, 0.1, uuid.uuid4().hex])
    with pytest.raises(TimeoutError, match="still (queued|running) after 0.5 s: it goes on"):
        slow.get_results(timeout=0.5, check_interval=0.1)
    assert slow.cancel(grace=1) == "cancelled"
    with pytest.raises(sremote.JobCancelledError) as e:
        slow.get_results(timeout=30)
    assert e.value.job_id == slow.id and isinstance(e.value, sremote.JobError)

    # A program's output streams into the log as it is written.
    script = "for i in 1 2 3; do echo line $i; sleep 0.3; done; echo done >&2"
    prog = c.submit("job.run", args=[["sh", "-c", script]])
    chunks = list(prog.logs())
    assert "".join(chunks) == "line 1\nline 2\nline 3\ndone\n"
    assert len(chunks) >= 2, chunks  # live, not one piece at the end
    assert list(prog.logs(follow=False)) == ["line 1\nline 2\nline 3\ndone\n"]
    assert prog.get_results(timeout=30)[0] == 0


def test_bad_input_is_a_clear_error(local_client, tmp_path):
    c = local_client
    with pytest.raises(ValueError, match=r'unknown key "cpus"; the keys are max_time, num_nodes, '
                                         r'num_cores, partitions, max_mem'):
        c.submit("os.getpid", resources={"cpus": 2})
    with pytest.raises(ValueError, match=r'resources\["max_time"\] = \'soon\': expected .*duration'):
        c.submit("os.getpid", resources={"max_time": "soon"})
    with pytest.raises(ValueError, match=r'resources\["num_nodes"\] = 0: expected a whole number'):
        c.submit("os.getpid", resources={"num_nodes": 0})
    with pytest.raises(ValueError, match='scheduler="lsf": use .slurm., .sge., .pbs., .direct.'):
        c.submit("os.getpid", scheduler="lsf")
    with pytest.raises(ValueError, match="name the function as 'module.function'"):
        c.submit("getpid")
    with pytest.raises(TypeError, match="cannot be sent to the host"):
        c.submit("jobmod.multiply", args=[object(), 1])
    with pytest.raises(FileNotFoundError, match="is not a file here"):
        c.submit("os.getpid", files=[tmp_path / "missing.txt"])
    with pytest.raises(sremote.JobError, match="no job nope in the job store"):
        c.job("nope")


def test_input_files_are_part_of_the_identity(local_client, tmp_path):
    c = local_client
    data = tmp_path / "input.txt"
    data.write_text("first")
    read = lambda: c.submit("fs.read_text", args=["input.txt"], files=[data])  # noqa: E731
    one = read()
    assert one.get_results(timeout=60)[0] == "first"
    assert read().id == one.id
    data.write_text("second")
    two = read()
    assert two.id != one.id and two.get_results(timeout=60)[0] == "second"
    renamed = c.submit("fs.read_text", args=["data.txt"], files={"data.txt": data})
    assert renamed.get_results(timeout=60)[0] == "second"


def test_changed_code_is_a_new_job_also_through_the_cli(ssh_client, jobhosts):
    config, moddir = jobhosts
    c = ssh_client
    calc = moddir / "calc.py"
    calc.write_text(CALC % "")
    first = c.submit("calc.multiply", args=[10, 7])
    assert first.get_results(timeout=60)[0] == 70
    assert c.submit("calc.multiply", args=[10, 7]).id == first.id
    calc.write_text(CALC % " + 1000")
    changed = c.submit("calc.multiply", args=[10, 7])
    assert changed.id != first.id and not changed.reattached
    assert changed.get_results(timeout=60)[0] == 1070
    # The CLI sees the same identity (same store, same code): it reattaches to that job…
    p = cli(config, "submit", "--wait", "jobssh", "calc", "multiply", "10", "7")
    assert p.stdout.split() == [changed.id, "1070"], p.stdout
    assert "submitted before as job %s" % changed.id in p.stderr
    # …and changed code is a new job for it too (issue 12: it printed the stale 70).
    # (A change of another size: Python itself would run a stale __pycache__ entry for a
    # same-size rewrite within the same second — its pyc check is mtime seconds + size.)
    calc.write_text(CALC % " + 20000")
    p = cli(config, "submit", "--wait", "jobssh", "calc", "multiply", "10", "7")
    new_id, value = p.stdout.split()
    assert value == "20070" and new_id not in (first.id, changed.id)
    # Python reattaches to the CLI's job.
    assert c.submit("calc.multiply", args=[10, 7]).id == new_id


KILLED_SCRIPT = '''
import sys, sremote
c = sremote.Client("jobssh", config=sys.argv[1])
job = c.submit("jobmod.slow", args=[6, 0.5, sys.argv[2]], name="killed-" + sys.argv[2])
print(job.id, job.reattached, flush=True)
value, stdout, stderr = job.get_results(timeout=120)
print("RESULT", value[0], value[1], stdout.count("line"), flush=True)
'''


def test_rerun_after_sigkill_reattaches(jobhosts, tmp_path):
    config, _ = jobhosts
    script = tmp_path / "expensive_step.py"
    script.write_text(KILLED_SCRIPT)
    tag = uuid.uuid4().hex
    argv = [sys.executable, str(script), str(config), tag]
    first = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    job_id, reattached = first.stdout.readline().split()
    assert reattached == "False"
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    assert first.returncode == -signal.SIGKILL
    # The same script again: the same job (not a second one), and its result.
    second = subprocess.run(argv, capture_output=True, text=True, timeout=180)
    assert second.returncode == 0, second.stderr
    lines = second.stdout.splitlines()
    assert lines[0] == "%s True" % job_id, lines
    assert lines[1] == "RESULT 6 %s 6" % tag, lines
    named = [r for r in sremote.Job.list() if r["name"] == "killed-" + tag]
    assert [r["id"] for r in named] == [job_id]
    # Another process attaches by id alone (the host from the store, the config by name).
    attach = "import sremote; print(sremote.Job.attach(%r).get_results(timeout=30)[0])" % job_id
    out = subprocess.run([sys.executable, "-c", attach], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, SREMOTE_CONFIG=str(config)))
    assert out.stdout.strip() == "[6, %r]" % tag, out.stderr


def test_expyre_numpy_sum_through_slurm(ssh_client, slurm, jobhosts):
    import numpy as np

    c = ssh_client
    job = c.submit(np.sum, args=[[[1, 1], [2, 2]]], kwargs={"axis": 1},
                   resources={"max_time": "1h", "num_nodes": 1, "partitions": SLURM_PARTITION},
                   scheduler="slurm", force=True)
    record = job.record()
    assert record["scheduler"] == "slurm" and record["scheduler_id"], record
    assert record["partition"] == SLURM_PARTITION
    assert (record["module"], record["function"]) in (("numpy", "sum"), ("py:numpy", "sum")), record
    value, stdout, stderr = job.get_results(timeout=600)
    assert value == [2, 4]
    job.mark_processed()
    listed = [json.loads(line) for line in cli(jobhosts[0], "jobs", "ls", "--json").stdout.splitlines()]
    mine = [r for r in listed if r["id"] == job.id]
    assert mine and mine[0]["processed"] and mine[0]["scheduler"] == "slurm", mine
    # A partition list: the smallest fitting one of those the cluster has (from sinfo).
    other = c.submit("os.getpid", resources={"max_time": 600, "partitions": ["nope", SLURM_PARTITION],
                                             "num_cores": 1, "max_mem": "100MB"},
                     scheduler="slurm", force=True)
    assert other.record()["partition"] == SLURM_PARTITION
    assert isinstance(other.get_results(timeout=600)[0], int)


def test_a_function_that_cannot_travel_is_a_clear_error(local_client):
    def make():
        x = object()

        def f():
            return x
        return f

    with pytest.raises(TypeError, match=r"closes over local variables .*\(x\).*pass them as arguments"):
        local_client.submit(make())
    assert not [r for r in sremote.Job.list() if r["function"].endswith("<locals>.f")]
