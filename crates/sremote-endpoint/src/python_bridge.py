# The sremote Python bridge, run by the endpoint as
# `python3 -c <launcher> <this file>` (the launcher compiles it as "<sremote-python-bridge>").
#
# Line JSON on private copies of the original stdin/stdout: one request per line in, one
# response per line out. While a call runs, fd 1 and fd 2 point at capture files whose
# contents go into the response's "stdout"/"stderr", so print() and C extensions can never
# corrupt the channel. The process serves requests until its stdin closes: one call in
# pipe/file mode, a whole session in session mode (module state persists, like an IPython
# engine). See PROTOCOL.md, "Python bridge".
#
# Requests:  {"op": "call", "module", "function", "args", "kwargs", "env": {"set", "unset"}}
#            {"op": "versions", "names": [...], "env": ...}
#            {"op": "execute", "code", "filename", "run", "sync": {"set", "delete"}, "env": ...}
#              (the namespace worker; ok = {"sync": {"set", "python_only", "deleted"}, "raised"})
# Responses: {"ok": value, "stdout", "stderr"} or {"error": {kind, message, traceback, data},
#            "stdout", "stderr"}
import binascii
import importlib
import json
import os
import sys

# Imports are kept few (a pipe-mode call pays for them): `traceback` and `inspect` are
# imported only when an error needs them.

if sys.path and sys.path[0] == "":
    del sys.path[0]  # `-c` puts the working directory first; imports follow PYTHONPATH only

I64_MIN, U64_MAX = -(2**63), 2**64 - 1
CAPTURE_LIMIT = 32 << 20
BRIDGE_FILE = "<sremote-python-bridge>"


class CallFailed(Exception):
    def __init__(self, kind, message, data=None):
        Exception.__init__(self, message)
        self.kind, self.message, self.data = kind, message, data


def type_name(v):
    t = type(v)
    return t.__name__ if t.__module__ == "builtins" else "%s.%s" % (t.__module__, t.__qualname__)


def decode(v):
    """Arguments: {"$bytes": base64} becomes bytes, {"$int": "<decimal>"} an int (the
    Python client sends ints beyond 64 bits so); everything else is plain JSON."""
    if isinstance(v, dict):
        if len(v) == 1 and isinstance(v.get("$bytes"), str):
            return binascii.a2b_base64(v["$bytes"])
        if len(v) == 1 and isinstance(v.get("$int"), str):
            try:
                return int(v["$int"])
            except ValueError:
                raise CallFailed("BadArguments", "{\"$int\": %r} is not a decimal integer" % v["$int"])
        return {k: decode(x) for k, x in v.items()}
    if isinstance(v, list):
        return [decode(x) for x in v]
    return v


def encode(v, where="the return value"):
    """A return value as JSON (see PROTOCOL.md for the conversions)."""
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, int):
        # serde_json reads integers of 64 bits exactly; bigger ones travel as decimal strings.
        return v if I64_MIN <= v <= U64_MAX else str(v)
    if isinstance(v, float):
        return v if v - v == 0 else None  # NaN and infinities have no JSON form: null
    if isinstance(v, (list, tuple)):
        return [encode(x, where) for x in v]
    if isinstance(v, dict):
        out = {}
        for k, x in v.items():
            if isinstance(k, bool) or k is None:
                k = json.dumps(k)
            elif isinstance(k, (int, float)):
                k = str(k)
            elif not isinstance(k, str):
                raise CallFailed("Raised", "%s has a dict key of type %s; JSON keys must be str, int, float, bool "
                                 "or None" % (where, type_name(k)), {"python_type": type_name(k)})
            out[k] = encode(x, where)
        return out
    if isinstance(v, (bytes, bytearray, memoryview)):
        return {"$bytes": binascii.b2a_base64(bytes(v), newline=False).decode("ascii")}
    if isinstance(v, (set, frozenset)):
        items = [encode(x, where) for x in v]
        try:
            return sorted(items)
        except TypeError:
            return items
    if hasattr(v, "tolist") and callable(v.tolist):  # numpy arrays and scalars, array.array
        return encode(v.tolist(), where)
    if hasattr(v, "isoformat") and callable(v.isoformat):  # datetime, date, time
        return v.isoformat()
    if isinstance(v, os.PathLike):
        return os.fspath(v)
    if hasattr(v, "__dataclass_fields__"):
        import dataclasses
        return encode(dataclasses.asdict(v), where)
    if type(v).__name__ == "Decimal":
        return str(v)
    raise CallFailed("Raised", "%s is a %s, which has no JSON form; return a JSON value instead (numbers, str, "
                     "list, dict, bytes; objects with .tolist() such as numpy arrays are converted)"
                     % (where, type_name(v)), {"python_type": type_name(v)})


def noise(frame):
    name = frame.filename
    return name.startswith("<frozen importlib") or name.endswith(os.path.join("importlib", "__init__.py"))


def user_frames(tb):
    while tb is not None and tb.tb_frame.f_code.co_filename == BRIDGE_FILE:
        tb = tb.tb_next  # the bridge's own frames are noise
    return tb


def traceback_text(e):
    import traceback
    tb = user_frames(e.__traceback__)  # and so is the import machinery (below)
    te = traceback.TracebackException(type(e), e, tb)
    te.stack = traceback.StackSummary.from_list([f for f in te.stack if not noise(f)])
    return "".join(te.format())


def import_module(name):
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        missing = e.name or ""
        if name != missing and not name.startswith(missing + "."):
            raise  # a module the imported one needs is missing: a failure of that module
        importlib.invalidate_caches()  # installed since the last look (pip in the same venv)
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as e2:
            if e2.name != e.name:
                raise
        raise CallFailed("ModuleNotFound", "%s (%s) cannot import `%s`: %s" % (
            sys.executable, python_version(), name, e), {"python": sys.executable})


def python_version():
    return "Python %d.%d.%d" % sys.version_info[:3]


def signature(fn):
    try:
        import inspect
        return str(inspect.signature(fn))
    except (TypeError, ValueError):
        return "(…)"


def public_names(obj):
    names = sorted(n for n in dir(obj) if not n.startswith("_"))
    return ", ".join(names[:60]) + (", …" if len(names) > 60 else "")


def resolve(module, function):
    """The callable named by `module` and `function`: the longest importable prefix of
    `module` is imported, the rest of it and the dotted `function` are attributes
    (`datetime.date` + `today`, `pandas.DataFrame` + `from_dict`)."""
    parts = module.split(".")
    first_error = None
    for i in range(len(parts), 0, -1):
        name = ".".join(parts[:i])
        try:
            obj = import_module(name)
        except CallFailed as e:
            if e.kind != "ModuleNotFound":
                raise
            first_error = first_error or e
            continue
        path = name
        for attr in parts[i:] + function.split("."):
            try:
                obj = getattr(obj, attr)
            except AttributeError:
                where = getattr(obj, "__file__", None) or type_name(obj)
                raise CallFailed("FunctionNotFound", "Python `%s` (%s) has no attribute `%s` (looking for "
                                 "%s.%s); its public names: %s" % (path, where, attr, module, function,
                                                                   public_names(obj)))
            path = "%s.%s" % (path, attr)
        return obj
    raise first_error


# Shipped modules loaded in this process, by SHA-256 of their source.
SHIPPED = {}


def shipped_source(cache, name, sha, source):
    """The path of the shipped module `name` in the host's code cache
    (`<cache>/<sha256>/<name>.py`), written there (atomically) from `source` when given."""
    import hashlib
    if not (len(sha) == 64 and all(c in "0123456789abcdef" for c in sha)):
        raise CallFailed("BadRequest", "shipped module %s: %r is no SHA-256 (64 lower-case hex digits)" % (name, sha))
    folder = os.path.join(cache, sha)
    path = os.path.join(folder, name + ".py")
    if source is not None:
        data = source.encode("utf-8", "surrogateescape")
        if hashlib.sha256(data).hexdigest() != sha:
            raise CallFailed("BadRequest", "shipped module %s does not match its SHA-256 %s" % (name, sha))
        if not os.path.exists(path):
            os.makedirs(folder, mode=0o700, exist_ok=True)
            tmp = "%s.%d.tmp" % (path, os.getpid())
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        return path
    try:
        with open(path, "rb") as f:
            ok = hashlib.sha256(f.read()).hexdigest() == sha
    except OSError:
        ok = False
    if not ok:
        raise CallFailed("CodeMissing", "shipped module %s (%s) is not in this host's code cache %s; send it with "
                         "its source" % (name, sha[:12], cache))
    return path


def load_shipped(code, cache):
    """Load the modules that travel with the call (dependencies first), each once per
    content in this process; `sys.modules[name]` is the shipped version for this call."""
    for m in code:
        name, sha = m.get("name", ""), m.get("sha256", "")
        if not all(p.isidentifier() for p in name.split(".")):
            raise CallFailed("BadRequest", "shipped module name %r is not a dotted Python name" % name)
        module = SHIPPED.get(sha)
        if module is None:
            path = shipped_source(cache, name, sha, m.get("source"))
            import importlib.util
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module  # during its own import too (dataclasses, pickling)
            try:
                spec.loader.exec_module(module)
            except ModuleNotFoundError as e:
                sys.modules.pop(name, None)
                raise CallFailed("ModuleNotFound", "your module %s (shipped with the call) imports `%s`, which %s (%s) "
                                 "on this host cannot import: install it there (`sremote install HOST %s`, or "
                                 "client.install_python_packages)" % (name, e.name, sys.executable,
                                                                      python_version(), e.name),
                                 {"python": sys.executable, "missing": e.name})
            except BaseException:
                sys.modules.pop(name, None)
                raise
            SHIPPED[sha] = module
        sys.modules[name] = module


def call(msg):
    module, function = msg["module"], msg["function"]
    if msg.get("code"):
        load_shipped(msg["code"], msg.get("cache") or ".")
    obj = resolve(module, function)
    if not callable(obj):
        raise CallFailed("FunctionNotFound", "`%s.%s` is a %s, not a function" % (module, function, type_name(obj)))
    args, kwargs = decode(msg.get("args", [])), decode(msg.get("kwargs", {}))
    try:
        value = obj(*args, **kwargs)
    except TypeError as e:
        # Raised before the function ran a line of its own: the arguments do not fit.
        if user_frames(e.__traceback__) is None:
            raise CallFailed("BadArguments", "%s; expected %s.%s%s" % (e, module, function, signature(obj)))
        raise
    return encode(value, "the return value of %s.%s" % (module, function))


def version_of(name):
    from importlib import metadata
    top = name.split(".")[0]
    try:
        return metadata.version(top)
    except Exception:
        pass
    try:
        for dist in metadata.packages_distributions().get(top, []):
            return metadata.version(dist)
    except Exception:
        pass
    if top in getattr(sys, "stdlib_module_names", ()) or top in sys.builtin_module_names:
        return "stdlib (%s)" % python_version()
    v = getattr(sys.modules.get(name), "__version__", None)
    return str(v) if v is not None else "unknown version"


def versions(msg):
    import importlib.util
    out = {}
    for name in msg["names"]:
        spec = None
        for attempt in (0, 1):
            try:
                spec = importlib.util.find_spec(name)
            except (ImportError, ValueError):
                spec = None
            if spec is not None:
                break
            importlib.invalidate_caches()
        out[name] = version_of(name) if spec is not None else None
    return out


# The namespace worker (session.execute / session.run): one persistent namespace, the
# globals of a module that is `__main__` in this interpreter (as in an IPython engine),
# kept in sync with the session's value store by the endpoint (python/namespace.rs).
NAMESPACE = []  # [the namespace dict], made on first use
SYNCED = {}  # name -> (value, hash of its JSON text or None): what the store holds now
SCALARS = (bool, int, float, complex, str, bytes, type(None))
CONTAINERS = (list, tuple, dict, set, frozenset)


def namespace():
    if not NAMESPACE:
        import builtins
        import types
        main = types.ModuleType("__main__")
        main.__dict__["__builtins__"] = builtins
        sys.modules["__main__"] = main  # classes and functions defined there pickle
        NAMESPACE.append(main.__dict__)
    return NAMESPACE[0]


def synced_name(name):
    return not (name.startswith("__") and name.endswith("__"))  # __builtins__, __file__…


def describe(v):
    import types
    if isinstance(v, types.ModuleType):
        return "the module %s" % v.__name__
    if isinstance(v, type):
        return "the class %s" % v.__qualname__
    if isinstance(v, (types.FunctionType, types.BuiltinFunctionType, types.MethodType)):
        return "the function %s" % getattr(v, "__qualname__", "?")
    return "a %s" % type_name(v)


def json_form(v):
    """(True, the JSON form of v) or (False, what v is) when it has none."""
    import types
    if isinstance(v, (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.MethodType)):
        return False, describe(v)
    try:
        return True, encode(v)
    except Exception:  # CallFailed, RecursionError, a failing .tolist()
        return False, describe(v)


def form_hash(form):
    return hash(json.dumps(form, sort_keys=True, ensure_ascii=False))


def apply_sync(ns, sync):
    """Bind the values the store has and the namespace lacks; drop the names it deleted."""
    for name in sync.get("delete", []):
        ns.pop(name, None)
        SYNCED.pop(name, None)
    for name, value in sync.get("set", {}).items():
        if synced_name(name):
            try:
                v = decode(value)
            except CallFailed as e:
                raise CallFailed("BadArguments", "the stored value %r cannot become a Python value (%s); push it "
                                 "again or delete it (session.delete)" % (name, e.message))
            ns[name] = v
            SYNCED[name] = (v, None if isinstance(v, SCALARS) else form_hash(encode(v)))


def namespace_changes(ns):
    """Names bound, rebound or changed in place since the last sync (their JSON form, or
    what they are when they have none), and names deleted."""
    out = {"set": {}, "python_only": {}, "deleted": [n for n in SYNCED if n not in ns]}
    for name in out["deleted"]:
        del SYNCED[name]
    for name, v in list(ns.items()):
        old = SYNCED.get(name)
        same = old is not None and old[0] is v
        if not synced_name(name) or same and (isinstance(v, SCALARS) or old[1] is None and
                                              not isinstance(v, CONTAINERS)):
            continue
        has_json, form = json_form(v)
        h = form_hash(form) if has_json else None
        if same and old[1] == h:
            continue
        SYNCED[name] = (v, h)
        out["set" if has_json else "python_only"][name] = form
    return out


def code_objects(code):
    import types
    found, todo = set(), [code]
    while todo:
        c = todo.pop()
        found.add(c)
        todo.extend(k for k in c.co_consts if isinstance(k, types.CodeType))
    return found


def raised(e, filename, codes):
    """An exception of executed code as an error; frames of code compiled earlier under
    the same file name show no source line (linecache holds the latest code only)."""
    import traceback
    tb = user_frames(e.__traceback__)
    te = traceback.TracebackException(type(e), e, tb, lookup_lines=False)
    stack = []
    for f, (frame, _) in zip(te.stack, traceback.walk_tb(tb)):
        if f.filename == filename and frame.f_code not in codes:
            f = traceback.FrameSummary(f.filename, f.lineno, f.name, line="")
        if not noise(f):
            stack.append(f)
    te.stack = traceback.StackSummary.from_list(stack)
    return {"kind": "Raised", "message": "%s: %s" % (type_name(e), e), "traceback": "".join(te.format()),
            "data": {"exception": type_name(e)}}


def execute(msg):
    """Run `code` in the namespace (as file `filename`; `run`: a script, with __file__ set)
    after applying the store's changes; answer with the namespace's changes and the
    exception the code raised, if any."""
    import linecache
    ns = namespace()
    apply_sync(ns, msg.get("sync") or {})
    source, filename, run = msg.get("code", ""), msg.get("filename") or "<sremote-execute>", msg.get("run")
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    saved = ns.get("__file__")
    if run:
        ns["__file__"] = filename
    error, codes = None, set()
    try:
        code = compile(source, filename, "exec", dont_inherit=True)
        codes = code_objects(code)
        exec(code, ns)
    except SystemExit as e:  # a script's sys.exit(0) is a normal end
        if e.code not in (None, 0):
            error = raised(e, filename, codes)
    except BaseException as e:
        error = raised(e, filename, codes)
    finally:
        if run and saved is None:
            ns.pop("__file__", None)
        elif run:
            ns["__file__"] = saved
    return {"sync": namespace_changes(ns), "raised": error}


OPS = {"versions": versions, "execute": execute}


def apply_env(env):
    if not env:
        return
    for k in env.get("unset", []):
        os.environ.pop(k, None)
    for k, v in env.get("set", {}).items():
        os.environ[k] = v
        if k == "PYTHONPATH":
            for d in reversed([d for d in v.split(os.pathsep) if d]):
                if d not in sys.path:
                    sys.path.insert(0, d)


class Capture:
    """fd 1 and fd 2 point at anonymous files for the life of the process."""

    def __init__(self):
        self.files = []
        for fd in (1, 2):
            try:
                f = os.memfd_create("sremote-python-%d" % fd, os.MFD_CLOEXEC)
            except (AttributeError, OSError):
                import tempfile
                f = os.dup(tempfile.TemporaryFile().fileno())
            os.dup2(f, fd)
            os.close(f)

    def take(self):
        for s in (sys.stdout, sys.stderr):
            try:
                s.flush()
            except Exception:
                pass
        out = []
        for fd in (1, 2):
            try:
                n = os.lseek(fd, 0, os.SEEK_CUR)
            except OSError:
                n = 0
            if n == 0:
                out.append("")
                continue
            data = os.pread(fd, min(n, CAPTURE_LIMIT), 0)
            text = data.decode("utf-8", "replace")
            if n > CAPTURE_LIMIT:
                text += "\n[sremote: output truncated, %d of %d bytes kept]\n" % (CAPTURE_LIMIT, n)
            out.append(text)
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
        return out


class Live:
    """In a job's worker: fd 1 and fd 2 are the job's output (its live log), named by
    SREMOTE_JOB_OUTPUT_FDS ("PID:OUT,ERR", PID the worker's: only its own bridge uses them);
    nothing is captured here (the worker keeps the output)."""

    def __init__(self, spec):
        pid, fds = spec.split(":")
        if int(pid) != os.getppid():
            raise ValueError("not started by the job's worker")
        out, err = (int(f) for f in fds.split(","))
        os.dup2(out, 1)
        os.dup2(err, 2)
        for f in {out, err} - {1, 2}:
            os.close(f)
        for s in (sys.stdout, sys.stderr):
            try:
                s.reconfigure(line_buffering=True)
            except Exception:
                pass

    def take(self):
        for s in (sys.stdout, sys.stderr):
            try:
                s.flush()
            except Exception:
                pass
        return ["", ""]


def serve():
    channel_in = os.fdopen(os.dup(0), "rb")
    channel_out = os.fdopen(os.dup(1), "wb")
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    live = os.environ.pop("SREMOTE_JOB_OUTPUT_FDS", "")
    try:
        capture = Live(live) if live else Capture()
    except (ValueError, OSError):
        capture = Capture()
    for line in channel_in:
        reply = {}
        try:
            msg = json.loads(line)
            apply_env(msg.get("env"))
            reply["ok"] = OPS.get(msg.get("op"), call)(msg)
        except CallFailed as e:
            reply = {"error": {"kind": e.kind, "message": e.message, "data": e.data}}
        except RecursionError as e:
            reply = {"error": {"kind": "Raised", "message": "RecursionError: %s (a cyclic or very deeply nested "
                               "value?)" % e, "traceback": traceback_text(e)}}
        except BaseException as e:  # SystemExit and KeyboardInterrupt included: the worker goes on
            reply = {"error": {"kind": "Raised", "message": "%s: %s" % (type_name(e), e),
                               "traceback": traceback_text(e), "data": {"exception": type_name(e)}}}
        reply["stdout"], reply["stderr"] = capture.take()
        try:
            text = json.dumps(reply, allow_nan=False, ensure_ascii=False)
        except Exception as e:
            text = json.dumps({"error": {"kind": "Raised", "message": "the reply cannot be encoded: %s" % e}})
        channel_out.write(text.encode("utf-8", "surrogateescape") + b"\n")
        channel_out.flush()


serve()
