"""The resolved asset specs, reviewed in diffs: a snapshot of what the UI shows for every asset and check.

Refresh after an intended change with `UPDATE_SNAPSHOTS=1 .venv/bin/pytest st_scheduling_tests/test_asset_specs.py`
and review the diff of `snapshots/asset_specs.json` like code.
"""

import json
import os
import re
from pathlib import Path

import dagster as dg

from st_scheduling.definitions import defs
from st_scheduling.defs.marts.assets import MART_ASSETS
from st_scheduling.transform import catalogue
from st_scheduling.warehouse.raw_tables import SESSION_PII

SNAPSHOT = Path(__file__).parent / "snapshots" / "asset_specs.json"


def resolved_specs() -> dict:
    graph = defs().resolve_asset_graph()
    out = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        metadata = node.metadata
        schema = metadata.get("dagster/column_schema")
        out[key.to_user_string()] = {
            "group": node.group_name,
            "description": (node.description or "").strip(),
            "kinds": sorted(node.kinds),
            "owners": list(node.owners),
            "tags": {k: v for k, v in sorted(node.tags.items()) if not k.startswith("dagster/kind/")},
            "deps": sorted(p.to_user_string() for p in node.parent_keys),
            "partitioned": node.partitions_def is not None,
            "freshness": repr(node.freshness_policy) if node.freshness_policy else None,
            "automation": node.automation_condition.get_label() if node.automation_condition else None,
            "pool": node.pools and sorted(node.pools),
            "checks": sorted(c.name for c in node.check_keys),
            "columns": [
                " ".join([c.name, c.type, *(f"#{k}={v}" for k, v in sorted(c.tags.items()))]) for c in schema.columns
            ]
            if schema
            else None,
        }
    return out


def test_the_resolved_asset_specs_match_the_reviewed_snapshot():
    current = resolved_specs()
    if os.getenv("UPDATE_SNAPSHOTS"):
        SNAPSHOT.write_text(json.dumps(current, indent=1, sort_keys=True) + "\n")
    assert current == json.loads(SNAPSHOT.read_text()), "asset specs changed: review, then UPDATE_SNAPSHOTS=1"


def direct_sources(markdown: str) -> dict[str, set[str]]:
    """Each column of the lineage markdown with the "asset:column" refs of its first-level items."""
    found: dict[str, set[str]] = {}
    for line in markdown.splitlines():
        if column := re.fullmatch(r"- `(\w+)`(?: \(computed here\))?", line):
            found[column[1]] = set()
        elif source := re.fullmatch(r"  - ← `([^`]+)`(: .*| \(computed there\))?", line):
            if (listed := source[2] or "").startswith(": "):
                found[list(found)[-1]] |= {f"{source[1]}:{c}" for c in re.findall(r"`(\w+)`", listed)}
            else:
                found[list(found)[-1]].add(":".join(source[1].rsplit(".", 1)))
    return found


def test_every_mart_shows_its_column_lineage_in_markdown_that_agrees_with_dagster_column_lineage():
    for mart in catalogue.MARTS:
        metadata = MART_ASSETS[mart.name].specs_by_key[dg.AssetKey(["marts", mart.name])].metadata
        graph = {
            column: {f"{d.asset_key.to_user_string()}:{d.column_name}" for d in deps}
            for column, deps in metadata["dagster/column_lineage"].deps_by_column.items()
        }
        shown = direct_sources(metadata["column_lineage"].value)
        assert list(shown) == [c.name for c in mart.columns], mart.name
        assert {column: refs for column, refs in shown.items() if refs} == graph, mart.name


def test_every_customer_pii_column_is_tagged_and_only_those():
    specs = resolved_specs()

    def tagged(asset: str) -> set[str]:
        return {c.split()[0] for c in specs[asset]["columns"] if c.endswith(" #pii=true")}

    for asset in ("raw/scheduler_sessions", "raw/router_sessions"):
        assert tagged(asset) == set(SESSION_PII) and specs[asset]["tags"]["pii"] == "true"
    assert tagged("marts/customer_follow_ups") == {"first_name", "last_name", "phone", "email"}
    assert all(not tagged(a) for a, spec in specs.items() if "pii" not in spec["tags"] and spec["columns"])


def test_every_schedule_and_sensor_says_what_it_does_in_the_ui():
    d = defs()
    undescribed = [x.name for x in (*d.schedules, *d.sensors) if not (x.description or "").strip()]
    assert undescribed == []


def test_every_asset_links_to_its_code_and_every_mart_to_its_sql_model():
    graph = defs().resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        references = graph.get(key).metadata["dagster/code_references"].code_references
        files = [Path(r.file_path) for r in references]
        assert files and all(f.is_file() for f in files), key
        if key.path[0] == "marts":
            assert files[0].name == f"{key.path[1]}.sql" and references[0].label == "SQL model"
