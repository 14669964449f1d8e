"""Mart builds that redo only what changed since the last one.

`build_sessions` brings marts/sessions up to date: it merges the sessions whose raw rows were stored (or removed)
since its last build, and those whose campaign the catalogue now names or matches differently, and logs each merged
session's old and new days, customer and scheduler in `meta.session_changes`. `build_above` brings a mart above it
up to date: it deletes and recomputes only the rows those changes can alter, reading only the sessions that compute
them (`scopes.py`). Everything is rebuilt when asked, on a mart's first build, after marts/sessions was rebuilt in
full, and whenever what a model reads besides rows changed: its SQL, the time zone, the salt, the attribution
window, the vocabulary, the scheduler names. Every statement is in `sql/build/`.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from typing import Any

import duckdb

from st_scheduling.transform import catalogue, scopes
from st_scheduling.transform.catalogue import RAW_SESSIONS_IN_SCOPE, SESSIONS, Mart
from st_scheduling.transform.session import ModelSettings, prepare
from st_scheduling.transform.templates import Fragment, render, text
from st_scheduling.warehouse import meta


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


def build(con: duckdb.DuckDBPyConnection, mart: Mart, settings: ModelSettings, *, full: bool = False) -> Build:
    """Bring one mart up to date with the raw tables, in the caller's transaction; `full` rebuilds it all."""
    if mart is SESSIONS:
        return build_sessions(con, settings, full=full)
    return build_above(con, mart, settings, full=full)


def build_sessions(con: duckdb.DuckDBPyConnection, settings: ModelSettings, *, full: bool = False) -> Build:
    """Bring marts/sessions up to date: merge the sessions that changed since its last build, or rebuild it."""
    plan = _plan(con, SESSIONS, settings, full)
    number = _next(con, "next_sessions_build")
    if plan.reason:
        rebuild(con, SESSIONS)
        con.execute(text("build/state:forget_session_changes"))
        result = Build(_count(con, SESSIONS), True, plan.reason)
    else:
        result = _merge_sessions(con, number)
    built = _record(con, plan, result, number, number if plan.reason or plan.own is None else plan.own.full_build)
    _prune_changes(con)
    return built


def build_above(con: duckdb.DuckDBPyConnection, mart: Mart, settings: ModelSettings, *, full: bool = False) -> Build:
    """Bring a mart above marts/sessions up to date: recompute the rows the session changes since its last build
    can alter, or rebuild it."""
    plan = _plan(con, mart, settings, full)
    if plan.reason or plan.own is None:
        rebuild(con, mart)
        result = Build(_count(con, mart), True, plan.reason or "first build")
    else:
        result = _recompute_scope(con, mart, plan.own.sessions_build, plan.settings)
    sessions = plan.sessions
    return _record(con, plan, result, *((sessions.sessions_build, sessions.full_build) if sessions else (0, 0)))


def rebuild(con: duckdb.DuckDBPyConnection, mart: Mart) -> None:
    """Rebuild one mart in full from everything, on a connection `prepare` set up (`build` is the way in: it
    records what the build read, so the next one can merge only what changed)."""
    if mart is SESSIONS:
        con.execute(render("build/state:catalogue", catalogue=render("campaign_catalogue")))
    con.execute(render("build/state:full", mart=mart.qualified, model=render(mart.name)))


@dataclass(frozen=True)
class _Plan:
    """What a build found before building: the state of the last one, and why it must rebuild everything."""

    mart: Mart
    settings: ModelSettings  # the salt resolved
    own: BuildState | None
    sessions: BuildState | None  # marts/sessions' state
    fingerprint: str
    raw_rows: int
    raw_commit: int | None
    reason: str | None


def _plan(con: duckdb.DuckDBPyConnection, mart: Mart, settings: ModelSettings, full: bool) -> _Plan:
    meta.ensure(con)
    settings = prepare(con, settings)
    own, sessions = _state(con, mart.name), _state(con, SESSIONS.name)
    fingerprint = _fingerprint(con, mart, settings)
    con.execute("SET VARIABLE st_since = ?", [own.raw_commit if own else None])
    raw_rows = _raw_rows(con, mart)
    edited = own is not None and raw_rows != own.raw_rows + _rows_committed_since(con, mart)
    scoped = mart is SESSIONS or mart.scope is not None
    reason = full_rebuild_reason(full, own, fingerprint, _exists(con, mart), scoped, sessions, edited)
    return _Plan(mart, settings, own, sessions, fingerprint, raw_rows, _raw_commit(con, mart), reason)


def _record(con: duckdb.DuckDBPyConnection, plan: _Plan, result: Build, sessions_build: int, full_build: int) -> Build:
    unchanged = plan.own is not None and not result.full and result.rows_written == 0
    content = plan.own.content if unchanged and plan.own else _next(con, "next_content")
    con.execute(
        text("build/state:record"),
        [plan.mart.name, plan.fingerprint, sessions_build, full_build, plan.raw_commit, plan.raw_rows, content],
    )
    return dataclasses.replace(result, content=content)


def _merge_sessions(con: duckdb.DuckDBPyConnection, number: int) -> Build:
    """Rebuild the sessions whose raw rows were stored since the last build, those in the windows a commit
    replaced since (where a session may have gone for good), and those whose campaign the catalogue now names or
    matches differently; replace the ones that came out different, logging their old and new rows as build
    `number`'s changes."""
    con.execute(
        render(
            "build/merge:sessions_to_build",
            scheduler_stored=_stored_since("r.commit_number"),
            router_stored=_stored_since("r.commit_number"),
            window_stored=_stored_since("w.commit_number"),
        ),
        [[table.split(".")[1] for table in RAW_SESSIONS_IN_SCOPE.values()]],
    )
    con.execute(render("build/merge:catalogue_now", catalogue=render("campaign_catalogue")))
    for statement in ("catalogue_changes", "sessions_of_changed_campaigns", "distinct_sessions_to_build"):
        con.execute(text(f"build/merge:{statement}"))
    con.execute(text("build/merge:store_catalogue"))
    read = _scalar(con, render("build/state:rows", table="sessions_to_build"))
    for view, table in RAW_SESSIONS_IN_SCOPE.items():
        con.execute(render("build/merge:raw_rows_in_build", view=view, table=table, in_build=_in_build("r", "id")))
    con.execute(render("build/merge:sessions_rebuilt", model=render(SESSIONS.name)))
    in_build = _in_build("s", "session_id")
    con.execute(render("build/merge:sessions_before", in_build=in_build))
    con.execute(text("build/merge:changed_sessions"))
    changed, written = _scalar(con, render("build/state:rows", table="sessions_to_build")), 0
    if changed:
        con.execute(render("build/merge:log_changes", rows="sessions_before", in_build=in_build), [number])
        written += _scalar(con, render("build/merge:delete_changed", in_build=in_build))
        written += _scalar(con, render("build/merge:insert_changed", in_build=in_build))
        con.execute(render("build/merge:log_changes", rows="sessions_rebuilt", in_build=in_build), [number])
    return Build(
        _count(con, SESSIONS),
        False,
        f"re-read {read:,} sessions stored or replaced since the last build; {changed:,} changed",
        changed,
        written,
    )


def _stored_since(commit_number: str) -> Fragment:
    return render("build/merge:stored_since", commit_number=commit_number)


def _in_build(alias: str, id: str) -> Fragment:
    return render("build/merge:in_build", alias=alias, id=id)


def _recompute_scope(con: duckdb.DuckDBPyConnection, mart: Mart, since_build: int, settings: ModelSettings) -> Build:
    """Delete and recompute the rows of `mart` that the session changes after `since_build` can alter."""
    con.execute(text("build/above:changes"), [since_build])
    scope = mart.scope
    assert scope is not None, f"{mart.name} is always rebuilt in full"
    if isinstance(scope, scopes.Periods):
        _fill_periods(con, scope, settings)
    else:
        con.execute(render("build/above:changed_keys", table=scope.table, column=scope.column))
    changes = _scalar(con, render("build/state:rows", table="changes"))
    removed = inserted = 0
    if _scalar(con, render("build/state:rows", table=scope.table)):
        con.execute(render("build/above:sessions_in_scope", sessions=scope.sessions("x")))
        removed = _scalar(con, render("build/above:delete_scope", mart=mart.qualified, rows=scope.rows("t")))
        inserted = _scalar(
            con, render("build/above:insert_scope", mart=mart.qualified, model=render(mart.name), rows=scope.rows("m"))
        )
    return Build(
        _count(con, mart),
        False,
        f"recomputed the rows {changes:,} session changes can alter ({removed:,} rows replaced)",
        changes,
        removed + inserted,
    )


def _fill_periods(con: duckdb.DuckDBPyConnection, scope: scopes.Periods, settings: ModelSettings) -> None:
    con.execute("SET VARIABLE st_scope_grains = ?", [list(scope.grains)])
    no_days = render("build/above:no_days")
    con.execute(
        render(
            "build/above:periods",
            changed=render("build/above:changed_days"),
            touched=render("build/above:touched_booking_days") if scope.touches else no_days,
            raw=render(scope.raw_days, stored_since=_stored_since("commit_number")) if scope.raw_days else no_days,
        ),
        [settings.attribution_days] if scope.touches else [],
    )
    con.execute(text("build/above:days"))
    con.execute(text("build/above:converters" if scope.touches else "build/above:no_converters"))


def _fingerprint(con: duckdb.DuckDBPyConnection, mart: Mart, settings: ModelSettings) -> str:
    vocabulary = settings.vocabulary
    parts = [
        mart.sql(),
        settings.timezone,
        str(settings.attribution_days),
        settings.salt or "",
        repr(sorted(vocabulary.steps.items())),
        repr(sorted(vocabulary.outcomes.items())),
        repr(vocabulary.switches()),
    ]
    if mart is SESSIONS:
        parts += [text(name) for name in ("latest_sessions", "campaign_identity", "campaign_catalogue", "channels")]
    if "raw/schedulers" in mart.deps:
        parts.append(str(_scalar(con, text("build/state:scheduler_names"))))
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def _state(con: duckdb.DuckDBPyConnection, mart: str) -> BuildState | None:
    row = con.execute(text("build/state:state"), [mart]).fetchone()
    return BuildState(*row) if row else None


def _raw_tables(mart: Mart) -> list[str]:
    return [d.split("/")[1] for d in mart.deps if d.startswith("raw/")]


def _raw_commit(con: duckdb.DuckDBPyConnection, mart: Mart) -> int | None:
    """The last commit to a raw table this mart reads: the next build reads what later commits stored."""
    commits = [
        _scalar(con, render("build/state:last_commit", table=f"raw.{table}"), [table]) for table in _raw_tables(mart)
    ]
    return max((c for c in commits if c is not None), default=None)


def _raw_rows(con: duckdb.DuckDBPyConnection, mart: Mart) -> int:
    return sum(_scalar(con, render("build/state:rows", table=f"raw.{table}")) for table in _raw_tables(mart))


def _rows_committed_since(con: duckdb.DuckDBPyConnection, mart: Mart) -> int:
    """Rows the platform's commits stored less those they removed, in this mart's raw tables since its last
    build."""
    statement = render("build/state:rows_committed_since", stored_since=_stored_since("commit_number"))
    return int(_scalar(con, statement, [_raw_tables(mart)]))


def _prune_changes(con: duckdb.DuckDBPyConnection) -> None:
    """Drop the session changes every mart above marts/sessions has read, and the raw commits every mart that
    reads raw tables has read (a mart never built rebuilds in full)."""
    con.execute(text("build/state:forget_changes_read"), [[m.name for m in catalogue.MARTS if m is not SESSIONS]])
    con.execute(text("build/state:forget_commits_read"), [[m.name for m in catalogue.MARTS if _raw_tables(m)]])


def _exists(con: duckdb.DuckDBPyConnection, mart: Mart) -> bool:
    return bool(_scalar(con, text("build/state:exists"), [mart.name]))


def _next(con: duckdb.DuckDBPyConnection, sequence: str) -> int:
    return int(_scalar(con, text(f"build/state:{sequence}")))


def _count(con: duckdb.DuckDBPyConnection, mart: Mart) -> int:
    return int(_scalar(con, render("build/state:rows", table=mart.qualified)))


def _scalar(con: duckdb.DuckDBPyConnection, statement: str, parameters: list[object] | None = None) -> Any:
    """The one value a statement returns (for a DELETE or INSERT: the rows it changed)."""
    return con.execute(statement, parameters or []).fetchall()[0][0]
