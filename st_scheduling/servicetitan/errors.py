"""Exceptions the client raises. Their messages name what failed and never carry a credential or token."""

from __future__ import annotations


class ServiceTitanError(Exception):
    """Base class for every error the client raises."""


class ConfigurationError(ServiceTitanError):
    """A setting needed to reach the API is missing or invalid."""


class AuthenticationError(ServiceTitanError):
    """The token endpoint or the API refused the credentials."""


class ApiResponseError(ServiceTitanError):
    """The API answered with a client error (4xx) that retrying cannot fix."""

    def __init__(self, endpoint: str, status: int, title: str, errors: dict | None, trace_id: str | None):
        self.endpoint, self.status, self.title, self.errors, self.trace_id = endpoint, status, title, errors or {}, trace_id
        details = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in self.errors.items())
        super().__init__(
            f"{endpoint} returned {status} {title}" + (f" ({details})" if details else "") + f" [traceId {trace_id}]"
        )


class MalformedResponseError(ServiceTitanError):
    """A response body was not the JSON the spec promises."""

    def __init__(self, endpoint: str, page: int | None, excerpt: str):
        self.endpoint, self.page = endpoint, page
        where = f"{endpoint} page {page}" if page else endpoint
        super().__init__(f"{where} returned a malformed body: {excerpt!r}")


class RecordTypeError(ServiceTitanError):
    """A record's field has a type the spec does not allow."""

    def __init__(self, endpoint: str, page: int | None, record_id: object, field: str, expected: str, value: object):
        self.endpoint, self.page, self.record_id, self.field = endpoint, page, record_id, field
        super().__init__(
            f"{endpoint} page {page}: record {record_id} has field {field!r} of type {type(value).__name__}, "
            f"expected {expected}"
        )


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
