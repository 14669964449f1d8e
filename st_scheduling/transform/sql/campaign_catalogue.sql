-- Every tenant's campaigns, read from all its sessions: a campaign is its campaignId, shown under its most
-- frequent campaignName (else its most frequent utm_campaign, else the id). On a tenant whose ids do not identify
-- campaigns (campaign_identity.sql) a campaign is its name instead: the ids whose names share a slug are one
-- campaign, keyed 'name:<slug>' and shown under the most frequent of those names (an id with a utm_campaign and no
-- campaignName takes the name that utm_campaign most often comes with).
-- One row per campaign id (utm_campaign empty) with the campaign it belongs to and that campaign's name. A
-- utm_campaign seen on sessions without a campaignId names the campaign whose name equals it, else whose slug
-- equals its slug: one row each such utm_campaign (campaign_id empty), with the campaign it names.
WITH labels AS (
    SELECT tenant_id, own_campaign_id AS campaign_id, label, kind, count(*) AS n
    FROM (SELECT tenant_id, own_campaign_id, name_given AS label, 1 AS kind
          FROM latest_sessions WHERE name_given IS NOT NULL
          UNION ALL
          SELECT tenant_id, own_campaign_id, utm_given, 2 FROM latest_sessions WHERE utm_given IS NOT NULL)
    WHERE own_campaign_id IS NOT NULL
    GROUP BY ALL
),
utm_names AS (
    -- The campaignName the sessions with each utm_campaign most often give: on a tenant whose campaigns are their
    -- names, an id seen only with that utm_campaign belongs to that name, as one id ties its sessions together.
    SELECT tenant_id, utm_given, first(name_given ORDER BY n DESC, name_given) AS name
    FROM (SELECT tenant_id, utm_given, name_given, count(*) AS n FROM latest_sessions
          WHERE own_campaign_id IS NOT NULL AND name_given IS NOT NULL AND utm_given IS NOT NULL GROUP BY ALL)
    GROUP BY ALL
),
ids AS (
    -- Each id's own label: its most frequent campaignName, else its most frequent utm_campaign (kind 2).
    SELECT tenant_id, campaign_id, first(label ORDER BY kind, n DESC, label) AS label, min(kind) AS kind
    FROM labels GROUP BY ALL
),
keyed AS (
    SELECT i.tenant_id, i.campaign_id,
        CASE WHEN t.by_name THEN 'name:' || slug(coalesce(w.name, i.label)) ELSE i.campaign_id END AS campaign_key
    FROM ids AS i
    LEFT JOIN campaign_identity AS t USING (tenant_id)
    LEFT JOIN utm_names AS w ON i.kind = 2 AND w.tenant_id = i.tenant_id AND w.utm_given = i.label
),
campaigns AS (
    SELECT tenant_id, campaign_key, first(label ORDER BY kind, n DESC, label) AS name
    FROM (SELECT i.tenant_id, i.campaign_key, l.label, l.kind, sum(l.n) AS n
          FROM keyed AS i JOIN labels AS l USING (tenant_id, campaign_id) GROUP BY ALL)
    GROUP BY ALL
),
utm_matches AS (
    SELECT u.tenant_id, u.utm_given AS utm_campaign,
        coalesce(min(k.campaign_key) FILTER (WHERE k.name = u.utm_given), min(k.campaign_key)) AS campaign_key
    FROM (SELECT DISTINCT tenant_id, utm_given FROM latest_sessions
          WHERE own_campaign_id IS NULL AND utm_given IS NOT NULL) AS u
    JOIN campaigns AS k ON k.tenant_id = u.tenant_id AND (k.name = u.utm_given OR slug(k.name) = slug(u.utm_given))
    GROUP BY ALL
)
SELECT i.tenant_id, i.campaign_id, CAST(NULL AS VARCHAR) AS utm_campaign, i.campaign_key, k.name
FROM keyed AS i JOIN campaigns AS k USING (tenant_id, campaign_key)
UNION ALL
SELECT m.tenant_id, NULL, m.utm_campaign, m.campaign_key, k.name
FROM utm_matches AS m JOIN campaigns AS k USING (tenant_id, campaign_key)
