"""The marts: SQL models over the raw tables that answer the data team's questions."""

from datetime import timedelta

import dagster as dg
import duckdb
from pydantic import Field

from st_scheduling import reports, transform
from st_scheduling.defs.code_links import linked, sql_reference
from st_scheduling.defs.marts import checks as mart_checks
from st_scheduling.defs.raw.assets import NIGHTLY
from st_scheduling.defs.resources import DUCKDB_POOL, DuckDBWarehouse
from st_scheduling.defs.tables import OWNERS, PII_TAG, column_schema
from st_scheduling.transform import catalogue, lineage
from st_scheduling.warehouse import publish

GROUP = "scheduling_pro_marts"

# Marts follow raw data whatever launched the raw run. Unlike plain eager(), a raw partition that was
# never loaded (say, an old day outside the backfilled range) does not hold the marts back.
# A failed blocking check upstream holds the mart back on the automatic path as it does within one run.
FOLLOW_UPSTREAM = (
    dg.AutomationCondition.eager().without(~dg.AutomationCondition.any_deps_missing())
    & dg.AutomationCondition.all_deps_blocking_checks_passed()
).with_label("eager (ignoring never-loaded raw partitions), once upstream blocking checks pass")


def _key(asset_path: str) -> dg.AssetKey:
    return dg.AssetKey(asset_path.split("/"))


def column_lineage(mart: catalogue.Mart) -> dg.TableColumnLineage:
    deps = {}
    for column in mart.columns:
        upstream = [
            dg.TableColumnDep(asset_key=_key(ref.split(":")[0]), column_name=ref.split(":")[1])
            for ref in column.lineage
        ]
        if upstream:
            deps[column.name] = upstream
    return dg.TableColumnLineage(deps_by_column=deps)


def lineage_markdown(mart: catalogue.Mart) -> str:
    """Column lineage a person can read: the open-source UI shows definition metadata but neither the lineage
    graph nor `dagster/column_lineage` itself. Traced from the same `MartColumn.lineage`, so the two cannot drift."""
    return lineage.markdown(catalogue.MARTS, mart)


def _preview(con: duckdb.DuckDBPyConnection, mart: catalogue.Mart) -> str:
    """The first rows as markdown; PII columns are left out, since metadata is not a contact list."""
    columns = [c.name for c in mart.columns if not c.pii]
    rows = con.execute(f"SELECT {', '.join(columns)} FROM {mart.qualified} LIMIT 10").fetchall()
    header = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns)
    body = "\n".join("| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in rows)
    return f"{header}\n{body}"


def funnel_charts(con: duckdb.DuckDBPyConnection) -> dict:
    everyone = reports.funnel_chart_png(
        {"all schedulers": reports.funnel_rows(con, days=30)}, "Milestone funnel, last 30 days"
    )
    each = reports.funnel_chart_png(
        reports.funnel_rows_by_scheduler(con, days=30), "Milestone funnel per scheduler, last 30 days"
    )
    return {
        "funnel_chart": dg.MetadataValue.md(reports.png_markdown(everyone, "milestone funnel")),
        "funnel_by_scheduler": dg.MetadataValue.md(reports.png_markdown(each, "milestone funnel per scheduler")),
    }


def campaign_identity(con: duckdb.DuckDBPyConnection) -> dict:
    """Whether each tenant's campaigns are identified by their ids or by name, with the figures that decided."""
    rule = transform.CAMPAIGN_IDENTITY
    tenants = transform.campaign_identity(con)
    named = ", ".join(str(tenant) for tenant, by_name, *_ in tenants if by_name) or "no tenant"
    lines = [
        (
            f"Campaigns identified by name (campaign_id name:<slug>) on {named}. A tenant's campaignIds do not "
            f"identify its campaigns when it has {rule.ids_at_least} ids or more, more than "
            f"{rule.one_session_share:.0%} of them carry a single session, and its campaign names (a session's "
            f"campaignName, else its utm_campaign, as a slug) average {rule.ids_per_name:g} ids or more: the "
            "integration sends a new id with every visit."
        ),
        "",
        "| tenant | identified by | campaign ids | ids with one session | campaign names | ids per name |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {tenant} | {'name' if by_name else 'id'} | {ids:,} | {single:,} ({single / ids:.0%}) | {names:,} | "
        f"{'' if per_name is None else f'{per_name:.1f}'} |"
        for tenant, by_name, ids, single, names, per_name in tenants
    ]
    return {"campaign_identity": dg.MetadataValue.md("\n".join(lines))}


# What a mart's materialization shows beyond its row count and preview.
EXTRA_METADATA = {catalogue.MILESTONE_FUNNEL.name: funnel_charts, catalogue.SESSIONS.name: campaign_identity}


class MartBuild(dg.Config):
    full_rebuild: bool = Field(
        default=False,
        description="Rebuild the whole mart from all of raw instead of merging only what changed "
        "since its last build (a full rebuild also happens by itself on the first build, after marts/sessions was "
        "rebuilt in full, and when the SQL, settings, vocabulary or scheduler names change).",
    )


FOLLOWS_HOURLY = dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=4), warn_window=timedelta(hours=2))


def freshness(mart: catalogue.Mart) -> dg.FreshnessPolicy:
    """A mart is as fresh as the raw tables it reads: the inventory, built from the scheduler list alone, changes
    only nightly or when a scheduler does (the week of operation found it "late" every day on the hourly policy)."""
    return NIGHTLY if list(mart.deps) == ["raw/schedulers"] else FOLLOWS_HOURLY


def build_mart_asset(mart: catalogue.Mart) -> dg.AssetsDefinition:
    tags = PII_TAG if mart.contains_pii else {}

    @dg.asset(
        key=["marts", mart.name],
        group_name=GROUP,
        owners=OWNERS,
        kinds={"duckdb", "sql"},
        deps=[_key(d) for d in mart.deps],
        pool=DUCKDB_POOL,
        description=mart.description,
        tags=tags,
        automation_condition=FOLLOW_UPSTREAM,
        backfill_policy=dg.BackfillPolicy.single_run(),  # a range run (make demo) builds each mart once
        freshness_policy=freshness(mart),
        check_specs=mart_checks.check_specs(mart),
        metadata={
            "dagster/column_schema": column_schema((c.name, c.type, c.description, c.pii) for c in mart.columns),
            "dagster/column_lineage": column_lineage(mart),
            "column_lineage": dg.MetadataValue.md(lineage_markdown(mart)),
            "dagster/table_name": mart.qualified,
            "dagster/code_references": sql_reference(mart.sql_path),
        },
    )
    def _mart(context: dg.AssetExecutionContext, config: MartBuild, warehouse: DuckDBWarehouse):
        settings = warehouse.model_settings()
        with warehouse.connect() as con:
            con.begin()  # the new table replaces the old one only if its blocking checks pass
            try:
                built = transform.build(con, mart, settings, full=config.full_rebuild)
                check_results = mart_checks.evaluate(con, mart, settings)
            except duckdb.Error as err:  # the cause on the failure's first line, not under Dagster's frames
                raise dg.Failure(description=f"marts/{mart.name}: {type(err).__name__}: {err}") from None
            if blocked := mart_checks.failed_blocking(mart, check_results):
                con.rollback()
                yield from check_results
                raise dg.Failure(
                    description=f"marts/{mart.name} kept its previous rows: "
                    + "; ".join(f"{r.check_name}: {r.description}" for r in blocked)
                )
            con.commit()
            metadata = {
                "dagster/row_count": dg.MetadataValue.int(built.rows),
                "build": dg.MetadataValue.text(("full rebuild: " if built.full else "incremental: ") + built.reason),
                "preview": dg.MetadataValue.md(_preview(con, mart)),
                **EXTRA_METADATA.get(mart.name, lambda _: {})(con),
            }
            published, unpublished = _publish(con, mart, warehouse, context.run.run_id, built, context.log)
        yield dg.MaterializeResult(metadata={**metadata, **published}, check_results=check_results)
        if unpublished:  # the table is materialized; the step fails so the run's alert says the snapshot is behind
            raise dg.Failure(description=unpublished)

    return _mart


def _publish(
    con: duckdb.DuckDBPyConnection,
    mart: catalogue.Mart,
    warehouse: DuckDBWarehouse,
    run_id: str,
    built: transform.Build,
    log,
) -> tuple[dict, str | None]:
    """The mart as the snapshot analysts read (PII marts only when ST_PUBLISH_PII says so), written whenever the
    snapshot holds another build than the table, whoever built it: its metadata, and why it could not be."""
    directory = warehouse.publish_directory()
    if directory is None:
        return {}, None
    if mart.contains_pii and not warehouse.publish_pii:
        publish.withdraw(directory, mart.name)
        return {"published_snapshot": dg.MetadataValue.text("not published: holds PII (set ST_PUBLISH_PII=true)")}, None
    snapshot = publish.snapshot_path(directory, mart.name)
    try:
        if swept := publish.sweep(directory, mart.name, run_id):
            log.info(f"removed {swept} temporary snapshot files of marts/{mart.name} left by crashed runs")
        if publish.published_build(directory, mart.name) != built.content:
            publish.publish(con, mart.qualified, mart.name, directory, run_id, built.content)
    except (OSError, duckdb.Error) as err:
        why = (
            f"marts/{mart.name}: the table is current, but its snapshot {snapshot} could not be written "
            f"({type(err).__name__}: {err}); readers see the previous build until the next run of this mart "
            "republishes it"
        )
        return {"published_snapshot": dg.MetadataValue.text(f"stale: {why}")}, why
    return {
        "published_snapshot": dg.MetadataValue.path(str(snapshot)),
        "published_build": dg.MetadataValue.int(built.content),
    }, None


MART_ASSETS = dict(zip((mart.name for mart in catalogue.MARTS), linked([build_mart_asset(m) for m in catalogue.MARTS])))


@dg.definitions
def mart_definitions() -> dg.Definitions:
    return dg.Definitions(assets=list(MART_ASSETS.values()))
