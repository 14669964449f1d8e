"""Mart builds that redo only what changed since the last one.

`marts/sessions` merges the sessions whose raw rows were stored (or removed) since its last build, and those whose
campaign the catalogue now names or matches differently; it logs each merged session's old and new days,
customer and scheduler in `meta.session_changes`. A mart above it deletes and recomputes only the rows those
changes can alter, reading only the sessions that compute them (`scopes.py`). Everything is rebuilt when asked,
on a mart's first build, after `marts/sessions` was rebuilt in full, and whenever what a model reads besides
rows changed: its SQL, the time zone, the salt, the attribution window, the vocabulary, the scheduler names.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass

import duckdb

from st_scheduling.warehouse import marts, scopes

STATE_DDL = (
    "CREATE SCHEMA IF NOT EXISTS meta",
    "CREATE SEQUENCE IF NOT EXISTS meta.session_build_numbers",
    "CREATE SEQUENCE IF NOT EXISTS meta.mart_content_numbers",
    """CREATE TABLE IF NOT EXISTS meta.mart_builds (
        mart VARCHAR PRIMARY KEY, fingerprint VARCHAR NOT NULL, sessions_build BIGINT NOT NULL,
        full_build BIGINT NOT NULL, raw_commit BIGINT, raw_rows BIGINT NOT NULL, content BIGINT NOT NULL,
        built_at TIMESTAMPTZ NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS meta.session_changes (
        build BIGINT NOT NULL, tenant_id BIGINT, session_id VARCHAR, scheduler_id VARCHAR, customer_key VARCHAR,
        created_at TIMESTAMPTZ, session_date DATE, timeslot_date DATE, booked_date DATE)""",
)
MART_BUILD_COLUMNS = [
    "mart",
    "fingerprint",
    "sessions_build",
    "full_build",
    "raw_commit",
    "raw_rows",
    "content",
    "built_at",
]
CHANGE_COLUMNS = (
    "tenant_id, session_id, scheduler_id, customer_key, created_at, session_date, timeslot_date, booked_date"
)
SESSION_KEY = (
    "EXISTS (SELECT 1 FROM sessions_to_build AS b WHERE b.tenant_id = {a}.tenant_id AND b.session_id = {a}.{id})"
)


def stored_since(alias: str = "") -> str:
    """Rows (of the table aliased `alias`) stored by a commit after the one this build last read, or by hand."""
    column = f"{alias}.commit_number" if alias else "commit_number"
    return f"({column} > getvariable('st_since') OR {column} IS NULL OR getvariable('st_since') IS NULL)"


@dataclass(frozen=True)
class BuildState:
    """What a mart's last build consumed: `sessions_build` is the marts/sessions build it read (for
    marts/sessions, its own number), `full_build` marts/sessions' last full build."""

    fingerprint: str
    sessions_build: int
    full_build: int
    raw_commit: int | None  # the last commit of the raw tables it read (None: they were empty)
    raw_rows: int  # rows in the raw tables it read
    content: int  # the build that last changed the mart's rows


@dataclass(frozen=True)
class Build:
    rows: int  # rows in the mart after the build
    full: bool
    reason: str  # why everything was rebuilt, or what the incremental build covered
    changed: int = 0  # sessions merged (marts/sessions) or session changes read (the marts above it)
    rows_written: int | None = None  # rows an incremental build deleted and inserted (None: rebuilt in full)
    content: int = 0  # the build that last changed the mart's rows: what its published snapshot must hold


def full_rebuild_reason(
    requested: bool,
    own: BuildState | None,
    fingerprint: str,
    exists: bool,
    scoped: bool,
    sessions: BuildState | None,
    raw_edited: bool = False,
) -> str | None:
    """Why this build must rebuild everything, or None when merging the changes is exact. `sessions` is
    marts/sessions' state (for marts/sessions itself, its own); `raw_edited`: the raw tables hold a different
    number of rows than the platform's own commits since the last build account for."""
    if requested:
        return "full rebuild requested"
    if not exists or own is None:
        return "first build"
    if not scoped:
        return "this mart is always rebuilt in full (it is small)"
    if own.fingerprint != fingerprint:
        return "its SQL, settings, vocabulary or scheduler names changed since the last build"
    if raw_edited:
        return "raw rows were added or removed outside the platform's loads since the last build"
    if sessions is None:
        return "marts/sessions was rebuilt outside the incremental path"
    if own.sessions_build < sessions.full_build:
        return "marts/sessions was rebuilt in full since"
    return None


def build(
    con: duckdb.DuckDBPyConnection, mart: marts.Mart, settings: marts.ModelSettings, *, full: bool = False
) -> Build:
    """Bring one mart up to date with the raw tables, in the caller's transaction; `full` rebuilds it all."""
    marts.prepare(con, settings)
    _drop_state_of_an_older_layout(con)
    for ddl in STATE_DDL:
        con.execute(ddl)
    own, sessions = _state(con, mart.name), _state(con, marts.SESSIONS.name)
    fingerprint = _fingerprint(con, mart, settings)
    scoped = mart is marts.SESSIONS or mart.scope is not None
    con.execute("SET VARIABLE st_since = ?", [own.raw_commit if own else None])
    raw_rows = _raw_rows(con, mart)
    edited = own is not None and raw_rows != own.raw_rows + _rows_committed_since(con, mart)
    reason = full_rebuild_reason(full, own, fingerprint, _exists(con, mart), scoped, sessions, edited)
    since_raw = _raw_commit(con, mart)
    if mart is marts.SESSIONS:
        number = con.execute("SELECT nextval('meta.session_build_numbers')").fetchone()[0]
        if reason:
            marts.rebuild(con, mart)
            con.execute("DELETE FROM meta.session_changes")
            result = Build(_count(con, mart), True, reason)
        else:
            result = _merge_sessions(con, number)
        sessions_build, full_build = number, number if reason else own.full_build
    else:
        sessions_build, full_build = (sessions.sessions_build, sessions.full_build) if sessions else (0, 0)
        if reason:
            marts.rebuild(con, mart)
            result = Build(_count(con, mart), True, reason)
        else:
            result = _recompute_scope(con, mart, own.sessions_build, settings)
    unchanged = own is not None and not result.full and result.rows_written == 0
    content = own.content if unchanged else con.execute("SELECT nextval('meta.mart_content_numbers')").fetchone()[0]
    _record(con, mart, fingerprint, sessions_build, full_build, since_raw, raw_rows, content)
    if mart is marts.SESSIONS:
        _prune_changes(con)
    return dataclasses.replace(result, content=content)


def _merge_sessions(con: duckdb.DuckDBPyConnection, number: int) -> Build:
    """Rebuild the sessions whose raw rows were stored since the last build, those in the windows a commit
    replaced since (where a session may have gone for good), and those whose campaign the catalogue now names or
    matches differently; replace the ones that came out different, logging their old and new rows as build
    `number`'s changes."""
    stored = " UNION ".join(
        f"SELECT tenant_id, id AS session_id FROM {table} WHERE {stored_since()}"
        for table in marts.RAW_SESSIONS_IN_SCOPE.values()
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE sessions_to_build AS
        {stored}
        UNION
        SELECT s.tenant_id, s.session_id FROM marts.sessions AS s JOIN meta.raw_replaced AS w
            ON w.tenant_id = s.tenant_id AND (w.window_start IS NULL OR s.created_at >= w.window_start
                                              AND s.created_at < w.window_end)
        WHERE list_contains(?, w.table_name) AND {stored_since("w")}""",
        [[table.split(".")[1] for table in marts.RAW_SESSIONS_IN_SCOPE.values()]],
    )
    con.execute(f"CREATE OR REPLACE TEMP TABLE catalogue_now AS {marts.sql_file('campaign_catalogue')}")
    con.execute("""CREATE OR REPLACE TEMP TABLE catalogue_changes AS
        (SELECT * FROM catalogue_now EXCEPT SELECT * FROM meta.campaign_catalogue)
        UNION (SELECT * FROM meta.campaign_catalogue EXCEPT SELECT * FROM catalogue_now)""")
    # A session's campaign is read from the one catalogue row it joins: its campaignId's, or (without one) its
    # utm_campaign's. Sessions whose row was added, removed or changed are rebuilt.
    con.execute("""INSERT INTO sessions_to_build
        SELECT tenant_id, id FROM latest_sessions AS l WHERE EXISTS (SELECT 1 FROM catalogue_changes AS c
            WHERE c.tenant_id = l.tenant_id AND c.campaign_id = l.own_campaign_id)
        UNION
        SELECT tenant_id, id FROM latest_sessions AS l WHERE l.own_campaign_id IS NULL AND EXISTS (
            SELECT 1 FROM catalogue_changes AS c WHERE c.tenant_id = l.tenant_id AND c.utm_campaign = l.utm_given)""")
    con.execute("CREATE OR REPLACE TEMP TABLE sessions_to_build AS SELECT DISTINCT * FROM sessions_to_build")
    con.execute("DELETE FROM meta.campaign_catalogue")
    con.execute("INSERT INTO meta.campaign_catalogue SELECT * FROM catalogue_now")
    read = con.execute("SELECT count(*) FROM sessions_to_build").fetchone()[0]
    for view, table in marts.RAW_SESSIONS_IN_SCOPE.items():
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT * FROM {table} AS r "
            f"WHERE {SESSION_KEY.format(a='r', id='id')}"
        )
    con.execute(f"CREATE OR REPLACE TEMP TABLE sessions_rebuilt AS {marts.SESSIONS.sql()}")
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE sessions_before AS SELECT * FROM marts.sessions AS s "
        f"WHERE {SESSION_KEY.format(a='s', id='session_id')}"
    )
    # Most re-read sessions come out as they were: only those that differ are replaced and logged, so the marts
    # above recompute what really changed.
    con.execute("""CREATE OR REPLACE TEMP TABLE sessions_to_build AS
        SELECT DISTINCT tenant_id, session_id FROM (
            (SELECT * FROM sessions_rebuilt EXCEPT SELECT * FROM sessions_before)
            UNION ALL (SELECT * FROM sessions_before EXCEPT SELECT * FROM sessions_rebuilt))""")
    changed, written = con.execute("SELECT count(*) FROM sessions_to_build").fetchone()[0], 0
    if changed:
        in_build = SESSION_KEY.format(a="s", id="session_id")
        log = f"INSERT INTO meta.session_changes SELECT {number}, {CHANGE_COLUMNS} FROM {{}} AS s WHERE {in_build}"
        con.execute(log.format("sessions_before"))
        written += _rows(con, f"DELETE FROM marts.sessions AS s WHERE {in_build}")
        written += _rows(con, f"INSERT INTO marts.sessions SELECT * FROM sessions_rebuilt AS s WHERE {in_build}")
        con.execute(log.format("sessions_rebuilt"))
    return Build(
        _count(con, marts.SESSIONS),
        False,
        f"re-read {read:,} sessions stored or replaced since the last build; {changed:,} changed",
        changed,
        written,
    )


def _recompute_scope(
    con: duckdb.DuckDBPyConnection, mart: marts.Mart, since_build: int, settings: marts.ModelSettings
) -> Build:
    """Delete and recompute the rows of `mart` that the session changes after `since_build` can alter."""
    con.execute(
        "CREATE OR REPLACE TEMP TABLE changes AS SELECT * FROM meta.session_changes WHERE build > ?", [since_build]
    )
    scope = mart.scope
    if isinstance(scope, scopes.Periods):
        _fill_spans(con, scope, settings)
    else:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {scope.table} AS SELECT DISTINCT tenant_id, {scope.column} "
            f"FROM changes WHERE {scope.column} IS NOT NULL"
        )
    changes = con.execute("SELECT count(*) FROM changes").fetchone()[0]
    removed = inserted = 0
    if con.execute(f"SELECT count(*) FROM {scope.table}").fetchone()[0]:
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW sessions_in_scope AS SELECT * FROM marts.sessions AS x "
            f"WHERE {scope.sessions('x')}"
        )
        removed = _rows(con, f"DELETE FROM {mart.qualified} AS t WHERE {scope.rows('t')}")
        inserted = _rows(con, f"INSERT INTO {mart.qualified} SELECT * FROM ({mart.sql()}) AS m WHERE {scope.rows('m')}")
    return Build(
        _count(con, mart),
        False,
        f"recomputed the rows {changes:,} session changes can alter ({removed:,} rows replaced)",
        changes,
        removed + inserted,
    )


def _fill_spans(con: duckdb.DuckDBPyConnection, scope: scopes.Periods, settings: marts.ModelSettings) -> None:
    days = ["SELECT tenant_id, unnest([" + ", ".join(scopes.SESSION_DAYS) + "]) AS day FROM changes"]
    if scope.touches:  # bookings whose look-back window holds a changed session
        days.append("""SELECT b.tenant_id, b.booked_date FROM changes AS c JOIN marts.sessions AS b
            ON b.tenant_id = c.tenant_id AND b.customer_key = c.customer_key AND b.is_booked
            AND b.created_at >= c.created_at AND b.created_at <= c.created_at + to_days(?)""")
    if scope.raw_days:
        days.append(scope.raw_days.replace("$since", stored_since()))
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE scope_spans AS
        WITH days AS (SELECT tenant_id, day, CAST(date_trunc('week', day) AS DATE) AS week,
                          CAST(date_trunc('month', day) AS DATE) AS month
                      FROM ({" UNION ".join(days)}) WHERE day IS NOT NULL)
        SELECT tenant_id, min(least(week, month)) AS span_start,
            max(greatest(period_end(week, 'week'), period_end(month, 'month'))) AS span_end
        FROM days GROUP BY tenant_id""",
        [settings.attribution_days] if scope.touches else [],
    )
    con.execute(
        """CREATE OR REPLACE TEMP TABLE scope_converters AS
        SELECT DISTINCT x.tenant_id, x.customer_key FROM marts.sessions AS x JOIN scope_spans AS s USING (tenant_id)
        WHERE x.is_booked AND x.customer_key IS NOT NULL AND x.booked_date >= s.span_start
            AND x.booked_date < s.span_end"""
        if scope.touches
        else "CREATE OR REPLACE TEMP TABLE scope_converters (tenant_id BIGINT, customer_key VARCHAR)"
    )


def _fingerprint(con: duckdb.DuckDBPyConnection, mart: marts.Mart, settings: marts.ModelSettings) -> str:
    vocabulary = settings.vocabulary
    parts = [
        mart.sql(),
        settings.timezone,
        str(settings.attribution_days),
        settings.salt or marts.warehouse_salt(con),
        repr(sorted(vocabulary.steps.items())),
        repr(sorted(vocabulary.outcomes.items())),
        repr(vocabulary.switches()),
    ]
    if mart is marts.SESSIONS:
        parts += [
            marts.sql_file(name) for name in ("latest_sessions", "campaign_identity", "campaign_catalogue", "channels")
        ]
    if "raw/schedulers" in mart.deps:
        parts.append(
            str(
                con.execute(
                    "SELECT string_agg(concat_ws('/', tenant_id, id, name), ',' ORDER BY ALL) FROM raw.schedulers"
                ).fetchone()[0]
            )
        )
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def _state(con: duckdb.DuckDBPyConnection, mart: str) -> BuildState | None:
    row = con.execute(
        "SELECT fingerprint, sessions_build, full_build, raw_commit, raw_rows, content "
        "FROM meta.mart_builds WHERE mart = ?",
        [mart],
    ).fetchone()
    return BuildState(*row) if row else None


def _raw_tables(mart: marts.Mart) -> list[str]:
    return [d.split("/")[1] for d in mart.deps if d.startswith("raw/")]


def _raw_commit(con: duckdb.DuckDBPyConnection, mart: marts.Mart) -> int | None:
    """The last commit to a raw table this mart reads (a commit may only have removed rows): the next build
    reads what later commits stored."""
    tables = _raw_tables(mart)
    if not tables:
        return None
    stored = " UNION ALL ".join(f"SELECT max(commit_number) AS n FROM raw.{t}" for t in tables)
    return con.execute(
        f"""SELECT max(n) FROM ({stored} UNION ALL
        SELECT max(commit_number) FROM meta.raw_replaced WHERE list_contains(?, table_name))""",
        [tables],
    ).fetchone()[0]


def _drop_state_of_an_older_layout(con: duckdb.DuckDBPyConnection) -> None:
    """Build state kept by an older version (one that marked what it read by a worker's clock, say) is dropped,
    so each mart rebuilds in full once."""
    columns = [
        c
        for (c,) in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE schema_name = 'meta' AND "
            "table_name = 'mart_builds' ORDER BY column_index"
        ).fetchall()
    ]
    if columns and columns != MART_BUILD_COLUMNS:
        con.execute("DROP TABLE meta.mart_builds")


def _raw_rows(con: duckdb.DuckDBPyConnection, mart: marts.Mart) -> int:
    tables = [f"SELECT count(*) AS n FROM raw.{t}" for t in _raw_tables(mart)]
    return con.execute(f"SELECT sum(n) FROM ({' UNION ALL '.join(tables)})").fetchone()[0] or 0 if tables else 0


def _rows_committed_since(con: duckdb.DuckDBPyConnection, mart: marts.Mart) -> int:
    """Rows the platform's commits stored less those they removed, in this mart's raw tables since its last
    build."""
    return con.execute(
        f"""SELECT coalesce(sum(rows_stored - rows_removed), 0) FROM meta.raw_replaced
        WHERE list_contains(?, table_name) AND {stored_since()}""",
        [_raw_tables(mart)],
    ).fetchone()[0]


def _record(
    con: duckdb.DuckDBPyConnection,
    mart: marts.Mart,
    fingerprint: str,
    sessions_build: int,
    full_build: int,
    raw_commit: int | None,
    raw_rows: int,
    content: int,
) -> None:
    con.execute(
        "INSERT OR REPLACE INTO meta.mart_builds VALUES (?, ?, ?, ?, ?, ?, ?, now())",
        [mart.name, fingerprint, sessions_build, full_build, raw_commit, raw_rows, content],
    )


def _prune_changes(con: duckdb.DuckDBPyConnection) -> None:
    """Drop the session changes every mart above marts/sessions has read, and the raw commits every mart that
    reads raw tables has read (a mart never built rebuilds in full)."""
    above = [m.name for m in marts.MARTS if m is not marts.SESSIONS]
    con.execute(
        """DELETE FROM meta.session_changes WHERE build <= coalesce(
        (SELECT min(sessions_build) FROM meta.mart_builds WHERE list_contains(?, mart)),
        (SELECT max(build) FROM meta.session_changes))""",
        [above],
    )
    reading_raw = [m.name for m in marts.MARTS if _raw_tables(m)]
    con.execute(
        """DELETE FROM meta.raw_replaced WHERE commit_number <= (
        SELECT CASE WHEN bool_and(raw_commit IS NOT NULL) THEN min(raw_commit) END
        FROM meta.mart_builds WHERE list_contains(?, mart))""",
        [reading_raw],
    )


def _exists(con: duckdb.DuckDBPyConnection, mart: marts.Mart) -> bool:
    return (
        con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'marts' AND table_name = ?", [mart.name]
        ).fetchone()[0]
        > 0
    )


def _rows(con: duckdb.DuckDBPyConnection, statement: str) -> int:
    """Rows a DELETE or INSERT changed."""
    return con.execute(statement).fetchall()[0][0]


def _count(con: duckdb.DuckDBPyConnection, mart: marts.Mart) -> int:
    return con.execute(f"SELECT count(*) FROM {mart.qualified}").fetchone()[0]
