"""Connectors of the original sremote API: ``sremote.connector.ssh.ClientSSHConnector``
and ``sremote.connector.newt.ClientNEWTConnector``. Both make an ``sremote.Client`` when
a ``sremote.api.RemoteClient`` is made from them."""

import json
import os
import tempfile
from typing import Any, Optional


class ClientConnector:
    """What both connectors share: the sremote and tmp dirs on the host."""

    def __init__(self) -> None:
        self._sremote_dir: Optional[str] = None
        self._tmp_dir: Optional[str] = None
        self._made: Any = None

    def set_sremote_dir(self, route: str) -> None:
        """Where the endpoint lives on the host (default ``$HOME/.sremote``)."""
        self._sremote_dir = route
        if self._made is not None:
            self._made.set_sremote_dir(route)

    def set_tmp_dir(self, route: str) -> None:
        """Where request files and temporary data go (default ``<sremote dir>/tmp``)."""
        self._tmp_dir = route
        if self._made is not None:
            self._made.set_tmp_dir(route)

    def do_self_discovery(self, file_name: str) -> bool:
        """Read ``$HOME/.sremote/<file_name>`` on the host — JSON ``{"sremote": dir,
        "absolute_tmp": dir}`` (a relative tmp is under ``$HOME``) — and use those
        directories. Returns False (configuration unchanged) when there is no such file."""
        from .. import TransportError

        client = self._client()
        with tempfile.TemporaryDirectory(prefix="sremote-discovery-") as d:
            local = os.path.join(d, "location.json")
            try:
                client.pull_file(".sremote/" + file_name, local)
            except TransportError as e:
                if e.kind == "not_found":
                    return False
                raise
            with open(local) as f:
                routes = json.load(f)
        if routes.get("sremote"):
            self.set_sremote_dir(routes["sremote"])
        if routes.get("absolute_tmp"):
            self.set_tmp_dir(routes["absolute_tmp"])
        return True

    def _connect(self) -> Any:
        raise NotImplementedError

    def _client(self) -> Any:
        """The ``sremote.Client`` of this connector (made once)."""
        if self._made is None:
            self._made = self._connect()
            if self._sremote_dir:
                self._made.set_sremote_dir(self._sremote_dir)
            if self._tmp_dir:
                self._made.set_tmp_dir(self._tmp_dir)
        return self._made
