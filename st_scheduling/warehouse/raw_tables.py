"""The raw tables: every field of every API record, typed and flattened, plus what the spec does not know.

Columns come from the spec shapes in `st_scheduling.servicetitan.models`: camelCase fields become
snake_case columns, nested objects are flattened with a prefix (`customer_email`, `customer_address_zip`,
`source_utm_campaign`, `milestone_booked`), arrays stay LIST. Fields the spec does not know land in the
`extra` JSON column, so schema drift loses nothing.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from importlib import resources

import pyarrow as pa

from st_scheduling.servicetitan import models

PREFIXES = {
    "customer": "customer_",
    "address": "address_",
    "sourceTracking": "source_",
    "milestoneFrequencyCount": "milestone_",
}
DUCKDB_TYPES = {
    models.STRING: "VARCHAR",
    models.DATETIME: "TIMESTAMPTZ",
    models.INT: "BIGINT",
    models.BOOL: "BOOLEAN",
    models.FLOAT: "DOUBLE",
    models.STRING_LIST: "VARCHAR[]",
    models.JSON: "JSON",
}
# As read from JSON: timestamps are text until checked and cast; JSON fields are text.
ARROW_TYPES = {
    models.STRING: pa.string(),
    models.DATETIME: pa.string(),
    models.INT: pa.int64(),
    models.BOOL: pa.bool_(),
    models.FLOAT: pa.float64(),
    models.STRING_LIST: pa.list_(pa.string()),
    models.JSON: pa.string(),
}
# As staged in Parquet for the commit: timestamps are instants.
STAGED_TYPES = {**ARROW_TYPES, models.DATETIME: pa.timestamp("us", tz="UTC")}
SPEC_SCHEMAS = {
    "session": "SchedulingPro.V2.SchedulerSessionResponse",
    "scheduler": "SchedulingPro.V2.SchedulerResponse",
    "scheduler_performance": "SchedulingPro.V2.SchedulerPerformanceResponse",
    "router_performance": "SchedulingPro.V2.RouterPerformanceResponse",
}


def snake(name: str) -> str:
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


@dataclass(frozen=True)
class Column:
    name: str
    path: tuple[str, ...]  # where the value sits in the API record; empty for platform columns
    kind: str
    description: str

    @property
    def duckdb_type(self) -> str:
        return DUCKDB_TYPES[self.kind]


@dataclass(frozen=True)
class RawTable:
    """One raw table: its API shape, the platform columns before it, and how a write window is scoped."""

    name: str
    shape: dict
    spec_schema: str
    lead_columns: tuple[Column, ...]  # platform columns set by the writer, not read from records
    window_column: str | None  # rows of a tenant with this column in [start, end) form a write window
    description: str
    key: tuple[str, ...] = ("tenant_id", "id")
    owner_column: str | None = None  # the scheduler or router whose listing returned the row

    @property
    def pii_columns(self) -> frozenset[str]:
        """Columns holding a customer's personal data (tagged `pii` in Dagster, never in metadata)."""
        return frozenset(c.name for c in self.columns if c.name in SESSION_PII)

    @functools.cached_property
    def api_columns(self) -> tuple[Column, ...]:
        return tuple(_columns(self.shape, (), "", _spec_descriptions(self.spec_schema)))

    @property
    def columns(self) -> tuple[Column, ...]:
        return (*self.lead_columns, *self.api_columns, *TRAILING_COLUMNS)

    @property
    def qualified(self) -> str:
        return f"raw.{self.name}"

    def ddl(self) -> str:
        cols = ",\n  ".join(f"{c.name} {c.duckdb_type}" for c in self.columns)
        return f"CREATE TABLE IF NOT EXISTS {self.qualified} (\n  {cols}\n)"

    @functools.cached_property
    def arrow_schema(self) -> pa.Schema:
        return pa.schema(
            [(c.name, ARROW_TYPES[c.kind]) for c in (*self.lead_columns, *self.api_columns)] + [("extra", pa.string())]
        )

    @functools.cached_property
    def staged_schema(self) -> pa.Schema:
        """The staged Parquet files' schema: every column but the writer's own (ingested_at, run_id,
        commit_number)."""
        return pa.schema(
            [(c.name, STAGED_TYPES[c.kind]) for c in (*self.lead_columns, *self.api_columns)] + [("extra", pa.string())]
        )

    @functools.cached_property
    def nested_arrow_schema(self) -> pa.Schema:
        """The API shape as Arrow structs, so Arrow's C++ converter reads whole pages of records."""
        # JSON fields are left out here (Arrow would need their shape) and filled from the records.
        return pa.schema([(name, _nested_type(kind)) for name, kind in self.shape.items() if kind != models.JSON])

    def to_arrow(self, records: list[dict], lead: dict) -> pa.Table:
        """Flatten API records into an Arrow table; `lead` gives the platform columns' values."""
        nested = pa.Table.from_pylist(records, schema=self.nested_arrow_schema)
        while any(pa.types.is_struct(field.type) for field in nested.schema):
            nested = nested.flatten()
        columns: dict[str, object] = {c.name: [lead[c.name]] * len(records) for c in self.lead_columns}
        for column in self.api_columns:
            if column.kind == models.JSON:
                columns[column.name] = [_dig(r, column.path, column.kind) for r in records]
            else:
                columns[column.name] = nested.column(".".join(column.path))
        unknown = _has_unknown_fields(records, self.shape)
        columns["extra"] = [_extra(r, self.shape) for r in records] if unknown else [None] * len(records)
        return pa.table(columns, schema=self.arrow_schema)


def _nested_type(kind) -> pa.DataType:
    if isinstance(kind, dict):
        return pa.struct([(name, _nested_type(sub)) for name, sub in kind.items()])
    return ARROW_TYPES[kind]


def _has_unknown_fields(records: list[dict], shape: dict) -> bool:
    if set().union(*map(dict.keys, records)) - shape.keys():
        return True
    return any(
        _has_unknown_fields(nested, kind)
        for name, kind in shape.items()
        if isinstance(kind, dict) and (nested := [r[name] for r in records if isinstance(r.get(name), dict)])
    )


def _columns(shape: dict, path: tuple[str, ...], prefix: str, descriptions: dict) -> list[Column]:
    out = []
    for field, kind in shape.items():
        if isinstance(kind, dict):
            nested = PREFIXES.get(field, f"{snake(field)}_")
            out += _columns(kind, (*path, field), prefix + nested, descriptions)
        else:
            dotted = ".".join((*path, field))
            out.append(
                Column(prefix + snake(field), (*path, field), kind, descriptions.get(dotted) or f"API field {dotted}")
            )
    return out


@functools.cache
def _spec() -> dict:
    text = resources.files("st_scheduling.servicetitan").joinpath("spec/scheduling-pro-v2.openapi.json").read_text()
    return json.loads(text)


def _spec_descriptions(schema_name: str) -> dict[str, str]:
    """Dotted field path -> the spec's own description, following $ref/oneOf into nested objects."""
    schemas = _spec()["components"]["schemas"]

    def walk(name: str, prefix: str) -> dict[str, str]:
        found = {}
        for field, prop in schemas[name].get("properties", {}).items():
            ref = prop.get("$ref") or next((o["$ref"] for o in prop.get("oneOf", []) if "$ref" in o), None)
            if ref and schemas[ref.rsplit("/", 1)[1]].get("properties"):
                found.update(walk(ref.rsplit("/", 1)[1], f"{prefix}{field}."))
            if "description" in prop:
                found[prefix + field] = prop["description"]
        return found

    return walk(schema_name, "")


def _dig(record: dict, path: tuple[str, ...], kind: str):
    value = record
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    if value is not None and kind == models.JSON:
        return json.dumps(value, separators=(",", ":"))
    return value


def _extra(record: dict, shape: dict) -> str | None:
    """Fields the spec does not know, at any depth, as a JSON object keyed by dotted path."""
    unknown: dict = {}

    def walk(obj: dict, sub: dict, prefix: str) -> None:
        for key, value in obj.items():
            if key not in sub:
                unknown[prefix + key] = value
            elif isinstance(sub[key], dict) and isinstance(value, dict):
                walk(value, sub[key], f"{prefix}{key}.")

    walk(record, shape, "")
    return json.dumps(unknown, separators=(",", ":"), default=str) if unknown else None


def _lead(name: str, kind: str, description: str) -> Column:
    return Column(name, (), kind, description)


TENANT = _lead("tenant_id", models.INT, "ServiceTitan tenant the record belongs to.")
LISTED_BY_SCHEDULER = _lead("listed_by_id", models.STRING, "Scheduler whose sessions endpoint returned this session.")
LISTED_BY_ROUTER = _lead("listed_by_id", models.STRING, "Router whose sessions endpoint returned this session.")
WINDOW_START = _lead("window_start", models.DATETIME, "Start (inclusive, UTC) of the session-creation window.")
WINDOW_END = _lead("window_end", models.DATETIME, "End (exclusive, UTC) of the session-creation window.")
TRAILING_COLUMNS = (
    Column("extra", (), models.JSON, "Fields the spec does not know, keyed by dotted path (schema drift)."),
    Column("ingested_at", (), models.DATETIME, "When the platform stored this row."),
    Column("run_id", (), models.STRING, "Dagster run that stored this row."),
    Column(
        "commit_number",
        (),
        models.INT,
        "The warehouse commit that stored this row, numbered in the order "
        "commits happened: the marts find new rows by it, never by a clock.",
    ),
)

SCHEDULERS = RawTable(
    "schedulers",
    models.SCHEDULER,
    SPEC_SCHEMAS["scheduler"],
    (TENANT,),
    None,
    "Every scheduler of every configured tenant, as the API lists them.",
)
# A session's customer: who they are, where they live, what they wrote, the address they came from.
SESSION_PII = frozenset(
    {
        "customer_first_name",
        "customer_last_name",
        "customer_email",
        "customer_phone",
        "customer_address_street",
        "customer_address_unit",
        "customer_ip_address",
        "notes",
        "customer_responses",
        "blocker_to_book_additional_data",
    }
)
SCHEDULER_SESSIONS = RawTable(
    "scheduler_sessions",
    models.SESSION,
    SPEC_SCHEMAS["session"],
    (TENANT, LISTED_BY_SCHEDULER),
    "created_on",
    "Every session of every scheduler, one row per tenant and session id at its latest modifiedOn.",
    owner_column="listed_by_id",
)
ROUTER_SESSIONS = RawTable(
    "router_sessions",
    models.SESSION,
    SPEC_SCHEMAS["session"],
    (TENANT, LISTED_BY_ROUTER),
    "created_on",
    "Every session of every configured router, including those upgraded to a scheduler.",
    key=("tenant_id", "listed_by_id", "id"),
    owner_column="listed_by_id",
)
SCHEDULER_PERFORMANCE = RawTable(
    "scheduler_performance",
    models.SCHEDULER_PERFORMANCE,
    SPEC_SCHEMAS["scheduler_performance"],
    (TENANT, WINDOW_START, WINDOW_END),
    "window_start",
    "The API's own performance numbers per scheduler and day (sessions created in the day window).",
    key=("tenant_id", "id", "window_start"),
    owner_column="id",
)
ROUTER_PERFORMANCE = RawTable(
    "router_performance",
    models.ROUTER_PERFORMANCE,
    SPEC_SCHEMAS["router_performance"],
    (TENANT, WINDOW_START, WINDOW_END),
    "window_start",
    "The API's own performance numbers per router and day.",
    key=("tenant_id", "id", "window_start"),
    owner_column="id",
)

RAW_TABLES = (SCHEDULERS, SCHEDULER_SESSIONS, ROUTER_SESSIONS, SCHEDULER_PERFORMANCE, ROUTER_PERFORMANCE)
