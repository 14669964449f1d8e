-- Every tenant's campaigns, read from all its sessions: a campaign is its campaignId, shown under its most
-- frequent campaignName (else its most frequent utm_campaign, else the id); one row each, utm_campaign empty.
-- A utm_campaign seen on sessions without a campaignId names the campaign whose name equals it, else whose slug
-- equals its slug: one row each such utm_campaign, with the campaign it names.
WITH labels AS (
    SELECT tenant_id, own_campaign_id AS campaign_id, label, kind, count(*) AS n
    FROM (SELECT tenant_id, own_campaign_id, name_given AS label, 1 AS kind
          FROM latest_sessions WHERE name_given IS NOT NULL
          UNION ALL
          SELECT tenant_id, own_campaign_id, utm_given, 2 FROM latest_sessions WHERE utm_given IS NOT NULL)
    WHERE own_campaign_id IS NOT NULL
    GROUP BY ALL
),
campaigns AS (
    SELECT tenant_id, campaign_id, first(label ORDER BY kind, n DESC, label) AS name
    FROM labels GROUP BY ALL
),
utm_matches AS (
    SELECT u.tenant_id, u.utm_given AS utm_campaign,
        coalesce(min(k.campaign_id) FILTER (WHERE k.name = u.utm_given), min(k.campaign_id)) AS campaign_id
    FROM (SELECT DISTINCT tenant_id, utm_given FROM latest_sessions
          WHERE own_campaign_id IS NULL AND utm_given IS NOT NULL) AS u
    JOIN campaigns AS k ON k.tenant_id = u.tenant_id AND (k.name = u.utm_given OR slug(k.name) = slug(u.utm_given))
    GROUP BY ALL
)
SELECT tenant_id, campaign_id, name, CAST(NULL AS VARCHAR) AS utm_campaign FROM campaigns
UNION ALL
SELECT tenant_id, campaign_id, NULL, utm_campaign FROM utm_matches
