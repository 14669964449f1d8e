"""A mart column's lineage followed down to the raw columns, and as markdown a person can read in the UI.

The catalogue (`catalogue.py`) names each column's direct sources, one hop, which is what `dagster/column_lineage`
carries; the lineage graph that draws it is a Dagster+ feature. Someone reading an asset page in the open-source
UI wants to know which API fields a number rests on, so a source in another mart is followed through that mart's
own column, hop by hop, until every source is a column of a table the catalogue does not build (the raw tables).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from st_scheduling.transform.catalogue import Mart, MartColumn


@dataclass(frozen=True)
class Source:
    """One column a mart column is computed from, with that column's own sources traced below it."""

    asset: str  # "marts/sessions", "raw/scheduler_sessions"
    column: str
    built_here: bool  # a mart's column, traced further; else a column of a source table, where tracing ends
    upstream: tuple[Source, ...] = ()  # a mart column's own sources; none: a source table's, or computed there

    @property
    def ref(self) -> str:
        return f"{self.asset}:{self.column}"


def mart_asset(mart: Mart) -> str:
    return f"marts/{mart.name}"


def trace(catalogue: Iterable[Mart], asset: str, column: str) -> tuple[Source, ...]:
    """The direct sources of `asset`'s `column`, each traced down to source-table columns; () for a column
    computed with no source (a constant, a label). Raises on a cycle or on a source the catalogue lacks."""
    columns = {mart_asset(m): {c.name: c for c in m.columns} for m in catalogue}
    return _trace(columns, asset, column, ())


def _trace(
    columns: dict[str, dict[str, MartColumn]], asset: str, column: str, below: tuple[str, ...]
) -> tuple[Source, ...]:
    ref = f"{asset}:{column}"
    if ref in below:
        raise ValueError(f"lineage cycle: {' ← '.join((*below, ref))}")
    if column not in columns.get(asset, {}):
        raise ValueError(
            f"lineage names {ref}, which the catalogue does not have" + (f" (under {below[-1]})" if below else "")
        )
    sources = []
    for upstream in columns[asset][column].lineage:
        source_asset, source_column = upstream.split(":")
        if source_asset in columns:
            sources.append(
                Source(source_asset, source_column, True, _trace(columns, source_asset, source_column, (*below, ref)))
            )
        else:
            sources.append(Source(source_asset, source_column, False))
    return tuple(sources)


def paths(sources: tuple[Source, ...]) -> Iterator[tuple[Source, ...]]:
    """Every chain from a direct source down to where tracing ends (a source-table column, or a mart column
    computed with no source)."""
    for source in sources:
        if not source.upstream:
            yield (source,)
        for below in paths(source.upstream):
            yield (source, *below)


def origins(sources: tuple[Source, ...]) -> set[str]:
    """The "asset:column" refs the chains end at."""
    return {chain[-1].ref for chain in paths(sources)}


INTRO = (
    'Each column\'s sources, one per line; `a ← b` reads "a is computed from b". The first level is the '
    "column's direct sources (as in `dagster/column_lineage`); below a mart column come its own sources, "
    "down to the raw tables' columns, one table per line."
)


def markdown(catalogue: Iterable[Mart], mart: Mart) -> str:
    """The mart's lineage as nested markdown lists: a column per top-level item, a source per nested item.
    Lists, not a table: the UI's markdown drops HTML, so a table cell cannot hold more than one line."""
    catalogue = tuple(catalogue)
    lines = [INTRO, ""]
    for column in mart.columns:
        sources = trace(catalogue, mart_asset(mart), column.name)
        lines.append(f"- `{column.name}`" + ("" if sources else " (computed here)"))
        lines.extend(_source_lines(sources, 1))
    return "\n".join(lines)


def _source_lines(sources: tuple[Source, ...], depth: int) -> list[str]:
    indent = "  " * depth
    # A source table's columns share one line, at the place of its first (tracing ends there); a mart column has
    # a line of its own, since its own sources are traced below it.
    items: list[str | list[str]] = []
    table_columns: dict[str, list[str]] = {}
    for source in sources:
        if source.built_here:
            items.append(
                [
                    f"{indent}- ← `{source.asset}.{source.column}`" + ("" if source.upstream else " (computed there)"),
                    *_source_lines(source.upstream, depth + 1),
                ]
            )
        elif source.asset not in table_columns:
            table_columns[source.asset] = [source.column]
            items.append(source.asset)
        elif source.column not in table_columns[source.asset]:
            table_columns[source.asset].append(source.column)
    lines = []
    for item in items:
        if isinstance(item, str):
            lines.append(f"{indent}- ← `{item}`: " + ", ".join(f"`{c}`" for c in table_columns[item]))
        else:
            lines.extend(item)
    return lines
