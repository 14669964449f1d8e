"""Which rows of a mart a set of changed sessions can alter, and which sessions recompute exactly those rows.

An incremental build deletes the rows a mart's scope selects and inserts the model's rows that the same scope
selects, the model reading only the sessions the scope names. It is exact when every row the changes can alter
is selected, and every selected row is computed only from sessions the scope reads. The scope tables, filled
from the changes (`build.py`), are temporary tables of the build's connection:

- `scope_periods (tenant_id, grain, period_start)`: per tenant, every period of the mart's lengths (day, week,
  month) holding a changed session's creation, arrival-window or booking day;
- `scope_days (tenant_id, day)`: every day of those periods (only the sessions dated on them are read);
- `scope_converters (tenant_id, customer_key)`: customers with a booking on one of those days;
- `scope_customers` and `scope_schedulers (tenant_id, customer_key | scheduler_id)`: those of changed sessions.

The conditions themselves are in `sql/build/scope.sql`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from st_scheduling.transform.templates import Fragment, render


@dataclass(frozen=True)
class Periods:
    """Rows that each count one tenant's sessions of one period starting at `column`: of the length in
    `grain_column` (day, week or month), or else of the length `grain`."""

    column: str
    grain_column: str | None = None
    grain: Literal["day", "week", "month"] = "day"
    # Rows credit a booking to the same customer's earlier sessions (attribution): a row of a booking day also
    # reads every session of the customers who booked that day, and a changed session touches the bookings its
    # customer made within the attribution window after it.
    touches: bool = False
    # A statement of sql/build/scope.sql selecting (tenant_id, day) of a raw table the mart also reads per day,
    # for the rows stored since the last build (its placeholder `stored_since`).
    raw_days: str | None = None
    table = "scope_periods"  # empty: nothing this mart counts changed

    @property
    def grains(self) -> tuple[str, ...]:
        return ("day", "week", "month") if self.grain_column else (self.grain,)

    def rows(self, alias: str) -> Fragment:
        if self.grain_column:
            return render("build/scope:period_rows", alias=alias, column=self.column, grain_column=self.grain_column)
        return render("build/scope:fixed_period_rows", alias=alias, column=self.column)

    def sessions(self, alias: str) -> Fragment:
        dated = render("build/scope:dated_sessions", alias=alias)
        if not self.touches:
            return dated
        return render("build/scope:dated_or_converting_sessions", alias=alias, dated=dated)


@dataclass(frozen=True)
class Keys:
    """Rows that each belong to one customer or one scheduler of a tenant (`column`), recomputed from all of
    that customer's or scheduler's sessions."""

    column: str  # customer_key or scheduler_id
    table: str  # scope_customers or scope_schedulers; empty: nothing this mart counts changed

    def rows(self, alias: str) -> Fragment:
        return render("build/scope:keyed_rows", alias=alias, table=self.table, column=self.column)

    sessions = rows


EACH_CUSTOMER = Keys("customer_key", "scope_customers")
EACH_SCHEDULER = Keys("scheduler_id", "scope_schedulers")

Scope = Periods | Keys
