"""A client for the ServiceTitan Scheduling Pro API (v2). Plain Python: no Dagster here."""

from st_scheduling.servicetitan.client import (
    CallStats,
    Credentials,
    Endpoints,
    Limits,
    RetryPolicy,
    ServiceTitanClient,
)
from st_scheduling.servicetitan.errors import (
    ApiResponseError,
    AuthenticationError,
    ConfigurationError,
    IncompleteWindowError,
    MalformedResponseError,
    PagingError,
    RecordTypeError,
    ResponseLimitError,
    RetriesExhaustedError,
    ServiceTitanError,
)
from st_scheduling.servicetitan.paging import Page

__all__ = [
    "ApiResponseError",
    "AuthenticationError",
    "CallStats",
    "ConfigurationError",
    "Credentials",
    "Endpoints",
    "IncompleteWindowError",
    "Limits",
    "MalformedResponseError",
    "Page",
    "PagingError",
    "RecordTypeError",
    "ResponseLimitError",
    "RetriesExhaustedError",
    "RetryPolicy",
    "ServiceTitanClient",
    "ServiceTitanError",
]
