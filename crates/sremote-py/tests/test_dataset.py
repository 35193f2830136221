"""sremote.Dataset (remotemanager's names) against real servers: a loopback sshd and the
machine's single-node Slurm. Each run is a job, so results survive the Python process and
a rerun — also in a new process — skips the runs already done."""

import subprocess
import sys
import uuid

import pytest

import sremote
from jobhelpers import SLURM_PARTITION, jobhosts, slurm, ssh_client  # noqa: F401 (fixtures)


def test_remotemanager_quickstart(ssh_client):
    c = ssh_client
    ds = sremote.Dataset("jobmod.multiply_slow", client=c, name="test")
    ds.append_run({"a": 10, "b": 7})
    ds.append_run({"a": 2, "b": 3})
    assert ds.append_run({"a": 2, "b": 3}) is False  # the same run twice is one run
    ds.run()
    ds.wait(1, 10)
    ds.fetch_results()
    assert ds.results == [70, 6]
    assert ds.errors == [None, None]
    assert ds.is_finished == [True, True] and ds.all_finished and ds.all_success
    assert [j.record()["name"] for j in ds.jobs] == ["test-0", "test-1"]
    # run() again does nothing new; force runs everything again as new jobs.
    ids = [j.id for j in ds.jobs]
    ds.run()
    assert [j.id for j in ds.jobs] == ids
    ds.run(force=True)
    assert not set(j.id for j in ds.jobs) & set(ids)
    ds.wait(0.5, 30)
    ds.fetch_results()
    assert ds.results == [70, 6]


def test_errors_in_run_order_and_wait_timeout(ssh_client):
    c = ssh_client
    ds = sremote.Dataset("jobmod.multiply", client=c, name="errors")
    ds.append_run(a=3, b=4)
    ds.append_run({"a": "x", "b": None})
    ds.append_run(a=[1], b=2)
    ds.run()
    ds.wait(0.2, 60)
    ds.fetch_results()
    assert ds.results == [12, None, [1, 1]]
    assert ds.errors[0] is None and ds.errors[2] is None
    assert "TypeError" in ds.errors[1] and "jobmod.py" in ds.errors[1]
    assert [r.index for r in ds.failed] == [1] and not ds.all_success
    assert isinstance(ds.runners[1].exception, sremote.RemoteError)

    slow = sremote.Dataset("jobmod.slow", client=c, name="slow")
    slow.append_run(n=600, pause=0.1, tag=uuid.uuid4().hex)
    with pytest.raises(RuntimeError, match="needs run"):
        slow.wait(0.1, 1)
    slow.run()
    with pytest.raises(TimeoutError, match="1 of 1 runs not finished after 0.5 s"):
        slow.wait(0.1, 0.5)
    slow.fetch_results()
    assert slow.results == [None] and slow.errors == [None]
    assert slow.jobs[0].cancel(grace=1) == "cancelled"
    slow.fetch_results()
    assert "cancelled" in slow.errors[0]


RERUN = '''
import sys, sremote
c = sremote.Client("jobssh", config=sys.argv[1])
ds = sremote.Dataset("jobmod.multiply_slow", client=c, name="rerun-" + sys.argv[2])
for a in range(3):
    ds.append_run({"a": a, "b": sys.argv[2]})
ds.run()
ds.wait(0.5, 60)
ds.fetch_results()
print(([j.reattached for j in ds.jobs], [j.id for j in ds.jobs], ds.results))
'''


def test_rerun_in_a_new_process_skips_runs_done(jobhosts, tmp_path):
    script = tmp_path / "dataset_script.py"
    script.write_text(RERUN)
    tag = "t" + uuid.uuid4().hex[:6]
    run = lambda: subprocess.run([sys.executable, str(script), str(jobhosts[0]), tag],  # noqa: E731
                                 capture_output=True, text=True, timeout=180)
    first = run()
    assert first.returncode == 0, first.stderr
    second = run()
    assert second.returncode == 0, second.stderr
    expected = ["", tag, tag * 2]
    reattached, ids, results = eval(first.stdout)
    assert reattached == [False] * 3 and results == expected
    reattached2, ids2, results2 = eval(second.stdout)
    assert reattached2 == [True] * 3 and ids2 == ids and results2 == expected
    assert len([r for r in sremote.Job.list() if r["name"].startswith("rerun-" + tag)]) == 3


QUICKSTART = '''
import sys, sremote
c = sremote.Client("jobssh", config=sys.argv[1])

def multiply(a, b):
    import time; time.sleep(1); return a * b%s

ds = sremote.Dataset(multiply, client=c, name="test")     # remotemanager
ds.append_run({"a": 10, "b": 7}); ds.append_run({"a": 2, "b": 3})
ds.run(); ds.wait(1, 10); ds.fetch_results()
print(repr((ds.results, ds.errors, [j.id for j in ds.jobs], [j.reattached for j in ds.jobs])))
'''


def test_quickstart_with_a_function_of_the_script(jobhosts, tmp_path):
    """The issue's snippet as a script: `multiply` defined in __main__ travels by source;
    rerun, the runs are found; changed, they are new jobs with the new results."""
    script = tmp_path / "quickstart.py"

    def run(change):
        script.write_text(QUICKSTART % change)
        p = subprocess.run([sys.executable, str(script), str(jobhosts[0])], capture_output=True,
                           text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        return eval(p.stdout)

    results, errors, ids, reattached = run("")
    assert (results, errors) == ([70, 6], [None, None])
    again = run("")
    assert again[0] == [70, 6] and again[2] == ids and again[3] == [True, True]
    changed = run(" + 1000")
    assert changed[0] == [1070, 1006] and not set(changed[2]) & set(ids) and changed[3] == [False, False]


def test_runs_through_slurm(ssh_client, slurm):
    ds = sremote.Dataset("jobmod.multiply", client=ssh_client, name="slurm-ds", scheduler="slurm",
                         resources={"max_time": "10m", "partitions": SLURM_PARTITION})
    ds.append_run({"a": 6, "b": 7})
    ds.append_run({"a": 1, "b": -1})
    ds.run()
    assert all(j.record()["scheduler"] == "slurm" and j.record()["scheduler_id"] for j in ds.jobs)
    ds.wait(0.5, 300)
    ds.fetch_results()
    assert ds.results == [42, -1] and ds.errors == [None, None]
