from typing import Any, Dict, Iterable, List, Optional, Tuple, Union

from ._sremote import (
    AsyncResult as AsyncResult,
    CallOutput as CallOutput,
    Connector as Connector,
    DecodeError as DecodeError,
    ExecResult as ExecResult,
    LocalConnector as LocalConnector,
    ModulesMissingError as ModulesMissingError,
    NewtConnector as NewtConnector,
    NotSetupError as NotSetupError,
    ProtocolError as ProtocolError,
    Reference as Reference,
    RemoteError as RemoteError,
    SetupError as SetupError,
    SremoteError as SremoteError,
    SshConnector as SshConnector,
    TransportError as TransportError,
    UsageError as UsageError,
    __version__ as __version__,
)
from ._sremote import Client as _NativeClient
from .dataset import Dataset as Dataset
from .jobs import (
    Job as Job,
    JobCancelledError as JobCancelledError,
    JobDiedError as JobDiedError,
    JobError as JobError,
    JobsMixin,
)
from .functions import FunctionsMixin, RemoteFunction as RemoteFunction, ShipError as ShipError
from .magic import load_ipython_extension as load_ipython_extension

magic_dataset: Optional[Dataset]

class Client(FunctionsMixin, JobsMixin, _NativeClient):
    def __enter__(self) -> "Client": ...
    async def acall(self, module: str, function: str, *args: Any, **kwargs: Any) -> Any: ...
    def push(self, namespace: Dict[str, Any]) -> None: ...
    def pull(self, names: Union[str, Tuple[str, ...], List[str]]) -> Any: ...
    def __setitem__(self, name: str, value: Any) -> None: ...
    def __getitem__(self, name: str) -> Any: ...
    def execute(self, code: str) -> None: ...
    def run(self, path: Any) -> None: ...
