"""Jupyter and IPython: ``%load_ext sremote``, then

``%%sremote HOST [--push a,b] [--pull c] [--config PATH]``
    runs the cell in HOST's persistent Python namespace (the session's, as
    ``Client.execute`` does: names stay there between cells, like an IPython engine);
    what it prints shows in the cell's output. ``--push a,b`` first sends the notebook's
    ``a`` and ``b`` there; ``--pull c`` brings ``c`` back into the notebook afterwards.
    One client per host is kept for the kernel's life.

``%%sanzu [url=CLIENT] [name=…] [scheduler=…] [resources=…]`` with ``%%sargs NAME=VALUE`` lines
    remotemanager's magic: the cell becomes a function of the ``%%sargs`` names (its last
    expression is returned), run as a one-run :class:`sremote.Dataset` job on the host
    (``url`` is an ``sremote.Client`` or a host name; default ``"local"``). The cell's value
    is the function's; ``magic_dataset`` in the notebook is the Dataset of the last such
    cell (``magic_dataset.results``).

>>> %load_ext sremote
>>> %%sremote cluster --push a --pull c
... c = a * 2
>>> %%sanzu url=c
... %%sargs a=10
... %%sargs b=7
... a * b
70
"""

import ast
import hashlib
import shlex
from typing import Any, Dict, List, Optional, Tuple

__all__ = ["load_ipython_extension", "client_for", "sremote_cell", "sanzu_cell"]

_CLIENTS: Dict[Tuple[str, Optional[str]], Any] = {}


class MagicError(ValueError):
    """A magic line that cannot be understood (what is wrong and the form expected)."""


def client_for(host: str, config: Optional[str] = None) -> Any:
    """The kernel's client of ``host`` (made on first use, kept for the kernel's life)."""
    key = (host, config)
    c = _CLIENTS.get(key)
    if c is None:
        from . import Client
        c = Client(host, config=config)
        _CLIENTS[key] = c
    return c


def _names(option: str, text: str) -> List[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if not n.isidentifier()]
    if bad or not names:
        raise MagicError("%%%%sremote %s %s: give Python names separated by commas (e.g. %s a,b)"
                         % (option, text, option))
    return names


def _parse_sremote_line(line: str) -> Tuple[str, List[str], List[str], Optional[str]]:
    usage = "usage: %%sremote HOST [--push NAMES] [--pull NAMES] [--config PATH]"
    try:
        words = shlex.split(line)
    except ValueError as e:
        raise MagicError("%%%%sremote %s: %s; %s" % (line, e, usage)) from None
    host, push, pull, config = None, [], [], None
    i = 0
    while i < len(words):
        w = words[i]
        opt, eq, val = w.partition("=")
        if opt in ("--push", "--pull", "--config"):
            if not eq:
                i += 1
                if i == len(words):
                    raise MagicError("%%%%sremote: %s needs a value; %s" % (opt, usage))
                val = words[i]
            if opt == "--push":
                push += _names(opt, val)
            elif opt == "--pull":
                pull += _names(opt, val)
            else:
                config = val
        elif w.startswith("-"):
            raise MagicError("%%%%sremote: unknown option %s; %s" % (w, usage))
        elif host is None:
            host = w
        else:
            raise MagicError("%%%%sremote: one HOST only (got %s and %s); %s" % (host, w, usage))
        i += 1
    if host is None:
        raise MagicError("%%%%sremote: name the host; %s" % usage)
    return host, push, pull, config


def sremote_cell(line: str, cell: str, user_ns: Dict[str, Any]) -> None:
    """``%%sremote``: run ``cell`` in the host's namespace (see the module docstring)."""
    host, push, pull, config = _parse_sremote_line(line)
    missing = [n for n in push if n not in user_ns]
    if missing:
        raise NameError("%%%%sremote --push: %s not defined in the notebook" % ", ".join(missing))
    c = client_for(host, config)
    if push:
        c.push({n: user_ns[n] for n in push})
    c.execute(cell)
    for n in pull:
        user_ns[n] = c.pull(n)


def _assignments(text: str, user_ns: Dict[str, Any], what: str) -> Dict[str, Any]:
    """``a=10 b=[1, 2]`` (or ``a = 10``): names and their values, evaluated in the
    notebook's namespace."""
    text = text.strip()
    if not text:
        return {}
    try:
        tree = ast.parse("f(%s)" % ",".join(_split_assignments(text)), mode="eval")
        call = tree.body
        assert isinstance(call, ast.Call) and not call.args
    except (SyntaxError, AssertionError):
        raise MagicError("%s %s: write NAME=VALUE pairs (e.g. %s a=10)" % (what, text, what)) from None
    out = {}
    for kw in call.keywords:
        if kw.arg is None:
            raise MagicError("%s %s: write NAME=VALUE pairs" % (what, text))
        code = compile(ast.Expression(kw.value), "<%s>" % what, "eval")
        out[kw.arg] = eval(code, user_ns)  # noqa: S307 - the notebook's own expression
    return out


def _split_assignments(text: str) -> List[str]:
    """``a=10 b = f(1, 2)`` → ``["a=10", "b = f(1, 2)"]``: split before each ``NAME=``."""
    import re
    starts = [m.start() for m in re.finditer(r"(?:^|\s)([A-Za-z_]\w*)\s*=(?!=)", text)]
    if not starts:
        return [text]
    parts = [text[s:e].strip() for s, e in zip(starts, starts[1:] + [len(text)])]
    return [p for p in parts if p]


class _CellFunction:
    """A notebook cell turned into a function that travels by source (``submit`` ships
    ``code`` and calls ``module.function``)."""

    __sremote_target__ = True

    def __init__(self, source: str, function: str) -> None:
        self.module = "sremote_cell_" + hashlib.sha256(source.encode()).hexdigest()[:16]
        self.function = function
        self.code = [(self.module, source)]
        self.__name__ = function


def _cell_function(body: str, params: List[str]) -> _CellFunction:
    """``def sanzu_cell(params): body``, returning the value of its last expression."""
    tree = ast.parse(body)
    statements = tree.body or [ast.Pass()]
    last = statements[-1]
    if isinstance(last, ast.Expr):
        statements[-1] = ast.copy_location(ast.Return(value=last.value), last)
    fn = ast.FunctionDef(
        name="sanzu_cell",
        args=ast.arguments(posonlyargs=[], args=[ast.arg(arg=p) for p in params], vararg=None,
                           kwonlyargs=[], kw_defaults=[], kwarg=None, defaults=[]),
        body=statements, decorator_list=[], returns=None, type_comment=None)
    if "type_params" in ast.FunctionDef._fields:  # Python 3.12+
        fn.type_params = []
    module = ast.fix_missing_locations(ast.Module(body=[fn], type_ignores=[]))
    return _CellFunction(ast.unparse(module) + "\n", "sanzu_cell")


def sanzu_cell(line: str, cell: str, user_ns: Dict[str, Any]) -> Any:
    """``%%sanzu``: the cell as a one-run Dataset job (see the module docstring); its value."""
    from .dataset import Dataset

    options = _assignments(line, user_ns, "%%sanzu")
    unknown = set(options) - {"url", "client", "name", "scheduler", "resources"}
    if unknown:
        raise MagicError("%%%%sanzu: unknown option(s) %s; the options are url (or client), name, "
                         "scheduler, resources" % ", ".join(sorted(unknown)))
    args: Dict[str, Any] = {}
    body: List[str] = []
    lines = cell.splitlines()
    i = 0
    while i < len(lines):
        text = lines[i]
        if text.strip().startswith("%%sargs"):
            rest = text.strip()[len("%%sargs"):]
            if not rest.strip() and i + 1 < len(lines):  # `%%sargs` then `a = 10` below it
                i += 1
                rest = lines[i]
            args.update(_assignments(rest, user_ns, "%%sargs"))
        else:
            body.append(text)
        i += 1
    target = options.get("url", options.get("client", "local"))
    client = client_for(target) if isinstance(target, str) else target
    fn = _cell_function("\n".join(body), sorted(args))
    ds = Dataset(fn, client=client, name=options.get("name", "sanzu"),
                 scheduler=options.get("scheduler"), resources=options.get("resources"))
    ds.append_run(args)
    user_ns["magic_dataset"] = ds
    import sremote
    sremote.magic_dataset = ds
    ds.run()
    ds.wait(0.2)
    ds.fetch_results()
    runner = ds.runners[0]
    if runner.stdout:
        print(runner.stdout, end="")
    if runner.exception is not None:
        raise runner.exception
    return ds.results[0]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext sremote``: registers the cell magics ``%%sremote`` and ``%%sanzu``."""

    def sremote(line: str, cell: str) -> None:
        sremote_cell(line, cell, ipython.user_ns)

    def sanzu(line: str, cell: str) -> Any:
        return sanzu_cell(line, cell, ipython.user_ns)

    sremote.__doc__ = __doc__
    sanzu.__doc__ = sanzu_cell.__doc__
    ipython.register_magic_function(sremote, magic_kind="cell", magic_name="sremote")
    ipython.register_magic_function(sanzu, magic_kind="cell", magic_name="sanzu")
