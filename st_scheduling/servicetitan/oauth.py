"""OAuth2 client credentials: one credential's bearer token, fetched once however many threads ask for it, kept
until shortly before it expires, and dropped when the API refuses it."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass

from st_scheduling.servicetitan.errors import ApiResponseError, AuthenticationError, MalformedResponseError
from st_scheduling.servicetitan.retry import Retrying
from st_scheduling.servicetitan.transport import Transport, json_body

_BEARER_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")  # RFC 6750's b64token
ENDPOINT = "token endpoint"  # how errors name it: its URL is a setting, not the API's


@dataclass(frozen=True, repr=False)
class Credentials:
    client_id: str
    client_secret: str
    app_key: str

    def __repr__(self) -> str:
        return f"Credentials(client_id={self.client_id!r}, client_secret=***, app_key=***)"


class Tokens:
    """The token of `credentials` from `token_url`. `owner` names whose credentials these are in errors
    ("tenant 123")."""

    def __init__(
        self,
        credentials: Credentials,
        token_url: str,
        owner: str,
        transport: Transport,
        retrying: Retrying,
        *,
        clock: Callable[[], float],
        refresh_margin: float,
    ):
        self._credentials, self._token_url, self.owner = credentials, token_url, owner
        self._transport, self._retrying, self._clock, self._margin = transport, retrying, clock, refresh_margin
        self._token: str | None = None
        self._expires = 0.0
        self._lock = threading.Lock()

    def current(self) -> str:
        """The cached token, fetched (once, even with many callers) when missing or about to expire."""
        with self._lock:
            if self._token is None or self._clock() >= self._expires - self._margin:
                self._token, self._expires = self._fetch()
            return self._token

    def invalidate(self, token: str) -> None:
        """Drop `token` if it is still the cached one (another thread may have replaced it already)."""
        with self._lock:
            if self._token == token:
                self._token = None

    def _fetch(self) -> tuple[str, float]:
        """A new token and when (on the client's clock) it expires."""
        form = {
            "grant_type": "client_credentials",
            "client_id": self._credentials.client_id,
            "client_secret": self._credentials.client_secret,
        }
        try:
            response, body, _ = self._retrying.call(
                ENDPOINT,
                None,
                lambda seconds: self._transport.post_form(self._token_url, form, seconds),
                lambda raw: json_body(raw, ENDPOINT),
            )
        except ApiResponseError as err:
            raise AuthenticationError(
                f"the token endpoint refused the client credentials for {self.owner} "
                f"({err.status} {err.reason}): check the client id and secret"
            ) from None
        finally:
            self._retrying.stats.count(token_fetches=1)
        if response.status == 401:
            raise AuthenticationError(
                f"the token endpoint refused the client credentials for {self.owner} (401): "
                "check the client id and secret"
            )
        if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            raise MalformedResponseError(ENDPOINT, None, "no access_token string in the body")
        token: str = body["access_token"]
        if not _BEARER_TOKEN.fullmatch(token):
            raise MalformedResponseError(
                ENDPOINT, None, "an access_token that is empty or not a bearer token (RFC 6750 characters only)"
            )
        expires = body.get("expires_in")
        return token, self._clock() + (float(expires) if isinstance(expires, int | float) else 900.0)
