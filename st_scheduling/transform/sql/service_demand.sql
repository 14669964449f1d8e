-- What customers ask for: sessions that named a service, by category, job type and business unit, per
-- tenant and day / week / month, with the share that booked.
WITH requests AS (
    SELECT tenant_id, category, job_type_id, business_unit_id, session_date, session_week, session_month, is_booked
    FROM sessions_in_scope WHERE NOT is_bot AND category IS NOT NULL
),
grains AS (
    SELECT *, 'day' AS grain, session_date AS period_start FROM requests
    UNION ALL SELECT *, 'week', session_week FROM requests
    UNION ALL SELECT *, 'month', session_month FROM requests
)
SELECT tenant_id, grain, period_start, category, job_type_id, business_unit_id,
    count(*) AS requests,
    count(*) FILTER (WHERE is_booked) AS booked,
    count(*) FILTER (WHERE is_booked) / count(*) AS booked_share
FROM grains GROUP BY tenant_id, grain, period_start, category, job_type_id, business_unit_id
ORDER BY ALL
