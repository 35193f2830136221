"""How a Python function reaches the host: by name, or by source.

``describe(func)`` answers ``(module, function, code)`` for a call:

- A function of an **installed** module (the standard library, site-packages,
  dist-packages: ``os.getenv``, ``np.sum``) is called by name; ``code`` is empty. The host
  must have the module (``sremote install HOST PACKAGE`` when it does not).
- A function of a **local module file** (``calc.py`` next to your script, a package of
  your project that is not installed) ships that file by source, with the local modules
  it imports (dependencies first), and is called by name in it.
- A function defined in ``__main__`` (a script, a notebook cell, the REPL) or nested in
  another function ships as a small module made for it: the imports its globals need
  (``import numpy as np``, ``from math import sqrt``), the literal constants it reads, the
  other functions and classes of ``__main__`` it uses (by source, recursively), then the
  function itself (decorators removed).

Source travels rather than bytecode or pickles, so the two sides may run different
Python versions. The host caches each module by SHA-256; a client sends a source once.

What cannot travel raises ``ShipError`` (a ``TypeError``) saying why and what to do: a
closure over local variables, a lambda whose source cannot be found, a global that is
neither a module, a function or class, nor a literal, a compiled extension module that
is not installed.
"""

import ast
import builtins
import inspect
import os
import site
import sys
import sysconfig
import textwrap
import types
import weakref
from typing import Any, Dict, List, Optional, Set, Tuple

__all__ = ["ShipError", "describe"]

#: The endpoint's prefix for "a Python module" (its own modules `os`, `fs`, `sys` would
#: otherwise answer for a function object of Python's `os`).
PY = "py:"

#: The name of the module made for a function of ``__main__``.
MAIN = "__sremote_main__"


class ShipError(TypeError):
    """A function (or something it uses) cannot be sent to the host by source."""


Code = List[Tuple[str, str]]


# func -> (its __code__, the globals it looked up, mtimes of shipped files, the answer)
_CACHE: "weakref.WeakKeyDictionary[Any, Any]" = weakref.WeakKeyDictionary()


def describe(func: Any) -> Tuple[str, str, Code]:
    """``(module, function, code)`` for calling ``func`` on a host (see the module doc).

    ``func`` may also be a string ``"module.function"`` (``"numpy.sum"``), called by name.
    The answer is remembered per function while its code, the globals it uses and the
    module files it ships stay the same.
    """
    if isinstance(func, types.FunctionType):
        hit = _CACHE.get(func)
        if hit is not None and hit[0] is func.__code__ and _still_valid(hit[1], hit[2]):
            return hit[3]
        global _USED, _FILES
        _USED, _FILES = [], []
        try:
            answer = _describe(func)
            used, files = _USED, [(p, _mtime(p)) for p in _FILES]
        finally:
            _USED, _FILES = None, None
        try:
            _CACHE[func] = (func.__code__, used, files, answer)
        except TypeError:
            pass
        return answer
    return _describe(func)


_USED: Optional[List[Tuple[Dict[str, Any], str, Any]]] = None
_FILES: Optional[List[str]] = None


def _mtime(path: str) -> Optional[int]:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def _still_valid(used: List[Tuple[Dict[str, Any], str, Any]], files: List[Tuple[str, Optional[int]]]) -> bool:
    return all(glb.get(name, _MISSING) is value for glb, name, value in used) and \
        all(_mtime(p) == m for p, m in files)


_MISSING = object()


def _describe(func: Any) -> Tuple[str, str, Code]:
    if isinstance(func, str):
        module, dot, function = func.rpartition(".")
        if not dot or not module or not function:
            raise ValueError("%r is not 'module.function' (e.g. 'numpy.sum')" % func)
        return module, function, []
    func = getattr(func, "__sremote_function__", func)  # a @client.remote function
    if not callable(func):
        raise ShipError("%r is a %s, not a function" % (func, type(func).__name__)) from None
    if not isinstance(func, types.FunctionType):
        return _by_name(func)
    if func.__closure__:
        names = ", ".join(func.__code__.co_freevars)
        raise ShipError(
            "%s closes over local variables of the function that defines it (%s), which cannot travel "
            "to the host; pass them as arguments, or define the function at the top level of a module "
            "or notebook cell" % (_label(func), names))
    module = sys.modules.get(func.__module__)
    path = _module_file(module)
    if "<locals>" in func.__qualname__ or func.__name__ == "<lambda>" or func.__module__ == "__main__" \
            or module is None or path is None:
        return _synthesize(func)
    if _installed(path):
        return PY + func.__module__, func.__qualname__, []
    code: Code = []
    _ship_module(module, code, set())
    return func.__module__, func.__qualname__, code


def _label(func: Any) -> str:
    return "function `%s`" % getattr(func, "__qualname__", getattr(func, "__name__", repr(func)))


def _by_name(func: Any) -> Tuple[str, str, Code]:
    """A builtin, ufunc or other callable object: by its module and name."""
    module = getattr(func, "__module__", None) or getattr(type(func), "__module__", None)
    name = getattr(func, "__qualname__", None) or getattr(func, "__name__", None)
    if not module or not name or module == "builtins" and not hasattr(builtins, name):
        raise ShipError("%r has no module and name to call it by on the host; wrap it in a function "
                        "defined with def" % (func,))
    if module == "__main__" or "<locals>" in name:
        raise ShipError("%r is a callable object of your program, which cannot travel by source; "
                        "wrap the work in a function defined with def" % (func,))
    owner = sys.modules.get(module)
    path = _module_file(owner)
    if owner is not None and path is not None and not _installed(path):
        code: Code = []
        _ship_module(owner, code, set())
        return module, name, code
    return PY + module, name, []


# -- where modules live -------------------------------------------------------------

_ROOTS: Optional[List[str]] = None


def _install_roots() -> List[str]:
    global _ROOTS
    if _ROOTS is None:
        roots = set()
        paths = sysconfig.get_paths()
        for key in ("stdlib", "platstdlib", "purelib", "platlib"):
            if paths.get(key):
                roots.add(paths[key])
        try:
            roots.update(site.getsitepackages())
        except AttributeError:
            pass
        user = getattr(site, "getusersitepackages", lambda: None)()
        if user:
            roots.add(user)
        _ROOTS = sorted(os.path.realpath(r) + os.sep for r in roots)
    return _ROOTS


def _installed(path: str) -> bool:
    """Whether a module file belongs to an installation (the host is expected to have it
    too) rather than to your project."""
    real = os.path.realpath(path)
    parts = real.split(os.sep)
    if "site-packages" in parts or "dist-packages" in parts:
        return True
    return any(real.startswith(r) for r in _install_roots())


def _module_file(module: Optional[types.ModuleType]) -> Optional[str]:
    path = getattr(module, "__file__", None) if module is not None else None
    return path if isinstance(path, str) and path else None


# -- local module files ---------------------------------------------------------------


def _ship_module(module: types.ModuleType, code: Code, seen: Set[str]) -> None:
    """Add `module`'s source to `code`, after its parent packages and the local modules
    it imports."""
    name = module.__name__
    if name in seen:
        return
    seen.add(name)
    path = _module_file(module)
    if path is None or not path.endswith(".py"):
        raise ShipError("module `%s` (%s) is not a Python source file and is not installed; install it on "
                        "the host (`sremote install HOST PACKAGE`)" % (name, path or "no file"))
    try:
        with open(path, "r", encoding="utf-8", errors="surrogateescape") as f:
            source = f.read()
    except OSError as e:
        raise ShipError("cannot read module `%s` (%s) to send it to the host: %s" % (name, path, e)) from None
    if _FILES is not None:
        _FILES.append(path)
    if "." in name:
        parent = sys.modules.get(name.rpartition(".")[0])
        if parent is not None and _local(parent):
            _ship_module(parent, code, seen)
    for dep in _imported_names(source, module):
        for candidate in (dep, dep.rpartition(".")[0]):
            other = sys.modules.get(candidate) if candidate else None
            if other is not None and other is not module and _local(other):
                _ship_module(other, code, seen)
    code.append((name, source))


def _local(module: types.ModuleType) -> bool:
    path = _module_file(module)
    return path is not None and path.endswith(".py") and not _installed(path)


def _imported_names(source: str, module: types.ModuleType) -> List[str]:
    """Absolute names of the modules `source` imports (relative imports resolved)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    package = getattr(module, "__package__", None) or ""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1] if node.level > 1 else anchor
                base = ".".join([p for p in anchor if p] + ([base] if base else []))
            if base:
                out.append(base)
                out.extend("%s.%s" % (base, a.name) for a in node.names if a.name != "*")
    return out


# -- functions of __main__ ------------------------------------------------------------


class _Builder:
    """The module made for a function of `__main__` (see the module doc)."""

    def __init__(self) -> None:
        self.imports: List[str] = []
        self.constants: List[str] = []
        self.blocks: List[str] = []
        self.bound: Set[str] = set()
        self.code: Code = []
        self.shipped: Set[str] = set()

    def add_function(self, func: types.FunctionType, strip_decorators: bool) -> None:
        if func.__closure__:
            raise ShipError("%s (used by the function you called) closes over local variables (%s); make "
                            "them arguments or globals" % (_label(func), ", ".join(func.__code__.co_freevars)))
        node, text = _definition(func, strip_decorators)
        self.blocks.append(text)
        self.add_globals(node, _local_names(func.__code__), func.__globals__, _label(func))

    def add_class(self, cls: type) -> None:
        try:
            text = textwrap.dedent(inspect.getsource(cls))
        except (OSError, TypeError):
            raise ShipError("class `%s` of __main__ has no source to send to the host; move it to a module "
                            "file next to your script" % cls.__qualname__)
        node = ast.parse(text).body[0]
        self.blocks.append(text)
        local: Set[str] = set()
        for v in vars(cls).values():
            f = getattr(v, "__func__", v)
            if isinstance(f, types.FunctionType):
                local |= _local_names(f.__code__)
        glb = sys.modules[cls.__module__].__dict__ if cls.__module__ in sys.modules else {}
        self.add_globals(node, local, glb, "class `%s`" % cls.__qualname__)

    def add_globals(self, node: ast.AST, local: Set[str], glb: Dict[str, Any], user: str) -> None:
        wanted = sorted({n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
                        - local)
        for name in wanted:
            if name in self.bound or name not in glb:
                continue  # a builtin, or defined later (a NameError on the host as it would be here)
            self.bound.add(name)
            self.add_global(name, glb[name], user, glb)

    def add_global(self, name: str, value: Any, user: str, glb: Dict[str, Any]) -> None:
        if _USED is not None:
            _USED.append((glb, name, value))
        wrapped = getattr(value, "__sremote_function__", None)
        value = wrapped if wrapped is not None else value
        if isinstance(value, types.ModuleType):
            self.ship_if_local(value)
            real = value.__name__
            self.imports.append("import %s" % real if real == name else "import %s as %s" % (real, name))
            return
        if isinstance(value, (types.FunctionType, type)) and getattr(value, "__module__", None) == "__main__":
            if isinstance(value, type):
                self.add_class(value)
            else:
                self.add_function(value, strip_decorators=wrapped is not None)
            return
        module = getattr(value, "__module__", None)
        qualname = getattr(value, "__qualname__", None) or getattr(value, "__name__", None)
        owner = sys.modules.get(module) if isinstance(module, str) else None
        if owner is not None and qualname and "." not in qualname and getattr(owner, qualname, None) is value:
            self.ship_if_local(owner)
            self.imports.append("from %s import %s" % (module, qualname if qualname == name
                                                           else "%s as %s" % (qualname, name)))
            return
        if _literal(value):
            self.constants.append("%s = %r" % (name, value))
            return
        raise ShipError("%s uses the global `%s`, a %s, which cannot travel to the host by source; pass it "
                        "as an argument, or create it inside the function" % (user, name, type(value).__name__))

    def ship_if_local(self, module: types.ModuleType) -> None:
        if _local(module):
            _ship_module(module, self.code, self.shipped)

    def source(self) -> str:
        parts = ["# Made by sremote for a function of your __main__ module.\n"]
        parts.extend(line + "\n" for line in dict.fromkeys(self.imports))
        parts.extend(line + "\n" for line in self.constants)
        for block in reversed(self.blocks):  # what a function uses is defined before it
            parts.append("\n\n" + block.rstrip() + "\n")
        return "".join(parts)


def _synthesize(func: types.FunctionType) -> Tuple[str, str, Code]:
    b = _Builder()
    b.bound.add(func.__name__)
    if func.__name__ == "<lambda>":
        text = _lambda_source(func)
        b.blocks.append("__sremote_lambda__ = " + text)
        node = ast.parse(text, mode="eval")
        b.add_globals(node, _local_names(func.__code__), func.__globals__, "the lambda")
        name = "__sremote_lambda__"
    else:
        b.add_function(func, strip_decorators=True)
        name = func.__name__
    b.code.append((MAIN, b.source()))
    return MAIN, name, b.code


def _definition(func: types.FunctionType, strip_decorators: bool) -> Tuple[ast.AST, str]:
    """The `def` of `func` as an AST node and as text (dedented; decorators removed when
    asked)."""
    try:
        text = textwrap.dedent(inspect.getsource(func))
    except (OSError, TypeError):
        raise ShipError("%s has no source code to send to the host (defined in an interactive session "
                        "without source?); define it in a file or a notebook cell" % _label(func))
    try:
        node = ast.parse(text).body[0]
    except (SyntaxError, IndexError):
        raise ShipError("the source of %s cannot be parsed on its own; define it with def at the top level"
                        % _label(func))
    if strip_decorators and getattr(node, "decorator_list", None):
        lines = text.splitlines(keepends=True)
        text = "".join(lines[node.lineno - 1:])
        node = ast.parse(text).body[0]
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name != func.__name__:
        text = text + "\n\n%s = %s\n" % (func.__name__, node.name)
    return node, text


def _lambda_source(func: types.FunctionType) -> str:
    try:
        text = textwrap.dedent(inspect.getsource(func)).strip()
    except (OSError, TypeError):
        raise ShipError("the lambda has no source code to send to the host; define the function with def") from None
    tree = None
    for attempt in (text, "(" + text + ")", text.rstrip(",)") + ")"):
        try:
            tree = ast.parse(attempt)
            text = attempt
            break
        except SyntaxError:
            continue
    lambdas = [n for n in ast.walk(tree)] if tree is not None else []
    args = list(func.__code__.co_varnames[:func.__code__.co_argcount])
    found = [n for n in lambdas if isinstance(n, ast.Lambda) and [a.arg for a in n.args.args] == args]
    if len(found) != 1:
        raise ShipError("the lambda's source cannot be told apart on its line; define the function with def") from None
    segment = ast.get_source_segment(text, found[0])
    if segment is None:
        raise ShipError("the lambda's source cannot be found; define the function with def") from None
    return segment


def _local_names(code: types.CodeType) -> Set[str]:
    """Names local to a code object and the code nested in it."""
    names = set(code.co_varnames) | set(code.co_cellvars) | set(code.co_freevars)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _local_names(const)
    return names


def _literal(value: Any) -> bool:
    """Whether `repr(value)` gives `value` back (numbers, strings, and containers of them)."""
    if isinstance(value, (bool, int, float, complex, str, bytes, type(None))):
        pass
    elif not isinstance(value, (list, tuple, dict, set, frozenset)):
        return False
    try:
        return ast.literal_eval(repr(value)) == value
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False
