"""Exceptions the client raises.

Their messages are built only from what the client itself knows: status codes, endpoints, page numbers,
field names, types, record positions and trace ids. Never from response body text or record values, so no
credential echoed by an error page and no customer's details can reach a log or the event log.
"""

from __future__ import annotations

import re

_SAFE_TOKEN = re.compile(r"[A-Za-z0-9_.\-:\[\]/]{1,80}")


def safe_token(value: object) -> str | None:
    """`value` if it is a short identifier-like string (a trace id, a field name), else None."""
    return value if isinstance(value, str) and _SAFE_TOKEN.fullmatch(value) else None


class ServiceTitanError(Exception):
    """Base class for every error the client raises."""


class ConfigurationError(ServiceTitanError):
    """A setting needed to reach the API is missing or invalid."""


class AuthenticationError(ServiceTitanError):
    """The token endpoint or the API refused the credentials."""


class ApiResponseError(ServiceTitanError):
    """The API answered with a status that retrying cannot fix (4xx, or a redirect)."""

    def __init__(
        self, endpoint: str, status: int, reason: str, fields: list[str] | None = None, trace_id: str | None = None
    ):
        self.endpoint, self.status, self.reason, self.trace_id = endpoint, status, reason, trace_id
        self.fields = [f for f in (fields or []) if safe_token(f)]
        about = f" (fields: {', '.join(self.fields)})" if self.fields else ""
        trace = f" [traceId {trace_id}]" if trace_id else ""
        super().__init__(f"{endpoint} returned {status} {reason}{about}{trace}")


class MalformedResponseError(ServiceTitanError):
    """A response body was not the JSON the spec promises.

    `retryable` when the body could not be read at all (not JSON, or a compressed body that does not
    decompress): a transfer cut short looks like that, and the next attempt may be whole. JSON of the wrong
    shape is the server's answer, and asking again gets the same one.
    """

    def __init__(self, endpoint: str, page: int | None, problem: str, *, retryable: bool = False):
        self.endpoint, self.page, self.problem, self.retryable = endpoint, page, problem, retryable
        where = f"{endpoint} page {page}" if page else endpoint
        super().__init__(f"{where} returned a malformed body: {problem}")


class RecordTypeError(ServiceTitanError):
    """A record's field is missing where required, or has a type the spec does not allow."""

    def __init__(self, endpoint: str, page: int | None, position: int | None, field: str, problem: str):
        self.endpoint, self.page, self.position, self.field = endpoint, page, position, field
        where = f"{endpoint} page {page}" if page else endpoint
        record = f"record {position}" if position is not None else "the record"
        super().__init__(f"{where}: {record} (0-based, in page order) has field {field!r} {problem}")


class PagingError(ServiceTitanError):
    """Paging did not end the way the API promises: endless pages, or a page repeating the previous one."""


class ResponseLimitError(ServiceTitanError):
    """A response was larger than the configured cap (as received, or once decompressed)."""


class RetriesExhaustedError(ServiceTitanError):
    """A call kept failing transiently (429, 409, 5xx, timeouts) past the retry budget."""

    def __init__(self, endpoint: str, attempts: int, last_problem: str):
        self.endpoint, self.attempts, self.last_problem = endpoint, attempts, last_problem
        super().__init__(f"{endpoint} still failing after {attempts} attempts; last problem: {last_problem}")


class IncompleteWindowError(ServiceTitanError):
    """Paging a window kept returning fewer distinct records than its totalCount."""

    def __init__(self, endpoint: str, fetched: int, total: int, passes: int):
        self.endpoint, self.fetched, self.total = endpoint, fetched, total
        super().__init__(f"{endpoint}: {fetched} distinct records of totalCount {total} after {passes} passes")
