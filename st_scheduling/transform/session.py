"""What the models read besides the tables, set up on the build's connection: the settings, the warehouse's salt
(resolved once per build), the vocabulary's maps and switches, the macros the SQL shares, and the views of what
is being built."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import duckdb

from st_scheduling.transform import templates
from st_scheduling.transform.catalogue import RAW_SESSIONS_IN_SCOPE
from st_scheduling.vocabulary import Vocabulary
from st_scheduling.warehouse import meta


@dataclass(frozen=True)
class ModelSettings:
    """What the models read besides the tables."""

    timezone: str  # local days, weeks and months
    vocabulary: Vocabulary
    salt: str | None = None  # customer-key salt; None: the warehouse's own (`meta.salt`)
    attribution_days: int = 90  # look-back window of the first-touch, last-touch and linear models


@dataclass(frozen=True)
class CampaignIdentityRule:
    """When a tenant's campaignIds do not identify its campaigns, so that its campaigns are identified by name
    (sql/campaign_identity.sql): an integration that sends a new id with every visit leaves most ids on a single
    session and each campaign name spread over many ids."""

    ids_at_least: int = 30  # judged on this many ids or more: a small tenant's real campaigns may each have one session
    one_session_share: float = 0.5  # more than this share of its ids carry a single session (most of them) ...
    ids_per_name: float = 3.0  # ... and its campaign names average at least this many ids each


CAMPAIGN_IDENTITY = CampaignIdentityRule()


def prepare(con: duckdb.DuckDBPyConnection, settings: ModelSettings) -> ModelSettings:
    """Session state the models read: the time zone, the customer-key salt, the attribution window, the
    vocabulary maps and its definition switches, the campaign identity rule, the small macros the SQL shares, and
    the views of what is being built, here everything. Returns the settings with the salt resolved."""
    vocabulary = settings.vocabulary
    settings = dataclasses.replace(settings, salt=settings.salt or meta.salt(con))
    con.execute("SET VARIABLE st_timezone = ?", [settings.timezone])
    con.execute("SET VARIABLE st_customer_key_salt = ?", [settings.salt])
    con.execute("SET VARIABLE st_attribution_days = ?", [settings.attribution_days])
    set_switches(con, vocabulary)
    for rule in dataclasses.fields(CAMPAIGN_IDENTITY):
        variable = "st_campaign_" + rule.name
        con.execute(
            templates.render("build/session:campaign_rule", variable=variable), [getattr(CAMPAIGN_IDENTITY, rule.name)]
        )
    con.execute(templates.text("macros"))
    con.execute(templates.text("channels"))
    # The vocabulary's maps as tables, a statement each: every build sets them up.
    steps, outcomes = vocabulary.steps, vocabulary.outcomes
    con.execute(templates.text("build/session:vocab_steps"), [list(steps), list(steps.values())])
    con.execute(templates.text("build/session:vocab_outcomes"), [list(outcomes), list(outcomes.values())])
    con.execute(templates.text("build/session:vocab_milestones"), [list(vocabulary.milestones)])
    sessions_built = con.execute(templates.text("build/state:exists"), ["sessions"]).fetchall()[0][0]
    for view, query in full_views().items():
        if sessions_built or "marts.sessions" not in query:
            con.execute(templates.render("build/session:view", view=view, query=query))
    return settings


def full_views() -> dict[str, str]:
    """The views of what is being built, as a full build defines them: everything."""
    views = {
        view: templates.render("build/session:all_rows", table=table) for view, table in RAW_SESSIONS_IN_SCOPE.items()
    }
    for view, (scheduler, router) in (
        ("latest_sessions", RAW_SESSIONS_IN_SCOPE.values()),
        ("latest_sessions_in_scope", RAW_SESSIONS_IN_SCOPE),
    ):
        views[view] = templates.render("latest_sessions", scheduler_sessions=scheduler, router_sessions=router)
    # Whether each tenant's campaign ids identify its campaigns: read from every session, like latest_sessions.
    views["campaign_identity"] = templates.render("campaign_identity")
    return {**views, "sessions_in_scope": templates.render("build/session:all_sessions")}


def set_switches(con: duckdb.DuckDBPyConnection, vocabulary: Vocabulary) -> None:
    """The definition switches as the variables the models read (the reconciliation check flips them)."""
    con.execute("SET VARIABLE st_milestones = ?", [list(vocabulary.milestones)])
    con.execute("SET VARIABLE st_bots_in_milestones = ?", [vocabulary.bots_in_milestones])
    con.execute("SET VARIABLE st_leads_in_abandoned = ?", [vocabulary.leads_in_abandoned])
    con.execute("SET VARIABLE st_bots_in_totals = ?", [vocabulary.bots_in_totals])
    con.execute("SET VARIABLE st_contacts_captured = ?", [vocabulary.contacts_captured])
    con.execute("SET VARIABLE st_scheduler_rate_of = ?", [vocabulary.rate_denominators["scheduler_completion_rate"]])
    con.execute("SET VARIABLE st_opened_rate_of = ?", [vocabulary.rate_denominators["opened_completion_rate"]])


def campaign_identity(con: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
    """Each tenant with campaign ids, on a connection `prepare` set up: (tenant, identified by name, campaign ids,
    ids with a single session, campaign names, ids per name)."""
    return con.execute(
        "SELECT tenant_id, by_name, campaign_ids, one_session_ids, campaign_names, ids_per_name "
        "FROM campaign_identity ORDER BY tenant_id"
    ).fetchall()
