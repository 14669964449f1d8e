"""Which rows of a mart a set of changed sessions can alter, and which sessions recompute exactly those rows.

An incremental build deletes the rows a mart's scope selects and inserts the model's rows that the same scope
selects, the model reading only the sessions the scope names. It is exact when every row the changes can alter
is selected, and every selected row is computed only from sessions the scope reads. The scope tables, filled
from the changes (`incremental.py`), are temporary tables of the build's connection:

- `scope_spans (tenant_id, span_start, span_end)`: per tenant, dates covering every day, week and month holding
  a changed session's creation, arrival-window or booking day;
- `scope_converters (tenant_id, customer_key)`: customers with a booking whose day falls in their tenant's span;
- `scope_customers` and `scope_schedulers (tenant_id, customer_key | scheduler_id)`: those of changed sessions.
"""

from __future__ import annotations

from dataclasses import dataclass

SESSION_DAYS = ("session_date", "timeslot_date", "booked_date")


@dataclass(frozen=True)
class Periods:
    """Rows that each count one tenant's sessions of one period: the day, week or month starting at `column`
    (`grain` is the SQL naming the length: a column holding day/week/month, or a literal)."""

    column: str
    grain: str = "'day'"
    # Rows credit a booking to the same customer's earlier sessions (attribution): a row of a booking day also
    # reads every session of the customers who booked that day, and a changed session touches the bookings its
    # customer made within the attribution window after it.
    touches: bool = False
    # A raw table whose rows the mart also reads per day: (tenant_id, day) of rows stored since the last build,
    # with `$since` standing for that time.
    raw_days: str | None = None
    table = "scope_spans"  # empty: nothing this mart counts changed

    def rows(self, alias: str) -> str:
        return (
            f"EXISTS (SELECT 1 FROM scope_spans AS s WHERE s.tenant_id = {alias}.tenant_id "
            f"AND {alias}.{self.column} >= s.span_start "
            f"AND period_end({alias}.{self.column}, {self.grain}) <= s.span_end)"
        )

    def sessions(self, alias: str) -> str:
        in_span = " OR ".join(f"({alias}.{day} >= s.span_start AND {alias}.{day} < s.span_end)" for day in SESSION_DAYS)
        dated = f"EXISTS (SELECT 1 FROM scope_spans AS s WHERE s.tenant_id = {alias}.tenant_id AND ({in_span}))"
        if not self.touches:
            return dated
        return (
            f"({dated} OR EXISTS (SELECT 1 FROM scope_converters AS c WHERE c.tenant_id = {alias}.tenant_id "
            f"AND c.customer_key = {alias}.customer_key))"
        )


@dataclass(frozen=True)
class Keys:
    """Rows that each belong to one customer or one scheduler of a tenant (`column`), recomputed from all of
    that customer's or scheduler's sessions."""

    column: str  # customer_key or scheduler_id
    table: str  # scope_customers or scope_schedulers; empty: nothing this mart counts changed

    def rows(self, alias: str) -> str:
        return (
            f"EXISTS (SELECT 1 FROM {self.table} AS k WHERE k.tenant_id = {alias}.tenant_id "
            f"AND k.{self.column} = {alias}.{self.column})"
        )

    sessions = rows


CUSTOMERS = Keys("customer_key", "scope_customers")
SCHEDULERS = Keys("scheduler_id", "scope_schedulers")

Scope = Periods | Keys
