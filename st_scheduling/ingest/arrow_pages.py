"""Pages as Arrow tables, converted in bulk: no Python work per record or per field on a well-formed page.

Arrow's C++ JSON reader parses the page bytes against the spec's explicit schema (outside the GIL). Only
when it refuses a page, or the page carries fields the spec does not know, is the page read again as
Python objects: to name the offending field and record position, or to keep the unknown fields in `extra`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeAlias

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from st_scheduling.servicetitan import models
from st_scheduling.servicetitan.errors import MalformedResponseError, RecordTypeError
from st_scheduling.servicetitan.memory import POOL, Body
from st_scheduling.servicetitan.paging import Page, PageParser, parse_records
from st_scheduling.warehouse.raw_tables import RawTable

TablePage: TypeAlias = Page[pa.Table]  # a page whose records are a table in the staged schema


def typed(table: RawTable, columns: pa.Table, lead: Mapping[str, object], endpoint: str, page: int | None) -> pa.Table:
    """API columns (timestamps as text) plus the platform's lead columns, cast to the staged schema.

    A timestamp that is not an ISO 8601 instant with a zone is an error naming the field and record position.
    """
    n = columns.num_rows
    out = []
    for field in table.staged_schema:
        if field.name in lead:
            column = pa.repeat(pa.scalar(lead[field.name], field.type), n, memory_pool=POOL)
        else:
            column = columns.column(field.name)
        if column.type != field.type:
            column = _cast(column, field.type, field.name, endpoint, page)
        out.append(column)
    return pa.Table.from_arrays(out, schema=table.staged_schema)


def _cast(
    column: pa.Array | pa.ChunkedArray, to: pa.DataType, name: str, endpoint: str, page: int | None
) -> pa.Array | pa.ChunkedArray:
    try:
        return pc.cast(column, to, memory_pool=POOL)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        # Arrow's message quotes the value; find the position ourselves and say only that.
        for position, value in enumerate(column.to_pylist()):
            try:
                pa.array([value]).cast(to)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                raise RecordTypeError(endpoint, page, position, name, f"is not a valid {to}") from None
        raise


def records_parser(table: RawTable, lead: Mapping[str, object]) -> PageParser[pa.Table]:
    """A page parser giving typed Arrow tables ready to stage, for any list endpoint of `table`'s shape."""
    envelope_schema = pa.schema(
        [
            ("data", pa.list_(pa.struct(list(table.nested_arrow_schema)))),
            ("hasMore", pa.bool_()),
            ("totalCount", pa.int64()),
        ]
    )
    parse_options = pj.ParseOptions(
        explicit_schema=envelope_schema, unexpected_field_behavior="infer", newlines_in_values=True
    )
    by_dicts = parse_records(table.shape)
    declared = envelope_schema.field("data").type.value_type

    def slow(body: bytes | Body, endpoint: str, number: int) -> TablePage:
        page = by_dicts(body, endpoint, number)  # raises the named error Arrow could not give
        columns = table.to_arrow(page.records, {c.name: None for c in table.lead_columns})
        return _with(page, typed(table, columns, lead, endpoint, number))

    def parse(body: bytes | Body, endpoint: str, number: int) -> TablePage:
        if any(kind == models.JSON for kind in table.shape.values()):
            return slow(body, endpoint, number)
        try:
            parsed = pj.read_json(
                pa.BufferReader(body),
                parse_options=parse_options,
                memory_pool=POOL,
                read_options=pj.ReadOptions(block_size=max(len(body) + 1, 1 << 16)),
            )
        except pa.ArrowInvalid:
            return slow(body, endpoint, number)
        data = parsed.column("data")
        if (
            parsed.num_rows != 1
            or data.null_count
            or parsed.column("hasMore").null_count
            or data.type.value_type != declared
        ):
            return slow(body, endpoint, number)  # not one envelope, or fields the spec does not know
        records = data.chunk(0).flatten() if data.num_chunks == 1 else pa.concat_arrays(data.chunks).flatten()
        columns = _flatten(table, records)
        for name in models.key_fields(table.shape):
            column = columns.column(_column_name(table, name))
            if column.null_count:
                position = pc.index(pc.is_null(column), True).as_py()
                raise RecordTypeError(endpoint, number, position, name, "missing or null (it is required)")
        total = parsed.column("totalCount")[0].as_py()
        if total is not None and total < 0:
            raise MalformedResponseError(endpoint, number, "'totalCount' is negative")
        ids = columns.column("id").to_pylist() if "id" in table.shape else []
        staged = typed(table, columns, lead, endpoint, number)
        return Page(number, staged, ids, parsed.column("hasMore")[0].as_py(), total, len(body))

    return parse


def _column_name(table: RawTable, field: str) -> str:
    return next(c.name for c in table.api_columns if c.path == (field,))


def _flatten(table: RawTable, records: pa.StructArray) -> pa.Table:
    """The struct array of records as the table's flat API columns, with an empty `extra`."""

    def child(array: pa.Array, path: tuple[str, ...]) -> pa.Array:
        for name in path:
            array = pc.struct_field(array, name, memory_pool=POOL)  # a parent's nulls propagate
        return array

    arrays = [child(records, column.path) for column in table.api_columns]
    arrays.append(pa.nulls(len(records), pa.string()))
    return pa.Table.from_arrays(arrays, names=[c.name for c in table.api_columns] + ["extra"])


def _with(page: Page[object], records: pa.Table) -> TablePage:
    return Page(page.number, records, page.ids, page.has_more, page.total_count, page.size_bytes)
