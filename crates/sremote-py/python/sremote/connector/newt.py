"""``ClientNEWTConnector(machine)`` of the original sremote: a host behind a NEWT REST API
(NERSC's by default; ``base_url=``, or ``$SREMOTE_NEWT_URL``, for another one such as an
``sremote-gateway``; ``$SREMOTE_NEWT_CA`` or ``ca=`` trusts a self-signed gateway)."""

import os
from typing import Any, Optional

from . import ClientConnector

NERSC_NEWT_URL = "https://newt.nersc.gov/newt"


class ClientNEWTConnector(ClientConnector):
    """>>> connector = ClientNEWTConnector("edison"); connector.auth("username", "password")"""

    def __init__(self, machine: str, base_url: Optional[str] = None, ca: Optional[str] = None) -> None:
        super().__init__()
        self.machine = machine
        self.base_url = base_url or os.environ.get("SREMOTE_NEWT_URL") or NERSC_NEWT_URL
        self.ca = ca or os.environ.get("SREMOTE_NEWT_CA")
        self._user: Optional[str] = None
        self._password: Optional[str] = None

    def auth(self, username: str, password: str) -> bool:
        """Log in with ``username`` and ``password`` (the login happens now)."""
        self._user, self._password = username, password
        self._made = None
        self._client()
        return True

    def _connect(self) -> Any:
        from .. import Client, NewtConnector

        if self._user is None:
            raise ValueError("ClientNEWTConnector: call auth(username, password) first")
        c = NewtConnector(self.base_url, self.machine, self._user, self._password, ca=self.ca)
        return Client(c)
