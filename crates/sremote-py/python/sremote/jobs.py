"""Detached jobs from Python, with ExPyRe's names: ``Client.submit`` → :class:`Job`.

A job runs on the host detached from this process (directly, or through Slurm, Grid
Engine or PBS) and survives it: its result waits on the host until collected. Jobs are
recorded in the same SQLite store as the command line's (``$SREMOTE_JOBS_DB``, else
``~/.local/share/sremote/jobs.sqlite3``), so ``sremote jobs ls`` lists them and a job
submitted here can be collected there, and the other way round.

**Reattach**: the same call submitted again — same host, function, arguments, input
files and the same code (the shipped source, the module file on the host, the plugin,
the endpoint) — is the same job: rerunning a script after it was killed picks up its
jobs instead of submitting them again. Changed code is a new job. ``force=True``
always submits anew.

>>> import numpy as np, sremote
>>> c = sremote.Client("cluster")
>>> job = c.submit(np.sum, args=[[[1, 1], [2, 2]]], kwargs={"axis": 1},
...                resources={"max_time": "1h", "num_nodes": 1, "partitions": "debug"},
...                scheduler="slurm")
>>> value, stdout, stderr = job.get_results(timeout=600)     # [2, 4]
>>> job.mark_processed()                                     # `sremote jobs rm --processed`
"""

import codecs
import os
import time
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from . import _sremote
from ._sremote import JobCancelledError, JobDiedError, JobError, RemoteError, TransportError

__all__ = ["Job", "JobsMixin", "JobError", "JobDiedError", "JobCancelledError", "TERMINAL"]

#: States after which a job does not change any more.
TERMINAL = ("succeeded", "failed", "cancelled", "died")

#: How long a lost connection is retried while waiting for a job.
_RECONNECT_FOR = 120.0


def _target(f: Any) -> Tuple[str, str, List[Tuple[str, str]]]:
    """``(module, function, code)`` for a function object or a ``"module.function"`` string.

    Functions travel as ``sremote._ship.describe`` says (their source when the host does
    not have them); an installed module's function (``np.sum``) is called by name.
    """
    if isinstance(f, str):
        module, _, function = f.rpartition(".")
        if not module or not function:
            raise ValueError(
                "submit(%r): name the function as 'module.function' (e.g. 'os.getenv'), or pass "
                "the function itself" % (f,))
        return module, function, []
    if getattr(f, "__sremote_target__", False):  # e.g. a notebook cell made a function
        return f.module, f.function, [(str(n), str(s)) for n, s in f.code]
    if not callable(f):
        raise TypeError("submit(): the first argument must be a function or a 'module.function' "
                        "string, not %s" % type(f).__name__)
    from ._ship import describe  # ShipError (a TypeError) says what cannot travel and why

    module, function, code = describe(f)
    return module, function, [(str(n), str(s)) for n, s in code]


def _files(files: Any) -> List[Tuple[str, str]]:
    """``files=``: paths (each lands in the job's working directory under its base name) or a
    mapping ``{name_in_job_dir: local_path}``."""
    if files is None:
        return []
    if isinstance(files, (str, os.PathLike)):
        files = [files]
    pairs = []
    items = files.items() if isinstance(files, Mapping) else ((None, p) for p in files)
    for name, path in items:
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError("submit(files=...): %r is not a file here" % path)
        pairs.append((path, name if name is not None else os.path.basename(path)))
    return pairs


class Job:
    """A detached call on a host: ``status()``, ``get_results()``, ``logs()``, ``cancel()``,
    ``mark_processed()``. Made by ``Client.submit``, ``Client.job(id)`` or
    ``Job.attach(id)``.

    ``id`` (the job id, as ``sremote jobs`` shows it), ``host``, ``reattached`` (``submit``
    found the same call submitted before), ``state`` (the details of the last
    ``status()``: a dict with ``state``, ``failure_class``, ``failure``, ``scheduler``,
    ``log_bytes``, ``ran_on``).
    """

    def __init__(self, native: Any, client: Any = None) -> None:
        self._native = native
        self._client = client
        self.state: Optional[Dict[str, Any]] = None

    # -- identity -------------------------------------------------------------------

    @property
    def id(self) -> str:
        return self._native.id

    @property
    def host(self) -> str:
        return self._native.host

    @property
    def reattached(self) -> bool:
        return self._native.reattached

    @property
    def client(self) -> Any:
        return self._client

    def record(self) -> Dict[str, Any]:
        """The job store's record: id, host, state, name, module, function, scheduler,
        scheduler_id, partition, remote_dir, failure_class, failure, processed, submitted,
        finished (Unix seconds)."""
        return self._native.record()

    @classmethod
    def attach(cls, id: str, client: Any = None, store: Optional[str] = None) -> "Job":
        """The job ``id`` from the job store (the one ``sremote jobs ls`` lists), reached
        through ``client`` — by default a client of the host it was submitted to."""
        if client is None:
            record = _sremote.job_records(id=id, store_path=store)[0]
            from . import Client
            client = Client(record["host"])
        return cls(_sremote.open_job(client, id, store_path=store), client)

    @staticmethod
    def list(host: Optional[str] = None, state: Optional[str] = None,
             store: Optional[str] = None) -> List[Dict[str, Any]]:
        """The records of the job store (oldest first), like ``sremote jobs ls``: all, or
        those of ``host`` / in ``state`` ('running', 'succeeded', …)."""
        return list(_sremote.job_records(host=host, state=state, store_path=store))

    # -- state ----------------------------------------------------------------------

    def status(self) -> str:
        """Ask the host (and its batch system) where the job is: 'submitting', 'queued',
        'running', 'succeeded', 'failed', 'cancelled' or 'died' (as ``sremote jobs ls``).
        The details are in ``job.state``."""
        self.state = self._native.status()
        return self.state["state"]

    def wait(self, timeout: Optional[float] = None, check_interval: Optional[float] = None) -> str:
        """Wait until the job is over; its final state. ``timeout`` seconds at most (None:
        as long as it takes), then the builtin ``TimeoutError`` (the job goes on).
        ``check_interval``: seconds between looks at the host (default: from 0.1 s growing
        to 5 s). A lost connection is retried for two minutes."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.1 if check_interval is None else max(float(check_interval), 0.01)
        failing_since = None
        while True:
            try:
                state = self.status()
                failing_since = None
                if state in TERMINAL:
                    return state
            except TransportError:
                now = time.monotonic()
                if failing_since is None:
                    failing_since = now
                elif now - failing_since > _RECONNECT_FOR:
                    raise
                state = (self.state or {}).get("state", "unknown")
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                raise TimeoutError(
                    "job %s on %s is still %s after %g s: it goes on — call get_results() again "
                    "later (also from another process: sremote.Job.attach(%r)), or cancel() it"
                    % (self.id, self.host, state, timeout, self.id))
            sleep = pause if deadline is None else min(pause, deadline - now)
            time.sleep(max(sleep, 0.0))
            if check_interval is None:
                pause = min(pause * 1.5, 5.0)

    def get_results(self, timeout: Optional[float] = None,
                    check_interval: Optional[float] = None) -> Tuple[Any, str, str]:
        """``(value, stdout, stderr)`` of the finished job, waiting for it as ``wait`` does
        (``TimeoutError`` when ``timeout`` runs out; the job goes on).

        ``stdout`` and ``stderr`` are what the call printed on each (the first 8 MiB and the
        last 1 MiB of each; the job's log has all of it, both streams interleaved as
        written: ``logs()``).
        A call that raised raises ``RemoteError`` (``.kind``, ``.remote_type``,
        ``.traceback``; ``.log`` the job's log); a job that ended without a result raises
        ``JobDiedError`` (``.failure_class``: walltime, memory, …) or
        ``JobCancelledError``.
        """
        self.wait(timeout, check_interval)
        try:
            value, out, err = self._native.result()
        except RemoteError as e:
            try:
                e.log = self._read_log()
            except Exception:  # the error says what happened; the log is extra
                e.log = None
            raise
        # The response holds the output per stream (the same bytes went live to the log).
        return value, out, err

    def _read_log(self) -> str:
        chunks, offset = [], 0
        while True:
            data, offset = self._native.log(offset)
            if not data:
                return b"".join(chunks).decode("utf-8", "replace")
            chunks.append(data)

    def logs(self, follow: bool = True, interval: float = 0.5) -> Iterator[str]:
        """The job's log as text chunks, as they are written: ``for text in job.logs():
        print(text, end="")``. ``follow=False`` gives what is there now and stops; with
        ``follow`` (default) the iterator ends after the last byte of a finished job."""
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        offset, over = 0, False
        while True:
            data, next_offset = self._native.log(offset)
            if data:
                offset = next_offset
                text = decoder.decode(data)
                if text:
                    yield text
                continue
            if not follow or over:
                break
            # Over: one more read after this look picks up the last bytes, then stop.
            over = self.status() in TERMINAL
            if not over:
                time.sleep(interval)
        tail = decoder.decode(b"", final=True)
        if tail:
            yield tail

    # -- actions --------------------------------------------------------------------

    def mark_processed(self) -> None:
        """Record that the result was handled (ExPyRe's ``mark_processed``):
        ``sremote jobs rm --processed`` then removes the job here and on the host."""
        self._native.mark_processed()

    def cancel(self, grace: float = 10.0) -> str:
        """Cancel the job: SIGTERM to what it runs, SIGKILL after ``grace`` seconds, and the
        batch system's cancel (``scancel``/``qdel``); returns its final state."""
        self.state = self._native.cancel(grace)
        return self.state["state"]

    def clean(self) -> None:
        """Remove the job's directory on the host and its record (cancel it first if it
        runs)."""
        self._native.clean()

    def __repr__(self) -> str:
        r = self.record()
        return "<sremote.Job %s %s.%s on %s (%s)>" % (
            r["id"], r["module"], r["function"], r["host"], r["state"])


class JobsMixin:
    """``submit``, ``job`` and ``jobs`` for ``sremote.Client``."""

    def submit(self, f: Any, args: Sequence[Any] = (), kwargs: Optional[Dict[str, Any]] = None,
               resources: Optional[Dict[str, Any]] = None, scheduler: Optional[str] = None,
               name: Optional[str] = None, files: Union[None, Iterable[Any], Mapping[str, Any]] = None,
               force: bool = False, store: Optional[str] = None) -> Job:
        """Submit ``f(*args, **kwargs)`` as a detached job on this host; a :class:`Job`.

        ``f``: a function (yours travels by source; an installed module's, like ``np.sum``,
        is called by name) or a ``"module.function"`` string. ``scheduler``: 'slurm',
        'sge', 'pbs', 'direct' (detached on the host) or None (the host's ``scheduler``
        in the hosts config, else direct). ``resources`` (ExPyRe's keys): ``max_time``
        ('1h', '30m', '1:30:00' or seconds), ``num_nodes``, ``num_cores`` (the job's total,
        spread over ``num_nodes``), ``partitions`` (a name, or a list to choose the
        smallest fitting one from the hosts config's ``partitions``, else from ``sinfo``),
        ``max_mem`` ('4G', '512MB' or bytes), ``gpus`` (per node), ``header`` (extra batch
        script lines); without ``partitions`` the smallest fitting partition is chosen.
        ``files``: local files copied into the job's working directory first (paths, or
        ``{name: path}``); their content is part of the job's identity. ``name``: for
        people and the batch system. ``force``: submit even if the same call was
        submitted before (default: reattach to it). ``store``: another job store file.
        """
        module, function, code = _target(f)
        native = _sremote.submit_job(
            self, module, function, list(args), dict(kwargs or {}), code=code,
            resources=dict(resources) if resources is not None else None,
            scheduler=scheduler, name=name, files=_files(files), force=force,
            store_path=store)
        return Job(native, self)

    def job(self, id: str, store: Optional[str] = None) -> Job:
        """The job ``id`` of the job store, through this client."""
        return Job(_sremote.open_job(self, id, store_path=store), self)

    def jobs(self, state: Optional[str] = None, store: Optional[str] = None) -> List[Job]:
        """This host's jobs in the job store (oldest first), optionally only those in
        ``state``."""
        records = _sremote.job_records(host=self.name, state=state, store_path=store)
        return [self.job(r["id"], store=store) for r in records]
