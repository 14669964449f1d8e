"""Column lineage traced through the marts to the raw columns, and the markdown the asset page shows."""

import re

import pytest
from markdown_it import MarkdownIt

from st_scheduling.transform import catalogue, lineage
from st_scheduling.transform.catalogue import Mart, MartColumn
from st_scheduling.warehouse.raw_tables import RAW_TABLES

RAW_COLUMNS = {f"raw/{t.name}:{c.name}" for t in RAW_TABLES for c in t.columns}
SESSION_TABLES = ("raw/scheduler_sessions", "raw/router_sessions")


def traced(mart: Mart, column: str) -> tuple[lineage.Source, ...]:
    return lineage.trace(catalogue.MARTS, lineage.mart_asset(mart), column)


def test_campaign_credit_traces_through_sessions_to_the_raw_fields_a_booking_and_a_customer_are_read_from():
    # By hand from the SQL: credit counts booked sessions (is_booked: sessionOutcome overruled by the job,
    # booking and lead ids) and, for the touch models, groups them by customer (customer_key: email, else phone).
    sources = traced(catalogue.CAMPAIGN_ATTRIBUTION, "credit")
    assert [s.ref for s in sources] == ["marts/sessions:is_booked", "marts/sessions:customer_key"]
    fields = ("session_outcome", "job_id", "booking_id", "lead_id", "customer_email", "customer_phone")
    assert lineage.origins(sources) == {f"{table}:{f}" for table in SESSION_TABLES for f in fields}
    assert {chain[-1].ref for chain in lineage.paths(sources[:1])} == {
        f"{table}:{f}" for table in SESSION_TABLES for f in fields[:4]
    }


def test_every_traced_path_ends_at_a_raw_column_without_passing_a_column_twice():
    ends = 0
    for mart in catalogue.MARTS:
        for column in mart.columns:
            chains = list(lineage.paths(traced(mart, column.name)))
            assert chains or not column.lineage, (mart.name, column.name)
            for chain in chains:
                refs = [f"marts/{mart.name}:{column.name}", *(s.ref for s in chain)]
                assert len(set(refs)) == len(refs), refs
                assert chain[-1].ref in RAW_COLUMNS and not chain[-1].built_here, refs
                assert all(s.built_here for s in chain[:-1]), refs
                ends += 1
    assert ends > 1000


def _mart(name: str, *columns: tuple[str, ...]) -> Mart:
    return Mart(name, "", (), tuple(MartColumn(c[0], "BIGINT", "", tuple(c[1:])) for c in columns))


def test_a_source_in_a_mart_built_from_another_mart_is_followed_down_to_the_raw_table():
    catalogue = (
        _mart("top", ("total", "marts/middle:amount", "raw/orders:id")),
        _mart("middle", ("amount", "marts/bottom:price", "marts/bottom:quantity")),
        _mart("bottom", ("price", "raw/orders:price"), ("quantity", "raw/orders:quantity", "raw/lines:qty")),
    )
    sources = lineage.trace(catalogue, "marts/top", "total")
    assert lineage.origins(sources) == {"raw/orders:price", "raw/orders:quantity", "raw/lines:qty", "raw/orders:id"}
    assert [[s.ref for s in chain] for chain in lineage.paths(sources)] == [
        ["marts/middle:amount", "marts/bottom:price", "raw/orders:price"],
        ["marts/middle:amount", "marts/bottom:quantity", "raw/orders:quantity"],
        ["marts/middle:amount", "marts/bottom:quantity", "raw/lines:qty"],
        ["raw/orders:id"],
    ]
    assert lineage.markdown(catalogue, catalogue[0]).split("\n\n", 1)[1] == "\n".join(
        [
            "- `total`",
            "  - ← `marts/middle.amount`",
            "    - ← `marts/bottom.price`",
            "      - ← `raw/orders`: `price`",
            "    - ← `marts/bottom.quantity`",
            "      - ← `raw/orders`: `quantity`",
            "      - ← `raw/lines`: `qty`",
            "  - ← `raw/orders`: `id`",
        ]
    )


def test_a_cycle_or_a_source_the_catalogue_lacks_is_an_error_not_a_hang():
    cycle = (_mart("a", ("x", "marts/b:y")), _mart("b", ("y", "marts/a:x")))
    with pytest.raises(ValueError, match="lineage cycle: marts/a:x ← marts/b:y ← marts/a:x"):
        lineage.trace(cycle, "marts/a", "x")
    missing = (_mart("a", ("x", "marts/b:nope")), _mart("b", ("y", "raw/t:y")))
    with pytest.raises(ValueError, match="marts/b:nope"):
        lineage.trace(missing, "marts/a", "x")


def test_a_column_computed_with_no_source_says_so():
    catalogue = (_mart("a", ("label",), ("x", "marts/b:constant")), _mart("b", ("constant",)))
    assert lineage.markdown(catalogue, catalogue[0]).split("\n\n", 1)[1] == "\n".join(
        ["- `label` (computed here)", "- `x`", "  - ← `marts/b.constant` (computed there)"]
    )
    assert [[s.ref for s in chain] for chain in lineage.paths(lineage.trace(catalogue, "marts/a", "x"))] == [
        ["marts/b:constant"]
    ]


def test_the_credit_lineage_reads_one_source_per_line():
    text = lineage.markdown(catalogue.MARTS, catalogue.CAMPAIGN_ATTRIBUTION)
    section = re.search(r"^- `credit`\n(?:  .*\n)*", text, re.MULTILINE)[0]
    outcome = "`session_outcome`, `job_id`, `booking_id`, `lead_id`"
    assert (
        section
        == "\n".join(
            [
                "- `credit`",
                "  - ← `marts/sessions.is_booked`",
                f"    - ← `raw/scheduler_sessions`: {outcome}",
                f"    - ← `raw/router_sessions`: {outcome}",
                "  - ← `marts/sessions.customer_key`",
                "    - ← `raw/scheduler_sessions`: `customer_email`, `customer_phone`",
                "    - ← `raw/router_sessions`: `customer_email`, `customer_phone`",
            ]
        )
        + "\n"
    )


def _items(tokens) -> list[tuple[int, str]]:
    """(nesting depth, own text) of every list item, as a CommonMark renderer builds them."""
    found, level = [], -1
    for token in tokens:
        if token.type == "bullet_list_open":
            level += 1
        elif token.type == "bullet_list_close":
            level -= 1
        elif token.type == "inline" and level >= 0:
            found.append((level, token.content))
    return found


@pytest.mark.parametrize("mart", catalogue.MARTS, ids=lambda m: m.name)
def test_every_marts_lineage_renders_as_nested_lists_with_one_source_per_item(mart):
    text = lineage.markdown(catalogue.MARTS, mart)
    assert "<br>" not in text and "|" not in text  # the UI's markdown drops HTML; a table cell holds one line
    items = _items(MarkdownIt("commonmark").parse(text))
    assert [content.split("`")[1] for level, content in items if level == 0] == [c.name for c in mart.columns]
    for level, content in items:
        if level:
            assert content.count("←") == 1 and len(re.findall(r"`(?:raw|marts)/", content)) == 1, content
    # Every line of the text is one list item: no source runs into another's line.
    assert len(items) == len(text.split("\n\n", 1)[1].splitlines())
