"""Your own functions on the host: ``apply``, ``apply_async``, ``@remote`` and ``map``
(IPython parallel's names), on top of ``sremote._ship`` (how a function travels).

>>> def multiply(a, b):
...     return a * b
>>> c.apply(multiply, 10, 7)
70
>>> c.map(multiply, [1, 2, 3], [4, 5, 6])
[4, 10, 18]
"""

import functools
from typing import Any, Callable, Iterable, List, Optional, Tuple

from ._ship import ShipError, describe

__all__ = ["FunctionsMixin", "RemoteFunction", "ShipError"]

#: Calls ``map`` keeps in flight by default (the host's Python workers run as many as
#: they are; the others wait there).
MAP_CONCURRENCY = 64


class FunctionsMixin:
    """Methods of ``sremote.Client`` for functions written by you."""

    def apply(self, f: Any, *args: Any, **kwargs: Any) -> Any:
        """``f(*args, **kwargs)`` on the host; returns its value (IPython's
        ``view.apply_sync``). ``f`` is a function (yours travels by source; one of an
        installed module such as ``np.sum`` is called by name) or ``"module.function"``.
        What it prints goes to this process's stdout and stderr.

        >>> c.apply(multiply, 10, 7)
        70
        """
        out = self.apply_output(f, *args, **kwargs)
        _echo(out)
        return out.value

    def apply_output(self, f: Any, *args: Any, **kwargs: Any) -> Any:
        """Like ``apply``, returning the ``CallOutput`` (``.value``, ``.stdout``,
        ``.stderr``, ``.meta``) instead of printing the output."""
        module, function, code = describe(f)
        if code:
            return self._call_shipped(module, function, code, args, kwargs)
        return self.call_output(module, function, *args, **kwargs)

    def apply_async(self, f: Any, *args: Any, **kwargs: Any) -> Any:
        """Start ``f(*args, **kwargs)`` on the host; returns an ``AsyncResult``
        (``.get(timeout)``, ``.ready()``, ``.cancel()``, ``.stdout``…)."""
        module, function, code = describe(f)
        if code:
            return self._call_shipped_async(module, function, code, args, kwargs)
        return self.call_async(module, function, *args, **kwargs)

    def remote(self, f: Optional[Callable[..., Any]] = None, *, block: bool = True) -> Any:
        """Decorator: calling the function runs it on the host (IPython's
        ``@view.remote``). ``block=False`` makes calls return ``AsyncResult``s.

        >>> @c.remote(block=True)
        ... def getpid():
        ...     import os
        ...     return os.getpid()
        >>> getpid()          # the pid on the host
        """
        def wrap(func: Callable[..., Any]) -> "RemoteFunction":
            return RemoteFunction(self, func, block)
        return wrap(f) if f is not None else wrap

    def set_workers(self, n: int) -> int:
        """Run up to ``n`` Python calls of this client at once on the host (default: the
        host's CPU count); returns the size now. The pool belongs to the session: after a
        reconnect, set it again. Namespace operations (``execute``, ``run``) have their
        own worker and never wait for these."""
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError("set_workers needs a whole number of workers, at least 1 (got %r)" % (n,))
        return self.call("session", "python_workers", n)

    def map(self, f: Any, *iterables: Iterable[Any], concurrency: int = MAP_CONCURRENCY) -> List[Any]:
        """``[f(*xs) for xs in zip(*iterables)]`` on the host, in parallel (the host runs
        a pool of Python workers), results in order. The first failure is raised (the
        calls still running are cancelled). The older form ``map(module, function,
        iterable)`` still works.

        >>> c.map(multiply, [1, 2, 3], [4, 5, 6])
        [4, 10, 18]
        """
        if isinstance(f, str) and iterables and isinstance(iterables[0], str):
            f, iterables = "%s.%s" % (f, iterables[0]), iterables[1:]
        if not iterables:
            raise TypeError("map() needs at least one iterable of arguments")
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        module, function, code = describe(f)
        items: List[Tuple[Any, ...]] = list(zip(*iterables))

        def start(xs: Tuple[Any, ...]) -> Any:
            if code:
                return self._call_shipped_async(module, function, code, xs, None)
            return self.call_async(module, function, *xs)

        return _gather(items, start, concurrency)


def _gather(items: List[Tuple[Any, ...]], start: Callable[[Tuple[Any, ...]], Any], concurrency: int) -> List[Any]:
    results: List[Any] = [None] * len(items)
    running: List[Tuple[int, Any]] = []
    try:
        for i, xs in enumerate(items):
            if len(running) >= concurrency:
                j, ar = running.pop(0)
                results[j] = ar.get()
            running.append((i, start(xs)))
        while running:
            j, ar = running.pop(0)
            results[j] = ar.get()
    except BaseException:
        for _, ar in running:
            try:
                ar.cancel()
            except Exception:
                pass
        raise
    return results


def _echo(out: Any) -> None:
    import sys
    if out.stdout:
        sys.stdout.write(out.stdout)
    if out.stderr:
        sys.stderr.write(out.stderr)


class RemoteFunction:
    """A function that runs on a host when called (made by ``Client.remote``).

    ``.map(*iterables)`` runs it over arguments in parallel; ``.func`` is the plain
    function; ``.client`` the client."""

    def __init__(self, client: Any, func: Callable[..., Any], block: bool) -> None:
        self.client, self.func, self.block = client, func, block
        self.__sremote_function__ = func
        functools.update_wrapper(self, func)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.block:
            return self.client.apply(self.func, *args, **kwargs)
        return self.client.apply_async(self.func, *args, **kwargs)

    def map(self, *iterables: Iterable[Any], concurrency: int = MAP_CONCURRENCY) -> List[Any]:
        return self.client.map(self.func, *iterables, concurrency=concurrency)

    def __repr__(self) -> str:
        return "<remote function %s on %s>" % (self.func.__qualname__, self.client.host)
