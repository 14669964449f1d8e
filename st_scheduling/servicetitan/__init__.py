"""A client for the ServiceTitan Scheduling Pro API (v2). Plain Python: no Dagster here."""

from st_scheduling.servicetitan.client import ServiceTitanClient
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
from st_scheduling.servicetitan.oauth import Credentials
from st_scheduling.servicetitan.paging import Page
from st_scheduling.servicetitan.retry import CallStats, RetryPolicy
from st_scheduling.servicetitan.transport import Endpoints, Limits

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
