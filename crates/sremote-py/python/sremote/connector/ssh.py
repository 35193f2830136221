"""``ClientSSHConnector(host)`` of the original sremote, on the Rust ssh connector (the
system ``ssh``: your config, agent and keys apply). ``host`` may also be a name from the
hosts config (``~/.config/sremote/config.toml``)."""

from typing import Any, Optional

from . import ClientConnector


class ClientSSHConnector(ClientConnector):
    """>>> connector = ClientSSHConnector("remote.host.org"); connector.auth("username")"""

    def __init__(self, host: str, ssh_config: Optional[str] = None) -> None:
        super().__init__()
        self.host = host
        self.username: Optional[str] = None
        self.ssh_config = ssh_config

    def auth(self, username: Optional[str] = None, password: Optional[str] = None) -> bool:
        """Log in as ``username`` (keys or agent; a password is not used by ssh here)."""
        self.username = username
        return True

    def _connect(self) -> Any:
        from .. import Client

        return Client(self.host, user=self.username, ssh_config=self.ssh_config)
