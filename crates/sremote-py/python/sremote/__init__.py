"""sremote: run functions and programs on other machines, from Python.

A binding over the Rust sremote client (the same code as the ``sremote`` command):
hosts are ``"local"``, any ssh destination (``user@host``, ``ssh://user@host:port``, an
alias from your ssh config), a ``newt+https://USER@GATEWAY/BASE/MACHINE`` URL, or a name
from the hosts config (``~/.config/sremote/config.toml``).

>>> import sremote
>>> with sremote.Client("local") as c:
...     c.call("os", "getenv", "HOME")                 # -> '/home/alice'
...     c.call("datetime", "date.today")               # dotted attributes work
...     out = c.call_output("subprocess", "run", ["hostname"])   # .value .stdout .stderr .meta
...     ar = c.call_async("time", "sleep", 1); ar.get(timeout=5)
...     c.push({"a": [1, 2, 3]}); c.call("builtins", "len", sremote.Reference("a"))  # -> 3

Values (both directions, see PROTOCOL.md "Python bridge"):

- ``None``, ``bool``, ``int``, ``float``, ``str``, ``list``, ``dict`` travel as JSON;
  tuples and sets arrive as lists; dict keys must be ``str`` (int, float, bool and None
  keys become their text).
- ``bytes``/``bytearray``/``memoryview`` travel raw (no base64 in session mode) and come
  back as ``bytes``.
- ints: exact. Beyond 64 bits an argument travels as ``{"$int": "<decimal>"}`` and is an
  ``int`` again in a Python function on the host; a big int *returned* by the host
  arrives as its decimal ``str`` (``int(value)`` gives it back).
- ``datetime``/``date``/``time`` arguments travel as ISO 8601 text
  (``datetime.fromisoformat`` reads it back); returned ones arrive as that text.
- numpy arrays and scalars, ``array.array`` — anything with a callable ``.tolist()`` —
  travel as what ``.tolist()`` returns; ``os.PathLike`` as its path.
- ``Reference(name)`` is replaced on the host by the value pushed under ``name``.
- Anything else raises ``TypeError`` naming its type, before anything is sent.

Errors: ``SremoteError`` and its subclasses ``TransportError`` (``.kind``),
``NotSetupError``, ``RemoteError`` (``.kind``, ``.remote_type``, ``.message``,
``.traceback``, ``.stdout``, ``.stderr``), ``ModulesMissingError``, ``ProtocolError``,
``DecodeError``, ``UsageError``, ``SetupError`` (``.line``, ``.text``, ``.status``,
``.output``, ``.host``: a ``setup`` line failed on the host).
"""

import asyncio
import concurrent.futures
from typing import Any, Dict, List, Tuple, Union

from ._sremote import (  # noqa: F401  (re-exported)
    AsyncResult,
    CallOutput,
    Connector,
    DecodeError,
    ExecResult,
    LocalConnector,
    ModulesMissingError,
    NewtConnector,
    NotSetupError,
    ProtocolError,
    Reference,
    RemoteError,
    SetupError,
    SremoteError,
    SshConnector,
    TransportError,
    UsageError,
    __version__,
)
from ._sremote import Client as _NativeClient
from .functions import FunctionsMixin, RemoteFunction, ShipError
from .jobs import Job, JobCancelledError, JobDiedError, JobError, JobsMixin
from .dataset import Dataset
from .magic import load_ipython_extension

__all__ = [
    "AsyncResult", "CallOutput", "Client", "Connector", "DecodeError", "ExecResult",
    "LocalConnector", "ModulesMissingError", "NewtConnector", "NotSetupError",
    "ProtocolError", "Reference", "RemoteError", "SremoteError", "SshConnector",
    "TransportError", "UsageError", "__version__", "RemoteFunction", "ShipError", "SetupError",
]
__all__ += ["Job", "JobError", "JobDiedError", "JobCancelledError", "Dataset", "load_ipython_extension"]

#: The Dataset of the last ``%%sanzu`` cell (see ``sremote.magic``).
magic_dataset = None


class Client(FunctionsMixin, JobsMixin, _NativeClient):
    """The client of one host: calls, programs, files, installs, a session namespace.

    ``Client(host="local", *, ssh_config=None, config=None, timeout=None,
    auto_bootstrap=True, mode=None, user=None, password=None, token=None, ca=None,
    setup=None, login_shell=None)``

    ``host`` is a host name (see the module docstring) or a connector
    (``LocalConnector()``, ``SshConnector(...)``, ``NewtConnector(...)``). ``timeout``:
    seconds each call may run on the host. ``auto_bootstrap``: install the endpoint by
    itself when a call finds none (default). ``mode``: 'auto' (default), 'session',
    'pipe' or 'file'. NEWT credentials: ``password=``/``token=`` or the variables
    ``SREMOTE_NEWT_PASSWORD``/``SREMOTE_NEWT_TOKEN``; ``ca=`` a PEM file to trust.
    ``setup=["module load python/3.11", "source ~/envs/x/bin/activate"]``: your own shell
    lines, run on the host (after the hosts config's ``setup``) before the endpoint of calls
    and before jobs start, so calls and jobs see the same environment;
    ``login_shell=True`` runs them in ``bash -l``. A line that fails raises an error naming
    it and the host.

    >>> with Client("alice@login.cluster.org") as c:
    ...     c.bootstrap()                                  # once ever; a no-op when current
    ...     c.call("os", "getenv", "HOME")
    ...     c.exec(["uname", "-a"]).stdout
    ...     c.push_file("big.bin", "data/big.bin")
    ...     c.map("math", "sqrt", range(10), concurrency=4)
    ...     c.apply(my_function, 10, 7)                    # your own function, shipped by source
    ...     c.map(my_function, [1, 2, 3], [4, 5, 6])       # in parallel on the host
    """

    async def acall(self, module: str, function: str, *args: Any, **kwargs: Any) -> Any:
        """``await c.acall(...)``: ``call`` for asyncio (the event loop keeps running;
        cancelling the task cancels the call on the host)."""
        ar = self.call_async(module, function, *args, **kwargs)
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(_executor(), ar.get)
        except asyncio.CancelledError:
            ar.cancel()
            raise

    # -- session namespace (IPython's push / pull / dict interface) -------------------

    def push(self, namespace: Dict[str, Any]) -> None:
        """Keep each ``name: value`` in this client's session on the host; pass
        ``Reference(name)`` as an argument to use it. Values live as long as the session.

        >>> c.push({"a": [1, 2, 3]})
        >>> c.call("builtins", "len", Reference("a"))
        3
        """
        for name, value in namespace.items():
            self.push_value(name, value)

    def pull(self, names: Union[str, Tuple[str, ...], List[str]]) -> Any:
        """The value under ``names`` (a str), or the list of values (a tuple or list)."""
        if isinstance(names, str):
            return self.pull_value(names)
        return [self.pull_value(n) for n in names]

    def __setitem__(self, name: str, value: Any) -> None:
        self.push_value(name, value)

    def __getitem__(self, name: str) -> Any:
        return self.pull_value(name)

    def execute(self, code: str) -> None:
        """Run Python ``code`` in this session's namespace on the host: one persistent
        namespace, like an IPython engine's. Names it binds are then ``c[name]``,
        ``pull`` and ``Reference(name)``; pushed values are names there. What the code
        prints goes to this process's ``sys.stdout``/``sys.stderr``; an exception raises
        ``RemoteError`` with the host's traceback (file ``<sremote-execute>``). A value
        without a JSON form (a lock, a module) stays in the host's namespace only.

        >>> c.execute("a = 5"); c["a"]
        5
        """
        self._namespace_call("execute", code)

    def run(self, path: Any) -> None:
        """Run the local script ``path`` in this session's namespace on the host, as
        ``__main__`` with ``__file__`` = ``path`` (its text travels; the host needs no
        copy). Its names stay in the namespace, as with ``execute``."""
        import os
        import tokenize

        path = os.fspath(path)
        with tokenize.open(path) as f:  # honours a coding declaration
            source = f.read()
        self._namespace_call("run", source, path)

    def _namespace_call(self, function: str, *args: Any) -> None:
        import sys

        try:
            out = self.call_output("session", function, *args)
        except RemoteError as e:
            sys.stdout.write(e.stdout or "")
            sys.stderr.write(e.stderr or "")
            if e.kind == "ModuleNotFound" and e.module == "session":
                raise UsageError("Client.%s needs session mode (one sremote-endpoint serve per client, over a "
                                 "connector that can start it: local or ssh, mode 'auto' or 'session'); this "
                                 "call did not run in one: %s" % (function, e.message)) from e
            raise
        sys.stdout.write(out.stdout)
        sys.stderr.write(out.stderr)


_EXECUTOR = None


def _executor() -> concurrent.futures.ThreadPoolExecutor:
    global _EXECUTOR
    if _EXECUTOR is None:
        _EXECUTOR = concurrent.futures.ThreadPoolExecutor(thread_name_prefix="sremote-acall")
    return _EXECUTOR
