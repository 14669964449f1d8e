-- Which channels and campaigns book work. Bots are left out; router-only sessions count like any other.
-- 'session': every session credited to its own channel and campaign, on the day it was created.
-- 'first_touch' / 'last_touch' / 'linear': every booked session credited, on the day it booked, to the
-- first, the last, or equally to each session of the same customer within the attribution window before
-- it (ST_ATTRIBUTION_WINDOW_DAYS, itself included); a booked session without a customer key credits itself.
WITH humans AS (SELECT * FROM marts.sessions WHERE NOT is_bot),
session_level AS (
    SELECT tenant_id, 'session' AS attribution_model, session_date AS period_start, channel, campaign_id, campaign,
        utm_source, utm_medium,
        count(*) AS sessions,
        count(*) FILTER (WHERE milestone_index >= milestone_position('interacted')) AS engaged_sessions,
        count(*) FILTER (WHERE is_booked) AS booked_sessions,
        count(*) FILTER (WHERE is_job) AS jobs,
        count(*) FILTER (WHERE is_booking) AS bookings,
        count(*) FILTER (WHERE is_booked)::DOUBLE AS credit
    FROM humans GROUP BY ALL
),
conversions AS (
    SELECT tenant_id, customer_key, session_id, created_at, booked_date, is_job, is_booking
    FROM humans WHERE is_booked
),
touches AS (
    SELECT c.tenant_id, c.session_id AS conversion_id, c.booked_date, c.is_job, c.is_booking,
        h.channel, h.campaign_id, h.campaign, h.utm_source, h.utm_medium, h.created_at AS touched_at, h.session_id AS touch_id
    FROM conversions AS c
    JOIN humans AS h ON h.tenant_id = c.tenant_id AND h.customer_key = c.customer_key
        AND h.created_at <= c.created_at
        AND h.created_at >= c.created_at - to_days(CAST(getvariable('st_attribution_days') AS INTEGER))
    UNION ALL
    SELECT c.tenant_id, c.session_id, c.booked_date, c.is_job, c.is_booking,
        h.channel, h.campaign_id, h.campaign, h.utm_source, h.utm_medium, h.created_at, h.session_id
    FROM conversions AS c JOIN humans AS h ON h.tenant_id = c.tenant_id AND h.session_id = c.session_id
    WHERE c.customer_key IS NULL
),
ranked AS (
    SELECT *,
        row_number() OVER (PARTITION BY tenant_id, conversion_id ORDER BY touched_at, touch_id) AS first_rank,
        row_number() OVER (PARTITION BY tenant_id, conversion_id ORDER BY touched_at DESC, touch_id DESC) AS last_rank,
        count(*) OVER (PARTITION BY tenant_id, conversion_id) AS touch_count
    FROM touches
),
credited AS (
    SELECT 'first_touch' AS attribution_model, *, 1.0 AS credit FROM ranked WHERE first_rank = 1
    UNION ALL
    SELECT 'last_touch', *, 1.0 FROM ranked WHERE last_rank = 1
    UNION ALL
    SELECT 'linear', *, 1.0 / touch_count FROM ranked
),
customer_level AS (
    SELECT tenant_id, attribution_model, booked_date AS period_start, channel, campaign_id, campaign, utm_source,
        utm_medium,
        count(DISTINCT conversion_id) AS booked_sessions,
        count(DISTINCT conversion_id) FILTER (WHERE is_job) AS jobs,
        count(DISTINCT conversion_id) FILTER (WHERE is_booking) AS bookings,
        sum(credit) AS credit
    FROM credited GROUP BY ALL
)
SELECT *,
    CASE WHEN sessions IS NULL THEN NULL ELSE coalesce(booked_sessions / nullif(sessions, 0), 0.0) END AS opened_completion_rate,
    CASE WHEN sessions IS NULL THEN NULL ELSE coalesce(booked_sessions / nullif(engaged_sessions, 0), 0.0) END AS engaged_completion_rate
FROM (SELECT * FROM session_level UNION ALL BY NAME SELECT * FROM customer_level)
ORDER BY ALL
