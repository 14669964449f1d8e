-- Sessions, engagement and bookings by channel, campaign and source/medium per day ('session' model), and
-- booked sessions of identified customers credited to their first or last session up to the booking.
WITH humans AS (SELECT * FROM marts.sessions WHERE NOT is_bot),
session_level AS (
    SELECT tenant_id, 'session' AS attribution_model, session_date AS period_start, channel, campaign, utm_source, utm_medium,
        count(*) AS sessions,
        count(*) FILTER (WHERE milestone_index >= milestone_position('interacted')) AS engaged_sessions,
        count(*) FILTER (WHERE is_booked) AS booked_sessions,
        count(*) FILTER (WHERE is_job) AS jobs,
        count(*) FILTER (WHERE is_booking) AS bookings
    FROM humans GROUP BY ALL
),
conversions AS (
    SELECT tenant_id, customer_key, session_id, created_at, session_date, is_job, is_booking
    FROM humans WHERE is_booked AND customer_key IS NOT NULL
),
touches AS (
    SELECT c.tenant_id, c.session_id AS conversion_id, c.session_date, c.is_job, c.is_booking,
        h.channel, h.campaign, h.utm_source, h.utm_medium,
        row_number() OVER (PARTITION BY c.tenant_id, c.session_id ORDER BY h.created_at, h.session_id) AS first_rank,
        row_number() OVER (PARTITION BY c.tenant_id, c.session_id ORDER BY h.created_at DESC, h.session_id DESC) AS last_rank
    FROM conversions AS c
    JOIN humans AS h ON h.tenant_id = c.tenant_id AND h.customer_key = c.customer_key AND h.created_at <= c.created_at
),
credited AS (
    SELECT 'first_touch' AS attribution_model, * FROM touches WHERE first_rank = 1
    UNION ALL
    SELECT 'last_touch' AS attribution_model, * FROM touches WHERE last_rank = 1
),
customer_level AS (
    SELECT tenant_id, attribution_model, session_date AS period_start, channel, campaign, utm_source, utm_medium,
        count(*) AS booked_sessions, count(*) FILTER (WHERE is_job) AS jobs, count(*) FILTER (WHERE is_booking) AS bookings
    FROM credited GROUP BY ALL
)
SELECT *,
    CASE WHEN sessions IS NULL THEN NULL ELSE coalesce(booked_sessions / nullif(sessions, 0), 0.0) END AS opened_completion_rate,
    CASE WHEN sessions IS NULL THEN NULL ELSE coalesce(booked_sessions / nullif(engaged_sessions, 0), 0.0) END AS engaged_completion_rate
FROM (SELECT * FROM session_level UNION ALL BY NAME SELECT * FROM customer_level)
ORDER BY ALL
