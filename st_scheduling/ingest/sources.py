"""The raw tables' sources: which owners each tenant has, and how each owner's pages are read.

`clients(tenant)` gives the API client holding that tenant's credentials.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

from st_scheduling.ingest.arrow_pages import TablePage, records_parser, typed
from st_scheduling.ingest.pipeline import Source, Window
from st_scheduling.servicetitan import Page, ServiceTitanClient
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


def scheduler_ids(client: ServiceTitanClient) -> list[str]:
    return [record["id"] for batch in client.schedulers() for record in batch]


def schedulers(clients: Clients) -> Source:
    """The scheduler list; its one owner is the tenant itself."""

    def pages(tenant: int, _owner: str) -> Iterator[TablePage]:
        client = clients(tenant)
        return client.read_window(client.path("schedulers"), records_parser(SCHEDULERS, {"tenant_id": tenant}))

    return Source(SCHEDULERS, None, lambda tenant: [str(tenant)], pages)


def _sessions(
    table: RawTable, kind: str, clients: Clients, window: Window, owners_of: Callable[[int], list[str]]
) -> Source:
    def pages(tenant: int, owner: str) -> Iterator[TablePage]:
        client = clients(tenant)
        parser = records_parser(table, {"tenant_id": tenant, "listed_by_id": owner})
        return client.read_window(
            client.path(kind, owner, "sessions"), parser, created_from=window[0], created_before=window[1]
        )

    return Source(table, window, owners_of, pages)


def scheduler_sessions(clients: Clients, window: Window) -> Source:
    """Every scheduler's sessions created in `window`; the owners are the schedulers the tenant lists now."""
    return _sessions(SCHEDULER_SESSIONS, "schedulers", clients, window, lambda tenant: scheduler_ids(clients(tenant)))


def router_sessions(clients: Clients, window: Window, routers: dict[int, list[str]]) -> Source:
    """The configured routers' sessions created in `window`."""
    return _sessions(ROUTER_SESSIONS, "routers", clients, window, lambda tenant: routers.get(tenant, []))


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
