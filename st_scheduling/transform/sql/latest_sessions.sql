-- Each session once per tenant: scheduler sessions first (one row per tenant and id: the raw table's key, held
-- by its blocking unique_key check); router sessions only when no scheduler listed the same id (a router session
-- upgraded to a scheduler appears in both), the latest of several routers' rows. The campaign fields trimmed, as
-- the campaign catalogue and the sessions read them. The placeholders scheduler_sessions and router_sessions name the
-- raw tables, or the views of the rows of the sessions being rebuilt.
SELECT *, nullif(trim(source_campaign_id), '') AS own_campaign_id, nullif(trim(campaign_name), '') AS name_given,
    nullif(trim(source_utm_campaign), '') AS utm_given
FROM (SELECT *, 'scheduler' AS listed_by FROM {{ scheduler_sessions }}
      UNION ALL BY NAME
      (SELECT r.*, 'router' AS listed_by FROM {{ router_sessions }} AS r
       ANTI JOIN {{ scheduler_sessions }} AS s ON s.tenant_id = r.tenant_id AND s.id = r.id
       QUALIFY row_number() OVER (PARTITION BY r.tenant_id, r.id ORDER BY r.modified_on DESC, r.listed_by_id) = 1))
