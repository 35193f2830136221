"""The original sremote API (``import sremote.api as remote``), on the Rust client.

>>> import sremote.api as remote
>>> import sremote.connector.ssh as ssh
>>> connector = ssh.ClientSSHConnector("remote.host.org")
>>> connector.auth("username")
>>> client = remote.RemoteClient(connector)
>>> client.do_bootstrap_install()
>>> client.register_remote_env_variable("myVar", "myValue")
>>> return_value, out = client.do_remote_call("os", "getenv", args=["myVar"])

``do_remote_call`` returns ``(value, stdout)``; failures raise
``ExceptionRemoteExecError`` (= ``sremote.RemoteError``: the call failed on the host)
or ``ExceptionRemoteNotSetup`` (= ``sremote.NotSetupError``), both ``SremoteError``s.
"""

from typing import Any, Dict, List, Optional, Tuple, Union

from . import (
    Client,
    ModulesMissingError,
    NotSetupError,
    RemoteError,
    SremoteError,
)

ExceptionRemoteExecError = RemoteError
ExceptionRemoteNotSetup = NotSetupError
ExceptionRemoteModulesError = ModulesMissingError

__all__ = [
    "RemoteClient", "ExceptionRemoteExecError", "ExceptionRemoteNotSetup",
    "ExceptionRemoteModulesError", "SremoteError",
]


class RemoteClient:
    """Runs Python calls on the host its connector reaches (the original sremote's
    ``RemoteClient``); ``.client`` is the underlying ``sremote.Client``."""

    def __init__(self, connector: Any) -> None:
        self._connector = connector
        self.client: Client = connector._client()

    def do_bootstrap_install(self) -> bool:
        """Install the endpoint on the host (a no-op when the right one is there)."""
        self.client.bootstrap()
        return True

    def do_install_git_module(self, git_url: str, branch: Optional[str] = None,
                              keep_after: Optional[str] = None) -> bool:
        """Clone ``git_url`` (``branch``, default master) on the host and install it into
        the endpoint's venv, as ``keep_after`` (default: the repository's name)."""
        name = keep_after or _repo_name(git_url)
        self.client.install_git_module(git_url, branch or "master", name)
        return True

    def do_remote_call(self, module_name: str, method_name: str,
                       args: Union[List[Any], Dict[str, Any], None] = None,
                       kwargs: Optional[Dict[str, Any]] = None,
                       keep_env: bool = False) -> Tuple[Any, str]:
        """``module_name.method_name(*args, **kwargs)`` on the host: ``(value, stdout)``.
        ``args`` may be a list (positional) or a dict (keyword arguments)."""
        positional: List[Any] = []
        named: Dict[str, Any] = dict(kwargs or {})
        if isinstance(args, dict):
            named.update(args)
        elif args is not None:
            if not isinstance(args, (list, tuple)):
                raise TypeError("args must be a list or a dict, not %s" % type(args).__name__)
            positional = list(args)
        out = self.client.call_output(module_name, method_name, *positional, **named)
        return out.value, out.stdout

    def register_remote_env_variable(self, name: str, value: str, only_if_no_set: bool = False) -> None:
        """Set ``name=value`` for every later call (only when unset there, if asked)."""
        if only_if_no_set:
            self.client.register_env_if_unset(name, value)
        else:
            self.client.register_env(name, value)

    def register_remote_path(self, path: str) -> None:
        """Put ``path`` first in PATH and PYTHONPATH of every later call."""
        self.client.add_path(path)

    add_remote_path = register_remote_path

    def register_remote_module(self, module_name: str) -> None:
        """Check now that ``module_name`` is on the host: ``ExceptionRemoteModulesError``
        (``.missing``, ``.present``) when it is absent."""
        self.client.check_modules(module_name)

    def do_check_module(self, module_name: str) -> bool:
        """Whether ``module_name`` can be imported on the host."""
        try:
            self.client.check_modules(module_name)
            return True
        except ModulesMissingError:
            return False

    check_remote_module = do_check_module


def _repo_name(url: str) -> str:
    name = url.rstrip("/").rsplit("/", 1)[-1]
    return name[:-4] if name.endswith(".git") else name
