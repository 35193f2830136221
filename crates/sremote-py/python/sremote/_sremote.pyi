"""Type stubs of the native module sremote._sremote (see sremote/__init__.py for the rules)."""

import datetime
import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

__version__: str

class SremoteError(Exception): ...

class TransportError(SremoteError):
    kind: str
    host: str
    action: str
    detail: str
    hint: str

class NotSetupError(SremoteError):
    host: str
    reason: str

class RemoteError(SremoteError):
    kind: str
    host: str
    module: str
    function: str
    message: str
    remote_type: Optional[str]
    traceback: Optional[str]
    stdout: str
    stderr: str

class ModulesMissingError(SremoteError):
    host: str
    missing: List[str]
    present: Dict[str, str]

class ProtocolError(SremoteError):
    host: str
    received: str

class DecodeError(SremoteError):
    host: str

class UsageError(SremoteError): ...

class SetupError(SremoteError):
    host: str
    line: int
    text: str
    status: int
    output: str

class Reference:
    name: str
    def __init__(self, name: str) -> None: ...

class CallOutput:
    value: Any
    stdout: str
    stderr: str
    meta: Dict[str, Any]

class ExecResult:
    returncode: Optional[int]
    stdout: str
    stderr: str
    stdout_bytes: bytes
    stderr_bytes: bytes
    args: List[str]

class AsyncResult:
    msg_id: str
    metadata: Dict[str, Any]
    def get(self, timeout: Optional[float] = None) -> Any: ...
    def ready(self) -> bool: ...
    def wait(self, timeout: Optional[float] = None) -> bool: ...
    def successful(self) -> bool: ...
    def cancel(self) -> None: ...

class Connector:
    host: str

class LocalConnector(Connector):
    def __init__(self, home: Optional[Union[str, os.PathLike[str]]] = None) -> None: ...

class SshConnector(Connector):
    def __init__(
        self,
        destination: str,
        *,
        ssh_config: Optional[Union[str, os.PathLike[str]]] = None,
        port: Optional[int] = None,
        user: Optional[str] = None,
        keyfile: Optional[Union[str, os.PathLike[str]]] = None,
        known_hosts: Optional[Union[str, os.PathLike[str]]] = None,
        strict_host_keys: Optional[bool] = None,
        connect_timeout: Optional[float] = None,
    ) -> None: ...

class NewtConnector(Connector):
    def __init__(
        self,
        url: str,
        machine: str,
        user: Optional[str] = None,
        password: Optional[str] = None,
        token: Optional[str] = None,
        ca: Optional[Union[str, os.PathLike[str]]] = None,
        connect_timeout: Optional[float] = None,
    ) -> None: ...

class Client:
    host: str
    name: str
    timeout: Optional[float]
    def __init__(
        self,
        host: Union[str, Connector, None] = None,
        *,
        ssh_config: Optional[str] = None,
        config: Optional[str] = None,
        timeout: Optional[float] = None,
        auto_bootstrap: bool = True,
        mode: Optional[str] = None,
        user: Optional[str] = None,
        password: Optional[str] = None,
        token: Optional[str] = None,
        ca: Optional[str] = None,
        setup: Optional[List[str]] = None,
        login_shell: Optional[bool] = None,
        venv: Optional[str] = None,
        needs: Optional[Dict[str, Any]] = None,
        persist: Union[bool, float, str, None] = None,
        prompt: Optional[Callable[[str], Optional[str]]] = None,
    ) -> None: ...
    @property
    def setup(self) -> List[str]: ...
    @property
    def login_shell(self) -> bool: ...
    @property
    def venv(self) -> Optional[str]: ...
    @property
    def placement(self) -> Optional[Dict[str, Any]]: ...
    def call(self, module: str, function: str, *args: Any, **kwargs: Any) -> Any: ...
    def call_output(self, module: str, function: str, *args: Any, **kwargs: Any) -> CallOutput: ...
    def call_async(self, module: str, function: str, *args: Any, **kwargs: Any) -> AsyncResult: ...
    def _call_shipped(self, module: str, function: str, code: List[Tuple[str, str]], args: Tuple[Any, ...],
                      kwargs: Optional[Dict[str, Any]] = None) -> CallOutput: ...
    def _call_shipped_async(self, module: str, function: str, code: List[Tuple[str, str]], args: Tuple[Any, ...],
                            kwargs: Optional[Dict[str, Any]] = None) -> AsyncResult: ...
    def exec(
        self,
        argv: Sequence[str],
        *,
        stdin: Optional[bytes] = None,
        env: Optional[Dict[str, str]] = None,
        cwd: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> ExecResult: ...
    def push_file(self, local: Union[str, os.PathLike[str]], remote: str,
                  progress: Optional[Callable[[int], Any]] = None) -> None: ...
    def pull_file(self, remote: str, local: Union[str, os.PathLike[str]],
                  progress: Optional[Callable[[int], Any]] = None) -> None: ...
    def bootstrap(self) -> Dict[str, Any]: ...
    def register_env(self, name: str, value: str) -> None: ...
    def register_env_if_unset(self, name: str, value: str) -> None: ...
    def add_path(self, directory: str) -> None: ...
    def set_sremote_dir(self, directory: str) -> None: ...
    def set_tmp_dir(self, directory: str) -> None: ...
    def check_modules(self, *modules: str) -> None: ...
    def install_packages(self, packages: Sequence[str]) -> Dict[str, Any]: ...
    def install_git_module(self, url: str, branch: str, name: str) -> Dict[str, Any]: ...
    def probe(self) -> Dict[str, Any]: ...
    def push_value(self, name: str, value: Any) -> None: ...
    def pull_value(self, name: str) -> Any: ...
    def close(self) -> None: ...
    def __enter__(self) -> "Client": ...
    def __exit__(self, *exc: Any) -> bool: ...


# -- jobs (the native half of sremote.jobs; use Client.submit / sremote.Job) -----------

class JobError(SremoteError):
    job_id: Optional[str]
    host: Optional[str]

class JobDiedError(JobError):
    failure_class: str
    reason: str

class JobCancelledError(JobError): ...

class NativeJob:
    @property
    def id(self) -> str: ...
    @property
    def host(self) -> str: ...
    @property
    def reattached(self) -> bool: ...
    def record(self) -> Dict[str, Any]: ...
    def status(self) -> Dict[str, Any]: ...
    def result(self) -> Tuple[Any, str, str]: ...
    def log(self, offset: int) -> Tuple[bytes, int]: ...
    def mark_processed(self) -> None: ...
    def cancel(self, grace: float = 10.0) -> Dict[str, Any]: ...
    def clean(self) -> None: ...

def submit_job(
    client: Client,
    module: str,
    function: str,
    args: Sequence[Any],
    kwargs: Optional[Dict[str, Any]] = None,
    code: Sequence[Tuple[str, str]] = ...,
    resources: Optional[Dict[str, Any]] = None,
    scheduler: Optional[str] = None,
    name: Optional[str] = None,
    files: Sequence[Tuple[str, str]] = ...,
    force: bool = False,
    store_path: Optional[str] = None,
) -> NativeJob: ...
def open_job(client: Client, id: str, store_path: Optional[str] = None) -> NativeJob: ...
def job_records(
    host: Optional[str] = None,
    state: Optional[str] = None,
    id: Optional[str] = None,
    store_path: Optional[str] = None,
) -> List[Dict[str, Any]]: ...
def job_store_path(store_path: Optional[str] = None) -> str: ...
