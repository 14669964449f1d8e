"""A client for the ServiceTitan Scheduling Pro API (v2). Plain Python: no Dagster here."""

from st_scheduling.servicetitan.client import (
    CallStats,
    Credentials,
    Endpoints,
    Page,
    RetryPolicy,
    ServiceTitanClient,
)
from st_scheduling.servicetitan.errors import (
    ApiResponseError,
    AuthenticationError,
    ConfigurationError,
    IncompleteWindowError,
    MalformedResponseError,
    RecordTypeError,
    RetriesExhaustedError,
    ServiceTitanError,
)

__all__ = [
    "ApiResponseError",
    "AuthenticationError",
    "CallStats",
    "ConfigurationError",
    "Credentials",
    "Endpoints",
    "IncompleteWindowError",
    "MalformedResponseError",
    "Page",
    "RecordTypeError",
    "RetriesExhaustedError",
    "RetryPolicy",
    "ServiceTitanClient",
    "ServiceTitanError",
]
