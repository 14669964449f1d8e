"""What every table asset, raw or mart, carries in the UI: its owners, the `pii` tag, and its column schema."""

from __future__ import annotations

from collections.abc import Iterable

import dagster as dg

OWNERS = ["team:scheduling-data"]
PII_TAG = {"pii": "true"}


def column_schema(columns: Iterable[tuple[str, str, str, bool]]) -> dg.TableSchema:
    """The schema the UI shows from (name, type, description, holds PII) per column; PII columns are tagged."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(name, type_, description=description, tags=PII_TAG if pii else None)
            for name, type_, description, pii in columns
        ]
    )
