"""The raw tables' sources: which owners each tenant has, and how each owner's pages are read.

`clients(tenant)` gives the API client holding that tenant's credentials.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

from st_scheduling.ingest.arrow_pages import TablePage, records_parser, typed
from st_scheduling.ingest.pipeline import Source, Window
from st_scheduling.servicetitan import Page, ServiceTitanClient
from st_scheduling.servicetitan.client import WindowBounds
from st_scheduling.servicetitan.models import Record
from st_scheduling.warehouse.raw_tables import (
    ROUTER_PERFORMANCE,
    ROUTER_SESSIONS,
    SCHEDULER_PERFORMANCE,
    SCHEDULER_SESSIONS,
    SCHEDULERS,
    RawTable,
)

Clients = Callable[[int], ServiceTitanClient]
# A read of changes starts this long before the last one began: the API's clock and its commits may lag.
CHANGES_OVERLAP = timedelta(minutes=10)


def scheduler_ids(client: ServiceTitanClient) -> list[str]:
    return [record["id"] for batch in client.schedulers() for record in batch]


def schedulers(clients: Clients) -> Source:
    """The scheduler list; its one owner is the tenant itself."""

    def pages(tenant: int, _owner: str) -> Iterator[TablePage]:
        client = clients(tenant)
        return client.read_window(client.path("schedulers"), records_parser(SCHEDULERS, {"tenant_id": tenant}))

    return Source(SCHEDULERS, None, lambda tenant: [str(tenant)], pages)


def _sessions(
    table: RawTable,
    kind: str,
    clients: Clients,
    owners_of: Callable[[int], list[str]],
    window: Window | None,
    bounds: Callable[[int], WindowBounds],
    changes: bool = False,
) -> Source:
    def pages(tenant: int, owner: str) -> Iterator[TablePage]:
        client = clients(tenant)
        parser = records_parser(table, {"tenant_id": tenant, "listed_by_id": owner})
        return client.read_window(client.path(kind, owner, "sessions"), parser, **bounds(tenant))

    clock = (lambda tenant: clients(tenant).server_time) if changes else None
    return Source(table, window, owners_of, pages, clock)


def _created_in(window: Window) -> Callable[[int], WindowBounds]:
    return lambda _tenant: {"created_from": window[0], "created_before": window[1]}


def _modified_since(marks: dict[int, datetime], otherwise: datetime) -> Callable[[int], WindowBounds]:
    """Sessions modified since the tenant's read mark, less CHANGES_OVERLAP; since `otherwise` without one."""
    return lambda tenant: {"modified_from": marks[tenant] - CHANGES_OVERLAP if tenant in marks else otherwise}


def _scheduler_ids_of(clients: Clients) -> Callable[[int], list[str]]:
    return lambda tenant: scheduler_ids(clients(tenant))


def scheduler_sessions(clients: Clients, window: Window) -> Source:
    """Every scheduler's sessions created in `window`; the owners are the schedulers the tenant lists now."""
    return _sessions(SCHEDULER_SESSIONS, "schedulers", clients, _scheduler_ids_of(clients), window, _created_in(window))


def scheduler_session_changes(clients: Clients, marks: dict[int, datetime], otherwise: datetime) -> Source:
    """Every scheduler's sessions modified since the tenant's read mark (`otherwise` without one), whatever
    day they were created: upserted, and the mark moved."""
    return _sessions(
        SCHEDULER_SESSIONS,
        "schedulers",
        clients,
        _scheduler_ids_of(clients),
        None,
        _modified_since(marks, otherwise),
        changes=True,
    )


def router_sessions(clients: Clients, window: Window, routers: dict[int, list[str]]) -> Source:
    """The configured routers' sessions created in `window`."""
    return _sessions(ROUTER_SESSIONS, "routers", clients, lambda t: routers.get(t, []), window, _created_in(window))


def router_session_changes(
    clients: Clients, marks: dict[int, datetime], otherwise: datetime, routers: dict[int, list[str]]
) -> Source:
    """The configured routers' sessions modified since the tenant's read mark (`otherwise` without one)."""
    return _sessions(
        ROUTER_SESSIONS,
        "routers",
        clients,
        lambda t: routers.get(t, []),
        None,
        _modified_since(marks, otherwise),
        changes=True,
    )


def _performance(
    table: RawTable,
    clients: Clients,
    days: list[Window],
    owners_of: Callable[[int], list[str]],
    fetch: Callable[[ServiceTitanClient, str, datetime, datetime], Record],
) -> Source:
    def pages(tenant: int, owner: str) -> Iterator[TablePage]:
        client = clients(tenant)
        for number, (start, end) in enumerate(days, 1):
            body = fetch(client, owner, start, end)
            lead = {"tenant_id": tenant, "window_start": start, "window_end": end}
            columns = table.to_arrow([body], {c.name: None for c in table.lead_columns})
            yield Page(
                number, typed(table, columns, lead, f"{owner} performance", None), [], number < len(days), None, 0
            )

    return Source(table, (days[0][0], days[-1][1]), owners_of, pages)


def scheduler_performance(clients: Clients, days: list[Window]) -> Source:
    """The API's own numbers per scheduler the tenant lists now, for every day window."""
    return _performance(
        SCHEDULER_PERFORMANCE,
        clients,
        days,
        lambda tenant: scheduler_ids(clients(tenant)),
        ServiceTitanClient.scheduler_performance,
    )


def router_performance(clients: Clients, days: list[Window], routers: dict[int, list[str]]) -> Source:
    return _performance(
        ROUTER_PERFORMANCE,
        clients,
        days,
        lambda tenant: routers.get(tenant, []),
        ServiceTitanClient.router_performance,
    )
