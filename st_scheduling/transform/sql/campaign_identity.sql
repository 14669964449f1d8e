-- Whether each tenant's campaignIds identify its campaigns, read from all its sessions: one row per tenant with
-- campaign ids, with the figures that decide. Some integrations send a new campaignId with every visit; taken as
-- campaigns, such ids split each campaign into rows of one session. Their tell: most of the tenant's ids carry a
-- single session, and its campaign names are each spread over many ids. Such a tenant's campaigns are identified by
-- name (`by_name`, read by campaign_catalogue.sql). The thresholds are `marts.CAMPAIGN_IDENTITY`, as variables;
-- a tenant with fewer ids than its minimum is never judged by name.
WITH per_name AS (
    -- The name the sessions of an id give its campaign, compared as the catalogue compares names: by slug (taken
    -- once per distinct name, not once per session).
    SELECT tenant_id, own_campaign_id, slug(name) AS name_slug, sessions
    FROM (SELECT tenant_id, own_campaign_id, coalesce(name_given, utm_given) AS name, count(*) AS sessions
          FROM latest_sessions WHERE own_campaign_id IS NOT NULL GROUP BY ALL)
),
per_id AS (
    SELECT tenant_id, own_campaign_id, sum(sessions) AS sessions, bool_or(name_slug IS NOT NULL) AS named
    FROM per_name GROUP BY ALL
),
figures AS (
    SELECT i.tenant_id, i.campaign_ids, i.one_session_ids, i.one_session_ids / i.campaign_ids AS one_session_share,
        n.campaign_names, i.named_ids / nullif(n.campaign_names, 0) AS ids_per_name
    FROM (SELECT tenant_id, count(*) AS campaign_ids, count(*) FILTER (WHERE sessions = 1) AS one_session_ids,
              count(*) FILTER (WHERE named) AS named_ids
          FROM per_id GROUP BY ALL) AS i
    JOIN (SELECT tenant_id, count(DISTINCT name_slug) AS campaign_names FROM per_name GROUP BY ALL) AS n
        USING (tenant_id)
)
SELECT *,
    campaign_ids >= getvariable('st_campaign_ids_at_least')
        AND one_session_share > getvariable('st_campaign_one_session_share')
        AND coalesce(ids_per_name >= getvariable('st_campaign_ids_per_name'), false) AS by_name
FROM figures
