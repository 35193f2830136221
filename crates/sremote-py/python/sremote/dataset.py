"""``sremote.Dataset``: remotemanager's Dataset on sremote's jobs.

A Dataset is one function and its *runs* (one set of keyword arguments each). ``run()``
submits every run as a detached job on the client's host (directly, or through a batch
system), ``wait()`` waits for them, ``fetch_results()`` collects them into ``results``
and ``errors`` (run order). The jobs live in the job store (as ``sremote jobs ls`` lists
them), so the results survive this process: running the same script again finds the runs
already done (same function, arguments and code) and only collects them.

>>> def multiply(a, b):
...     import time; time.sleep(1); return a * b
>>> ds = sremote.Dataset(multiply, client=c, name="test")
>>> ds.append_run({"a": 10, "b": 7}); ds.append_run({"a": 2, "b": 3})
>>> ds.run(); ds.wait(1, 10); ds.fetch_results(); ds.results
[70, 6]
"""

import time
from typing import Any, Dict, List, Optional

from ._sremote import RemoteError, SremoteError
from .jobs import TERMINAL, Job

__all__ = ["Dataset", "Runner"]


class Runner:
    """One run of a Dataset: its ``args`` (the keyword arguments), its ``job`` once run,
    and after ``fetch_results`` its ``result`` or ``error``."""

    def __init__(self, args: Dict[str, Any], index: int) -> None:
        self.args = dict(args)
        self.index = index
        self.job: Optional[Job] = None
        self.result: Any = None
        self.error: Optional[str] = None
        self.exception: Optional[BaseException] = None
        self.stdout: Optional[str] = None
        self.fetched = False

    @property
    def state(self) -> str:
        """'unsubmitted', or the job's state as last seen."""
        if self.job is None:
            return "unsubmitted"
        return (self.job.state or {}).get("state") or self.job.record()["state"]

    @property
    def is_finished(self) -> bool:
        return self.state in TERMINAL

    def __repr__(self) -> str:
        return "<Runner %d %r %s>" % (self.index, self.args, self.state)


class Dataset:
    """``Dataset(function, client=None, name=None, *, url=None, scheduler=None,
    resources=None, files=None, store=None)``

    ``function``: a function (yours travels by source) or ``"module.function"``.
    ``client`` (or remotemanager's ``url``): an ``sremote.Client`` or a host name
    (``"local"`` by default). ``scheduler`` and ``resources``: as ``Client.submit`` (direct
    by default, each run one job). ``name`` names the jobs (``NAME-0``, ``NAME-1``, …).
    """

    def __init__(self, function: Any, client: Any = None, name: Optional[str] = None, *,
                 url: Any = None, scheduler: Optional[str] = None,
                 resources: Optional[Dict[str, Any]] = None, files: Any = None,
                 store: Optional[str] = None) -> None:
        if client is not None and url is not None:
            raise TypeError("Dataset: give client= or url=, not both (they mean the same)")
        client = client if client is not None else url
        if client is None or isinstance(client, str):
            from . import Client
            client = Client(client or "local")
        self.function = function
        self.client = client
        self.name = name or getattr(function, "__name__", None) or str(function)
        self.scheduler = scheduler
        self.resources = resources
        self.files = files
        self.store = store
        self.runners: List[Runner] = []

    # -- runs -------------------------------------------------------------------------

    def append_run(self, args: Optional[Dict[str, Any]] = None, **kwargs: Any) -> bool:
        """Add a run with keyword arguments ``args`` (a dict, or keywords). A run with the
        same arguments as one already there is skipped (returns False), as remotemanager
        does."""
        merged = dict(args or {})
        merged.update(kwargs)
        for name in merged:
            if not isinstance(name, str):
                raise TypeError("append_run: argument names must be str, not %r" % (name,))
        if any(r.args == merged for r in self.runners):
            return False
        self.runners.append(Runner(merged, len(self.runners)))
        return True

    def run(self, force: bool = False) -> None:
        """Submit every run that has no job yet as a job (``force``: every run, again). A
        run whose call was submitted before — by this process or an earlier one — is
        reattached, not run again."""
        for r in self.runners:
            if r.job is not None and not force:
                continue
            r.job = self.client.submit(
                self.function, kwargs=r.args, resources=self.resources, scheduler=self.scheduler,
                name="%s-%d" % (self.name, r.index), files=self.files, force=force,
                store=self.store)
            r.fetched = False

    def wait(self, interval: float = 2.0, timeout: Optional[float] = None) -> None:
        """Wait until every run is finished, looking every ``interval`` seconds, at most
        ``timeout`` seconds (then the builtin ``TimeoutError``; the runs go on)."""
        self._need_jobs("wait")
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            pending = [r for r in self.runners if not self._finished(r)]
            if not pending:
                return
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                raise TimeoutError(
                    "Dataset %r: %d of %d runs not finished after %g s (%s); they go on — wait "
                    "again or fetch_results() later" % (
                        self.name, len(pending), len(self.runners), timeout,
                        ", ".join("run %d %s" % (r.index, r.state) for r in pending)))
            time.sleep(interval if deadline is None else max(min(interval, deadline - now), 0.0))

    def _finished(self, r: Runner) -> bool:
        if r.job is None:
            return False
        if r.is_finished:
            return True
        try:
            return r.job.status() in TERMINAL
        except SremoteError:
            return False  # the host is unreachable now: it is not known to be finished

    def _need_jobs(self, what: str) -> None:
        missing = [r.index for r in self.runners if r.job is None]
        if missing:
            raise RuntimeError("Dataset %r: %s needs run() first (runs %s have no job)"
                               % (self.name, what, missing))

    def fetch_results(self) -> None:
        """Collect every finished run: its value into ``results``, or its error (the text:
        kind, message, remote traceback) into ``errors``. Runs not finished yet stay
        ``None`` in both."""
        for r in self.runners:
            if r.job is None or r.fetched or not self._finished(r):
                continue
            try:
                r.result, r.stdout, _ = r.job.get_results(timeout=60)
                r.error, r.exception = None, None
            except (RemoteError, SremoteError) as e:
                r.result, r.error, r.exception = None, str(e), e
            r.fetched = True

    # -- what remotemanager users look at -------------------------------------------

    @property
    def results(self) -> List[Any]:
        """The runs' values in run order (``None`` for runs without one)."""
        return [r.result for r in self.runners]

    @property
    def errors(self) -> List[Optional[str]]:
        """The runs' errors in run order (``None`` where there is none)."""
        return [r.error for r in self.runners]

    @property
    def jobs(self) -> List[Optional[Job]]:
        return [r.job for r in self.runners]

    @property
    def is_finished(self) -> List[bool]:
        """For each run, whether it is finished (asks the host for runs still going)."""
        return [self._finished(r) for r in self.runners]

    @property
    def all_finished(self) -> bool:
        return all(self.is_finished)

    @property
    def all_success(self) -> bool:
        """Every run finished with a value (after ``fetch_results``)."""
        return all(r.fetched and r.error is None for r in self.runners)

    @property
    def failed(self) -> List[Runner]:
        """The runs that finished with an error (after ``fetch_results``)."""
        return [r for r in self.runners if r.error is not None]

    def __len__(self) -> int:
        return len(self.runners)

    def __repr__(self) -> str:
        return "<sremote.Dataset %r: %d runs on %s>" % (self.name, len(self.runners),
                                                      getattr(self.client, "name", self.client))
