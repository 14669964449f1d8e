"""The marts in DuckDB SQL against a straightforward pandas implementation of funnel, attribution and volume.

Both start from the same raw table in the same DuckDB file, both include reading it, and both must produce
identical numbers (checked here, not assumed). Each variant runs in its own process, so its peak RSS is its own:

    python -m bench.marts sql|sql_same|pandas DUCKDB_PATH

prints one JSON line {"variant", "seconds", "peak_rss_mb"}; `pandas` also leaves its three frames as Parquet
beside the file, for the comparison.
"""

import json
import sys
import time

import duckdb
import numpy as np
import pandas as pd

from bench.peak import peak_rss_mb
from st_scheduling import transform, vocabulary
from st_scheduling.transform import catalogue, templates

VOCABULARY = vocabulary.load()
MODEL = transform.ModelSettings("UTC", VOCABULARY)

RAW_COLUMNS = """tenant_id, listed_by_id, id, created_on, last_step, session_outcome, job_id, booking_id,
    customer_is_bot, campaign_name, source_utm_campaign, source_campaign_id, source_is_rwg_session, gbp_name,
    source_gclid, source_gbraid, source_wbraid, source_msclkid, source_fbclid, source_utm_source, source_utm_medium"""


FRAMES = ("funnel", "attribution", "volume")  # what the pandas baseline computes
# The marts the pandas baseline computes, and the sessions mart they are computed from.
SAME_AS_PANDAS = (
    catalogue.SESSIONS,
    catalogue.MILESTONE_FUNNEL,
    catalogue.CAMPAIGN_ATTRIBUTION,
    catalogue.BOOKING_VOLUME,
)


def build_sql_marts(con: duckdb.DuckDBPyConnection, which: tuple[catalogue.Mart, ...] = catalogue.MARTS) -> float:
    started = time.perf_counter()
    for mart in which:
        transform.build(con, mart, MODEL, full=True)
    return time.perf_counter() - started


def _channel(df: pd.DataFrame) -> pd.Series:
    """GA4's channel of each session: source and medium read as sessions.sql reads them, in pandas; the rule
    table itself (sql/channels.sql) applied to the few distinct (source, medium, campaign) triples."""

    def given(column: str) -> pd.Series:
        return df[column].fillna("").astype(str).str.strip().str.lower().replace("", np.nan)

    google_ad = given("source_gclid").notna() | given("source_gbraid").notna() | given("source_wbraid").notna()
    bing_ad, meta = given("source_msclkid").notna(), given("source_fbclid").notna()
    google_surface = df["source_is_rwg_session"].fillna(False).astype(bool) | given("gbp_name").notna()
    surfaces = [google_ad, bing_ad, meta, google_surface]
    source = given("source_utm_source").fillna(
        pd.Series(np.select(surfaces, ["google", "bing", "facebook", "google"], default="(direct)"), index=df.index)
    )
    medium = given("source_utm_medium").fillna(
        pd.Series(np.select(surfaces, ["cpc", "cpc", "referral", "organic"], default="(none)"), index=df.index)
    )
    campaign = given("source_utm_campaign").fillna(given("campaign_name")).fillna("")
    triples = pd.DataFrame({"source": source, "medium": medium, "campaign": campaign})
    rules = duckdb.connect()
    rules.execute(templates.text("channels"))
    rules.register("triples", triples.drop_duplicates())
    channels = rules.execute("SELECT *, default_channel(source, medium, campaign) AS channel FROM triples").df()
    return triples.merge(channels, how="left", on=["source", "medium", "campaign"])["channel"].set_axis(df.index)


def _slug(values: pd.Series) -> pd.Series:
    return values.str.lower().str.replace(r"[^a-z0-9]+", "_", regex=True).str.strip("_")


def _campaign(df: pd.DataFrame) -> pd.Series:
    """A campaign is its id under its most frequent campaignName (else utm_campaign, else the id); UTM-only
    sessions join a campaign by exact name, else by slug (the same rule as marts.sessions)."""

    def clean(column: str) -> pd.Series:
        return df[column].str.strip().replace("", np.nan)

    cid, name, utm = clean("source_campaign_id"), clean("campaign_name"), clean("source_utm_campaign")
    labels = pd.concat(
        [
            pd.DataFrame({"tenant_id": df["tenant_id"], "cid": cid, "label": name, "kind": 1}),
            pd.DataFrame({"tenant_id": df["tenant_id"], "cid": cid, "label": utm, "kind": 2}),
        ]
    ).dropna()
    counts = labels.groupby(["tenant_id", "cid", "kind", "label"]).size().reset_index(name="n")
    counts = counts.sort_values(["tenant_id", "cid", "kind", "n", "label"], ascending=[True, True, True, False, True])
    names = counts.drop_duplicates(["tenant_id", "cid"]).set_index(["tenant_id", "cid"])["label"]
    catalogue = names.reset_index().assign(slug=lambda t: _slug(t["label"]))
    exact = catalogue.groupby(["tenant_id", "label"])["cid"].min()
    by_slug = catalogue.groupby(["tenant_id", "slug"])["cid"].min()
    utm_only = cid.isna() & utm.notna()
    keys = pd.MultiIndex.from_arrays([df["tenant_id"], utm])
    slug_keys = pd.MultiIndex.from_arrays([df["tenant_id"], _slug(utm.fillna(""))])
    matched = pd.Series(exact.reindex(keys).to_numpy(), index=df.index).fillna(
        pd.Series(by_slug.reindex(slug_keys).to_numpy(), index=df.index)
    )
    resolved = cid.where(~utm_only, matched)
    shown = pd.Series(names.reindex(pd.MultiIndex.from_arrays([df["tenant_id"], resolved])).to_numpy(), index=df.index)
    return shown.fillna(resolved).fillna(name).fillna(utm).fillna("(none)")


def pandas_marts(con: duckdb.DuckDBPyConnection) -> tuple[float, dict[str, pd.DataFrame]]:
    started = time.perf_counter()
    df = con.execute(f"SELECT {RAW_COLUMNS} FROM raw.scheduler_sessions").df()
    df = df.sort_values("created_on").drop_duplicates(["tenant_id", "id"], keep="last")
    abandonment = {k: v in vocabulary.ABANDONMENTS for k, v in VOCABULARY.outcomes.items()}
    abandoned = df["session_outcome"].map(abandonment).fillna(False).astype(bool)
    booked = ~abandoned & (df["job_id"].notna() | df["booking_id"].notna())
    positions = {step: VOCABULARY.milestones.index(m) for step, m in VOCABULARY.steps.items()}
    step = df["last_step"].map(positions).fillna(0).clip(upper=6)
    df = df.assign(
        day=df["created_on"].dt.tz_convert("UTC").dt.date,
        booked=booked,
        milestone=np.where(booked, 7, step).astype(int),
        is_job=booked & df["job_id"].notna(),
        is_booking=booked & df["job_id"].isna(),
        bot=df["customer_is_bot"].fillna(False).astype(bool),
        channel=_channel(df),
        campaign=_campaign(df),
    )
    humans = df[~df["bot"]]
    funnel = pd.concat(  # every scheduler-day with sessions, bots counted out
        [
            df.assign(milestone_index=i, reached=~df["bot"] & (df["milestone"] >= i))
            .groupby(["tenant_id", "listed_by_id", "day", "milestone_index"])["reached"]
            .sum()
            for i in range(8)
        ]
    ).reset_index()
    attribution = (
        humans.groupby(["tenant_id", "day", "channel", "campaign"])
        .agg(sessions=("id", "size"), booked_sessions=("booked", "sum"))
        .reset_index()
    )
    volume = (
        humans.groupby(["tenant_id", "listed_by_id", "day"])
        .agg(jobs=("is_job", "sum"), bookings=("is_booking", "sum"))
        .reset_index()
    )
    return time.perf_counter() - started, dict(zip(FRAMES, (funnel, attribution, volume)))


def sql_results(con: duckdb.DuckDBPyConnection) -> dict[str, pd.DataFrame]:
    """The same three answers read from the SQL marts, shaped like the pandas ones."""
    return {
        "funnel": con.execute("""SELECT tenant_id, scheduler_id AS listed_by_id, period_start AS day,
                                        milestone_index, sessions_reached AS reached
                                 FROM marts.milestone_funnel WHERE grain = 'day'""").df(),
        "attribution": con.execute("""SELECT tenant_id, period_start AS day, channel, campaign,
                                             sum(sessions) AS sessions, sum(booked_sessions) AS booked_sessions
                                      FROM marts.campaign_attribution WHERE attribution_model = 'session'
                                      GROUP BY ALL""").df(),
        "volume": con.execute("""SELECT tenant_id, scheduler_id AS listed_by_id, period_start AS day, jobs, bookings
                                 FROM marts.booking_volume WHERE grain = 'day' AND date_basis = 'session_date'
                                 AND (jobs > 0 OR bookings > 0)""").df(),
    }


def same_numbers(pandas_frames: dict[str, pd.DataFrame], sql_frames: dict[str, pd.DataFrame]) -> bool:
    for name, frame in pandas_frames.items():
        if name == "volume":
            frame = frame[(frame["jobs"] > 0) | (frame["bookings"] > 0)]
        keys = [
            c
            for c in frame.columns
            if c in ("tenant_id", "listed_by_id", "day", "milestone_index", "channel", "campaign")
        ]
        left = frame.assign(day=pd.to_datetime(frame["day"])).sort_values(keys).reset_index(drop=True)
        right = sql_frames[name]
        right = right.assign(day=pd.to_datetime(right["day"]))[list(frame.columns)].sort_values(keys)
        right = right.reset_index(drop=True)
        numbers = [c for c in frame.columns if c not in keys]
        if len(left) != len(right) or not (left[keys].astype(str).values == right[keys].astype(str).values).all():
            return False
        if not np.array_equal(left[numbers].to_numpy(dtype="int64"), right[numbers].to_numpy(dtype="int64")):
            return False
    return True


def replicate(source: str, target: str, times: int) -> int:
    """A history `times` as large, generated straight into DuckDB: every raw table copied `times` over, each
    copy as new tenants (tenant id + copy x 10^9). An agency with more tenants, not the same customers visiting
    `times` as often, which would make every per-customer computation grow with the square of `times`."""
    with duckdb.connect(target) as con:
        con.execute(f"ATTACH '{source}' AS src (READ_ONLY)")
        con.execute("CREATE SCHEMA IF NOT EXISTS raw")
        con.execute("CREATE SCHEMA IF NOT EXISTS marts")
        for table in (
            "schedulers",
            "scheduler_performance",
            "router_sessions",
            "router_performance",
            "scheduler_sessions",
        ):
            con.execute(f"""CREATE TABLE raw.{table} AS
                            SELECT * REPLACE (tenant_id + copy * 1000000000 AS tenant_id)
                            FROM src.raw.{table}, range({times}) AS c(copy)""")
        return con.execute("SELECT count(*) FROM raw.scheduler_sessions").fetchone()[0]


def frames_path(path: str, name: str) -> str:
    return f"{path}.pandas-{name}.parquet"


def main(argv: list[str]) -> None:
    """One variant on the platform's own warehouse settings (threads, memory limit)."""
    from st_scheduling.warehouse.store import WarehouseSettings, connect

    variant, path = argv
    with connect(WarehouseSettings(path)) as con:
        if variant == "pandas":
            seconds, frames = pandas_marts(con)
            for name, frame in frames.items():
                frame.to_parquet(frames_path(path, name))
        else:
            seconds = build_sql_marts(con, SAME_AS_PANDAS if variant == "sql_same" else catalogue.MARTS)
    peak = peak_rss_mb()
    print(json.dumps({"variant": variant, "seconds": seconds, "peak_rss_mb": peak}))


if __name__ == "__main__":
    main(sys.argv[1:])
