"""The API's OAuth: client-credential tokens issued per tenant, and every request's app key and token checked.

Tokens are HMAC-signed `serial.issued.tenant.signature` strings: they expire after `TOKEN_LIFETIME` and can
all be revoked at once (the `token_expiry` fault).
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import parse_qs

from st_scheduling.simulator.problems import ApiError

TOKEN_LIFETIME = 900


@dataclass(frozen=True)
class Credentials:
    """The app key the simulator accepts and the stem of each tenant's OAuth client (public demo values).

    As on ServiceTitan, every connected tenant has a client id and secret of its own, and the app key is
    the app's, the same for every tenant.
    """

    client_id: str = "simulator-client"
    client_secret: str = "simulator-secret"
    app_key: str = "simulator-app-key"

    def for_tenant(self, tenant_id: int) -> tuple[str, str]:
        """The tenant's (client id, client secret)."""
        return f"{self.client_id}-{tenant_id}", f"{self.client_secret}-{tenant_id}"

    def __repr__(self) -> str:
        return f"Credentials(client_id={self.client_id!r}, client_secret=***, app_key=***)"


def _same(given: str, expected: str) -> bool:
    """Constant-time comparison that takes any text (compare_digest refuses non-ASCII str)."""
    return hmac.compare_digest(given.encode(), expected.encode())


class TokenAuthority:
    """Issues tenants' tokens and tells which tenant a request's token was issued for."""

    def __init__(self, credentials: Credentials, seed: int, now: Callable[[], int]):
        self.credentials, self.now = credentials, now
        self._signing_key = hashlib.sha256(f"simulator-tokens/{seed}".encode()).digest()
        self._serial = 0
        self._revoked_through = 0
        self._lock = threading.Lock()

    def _sign(self, serial: int, issued: int, tenant_id: int) -> str:
        message = f"{serial}.{issued}.{tenant_id}".encode()
        return f"{serial}.{issued}.{tenant_id}.{hmac.new(self._signing_key, message, hashlib.sha256).hexdigest()}"

    def issue(self, environ: dict, tenant_ids: Iterable[int]) -> dict:
        """The token response for a `client_credentials` form naming one tenant's client."""
        length = int(environ.get("CONTENT_LENGTH") or 0)
        form = {k: v[-1] for k, v in parse_qs(environ["wsgi.input"].read(length).decode()).items()}
        if form.get("grant_type") != "client_credentials":
            raise ApiError(400, "unsupported_grant_type", {"grant_type": ["Only client_credentials is supported."]})
        tenant_id = next(
            (
                t
                for t in tenant_ids
                if all(
                    map(
                        _same,
                        (form.get("client_id", ""), form.get("client_secret", "")),
                        self.credentials.for_tenant(t),
                    )
                )
            ),
            None,
        )
        if tenant_id is None:
            raise ApiError(401, "invalid_client")
        with self._lock:
            self._serial += 1
            serial = self._serial
        return {
            "access_token": self._sign(serial, self.now(), tenant_id),
            "token_type": "Bearer",
            "expires_in": TOKEN_LIFETIME,
        }

    def tenant_of(self, environ: dict, query: dict) -> int:
        """The tenant the request's token was issued for."""
        app_key = environ.get("HTTP_ST_APP_KEY") or query.get("servicetitanapplicationkey", "")
        if not _same(app_key, self.credentials.app_key):
            raise ApiError(401, "Missing or invalid application key.")
        token = environ.get("HTTP_AUTHORIZATION", "")
        token = token[7:] if token[:7].lower() == "bearer " else token
        parts = token.split(".")
        try:
            serial, issued, tenant_id = int(parts[0]), int(parts[1]), int(parts[2])
        except (IndexError, ValueError):
            raise ApiError(401, "Missing or invalid access token.") from None
        if not _same(self._sign(serial, issued, tenant_id), token):
            raise ApiError(401, "Missing or invalid access token.")
        if self.now() - issued >= TOKEN_LIFETIME or serial <= self._revoked_through:
            raise ApiError(401, "The access token has expired.")
        return tenant_id

    def revoke_issued(self) -> None:
        """Every token issued so far expires now."""
        with self._lock:
            self._revoked_through = self._serial
