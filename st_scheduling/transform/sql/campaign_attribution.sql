-- Which channels and campaigns book work. Bots are left out; router-only sessions count like any other.
-- 'session': every session credited to its own channel and campaign, on the day it was created.
-- 'first_touch' / 'last_touch' / 'linear': every booked session credited, on the day it booked, to the
-- first, the last, or equally to each session of the same customer within the attribution window before
-- it (ST_ATTRIBUTION_WINDOW_DAYS, itself included); a booked session without a customer key credits itself.
WITH humans AS (
    SELECT tenant_id, session_id, session_date, created_at, booked_date, channel, campaign_id, campaign, utm_source,
        utm_medium, milestone_index, is_booked, is_job, is_booking, customer_key
    FROM sessions_in_scope WHERE NOT is_bot
),
session_level AS (
    SELECT tenant_id, 'session' AS attribution_model, session_date AS period_start, channel, campaign_id, campaign,
        utm_source, utm_medium,
        count(*) AS sessions,
        count(*) FILTER (WHERE milestone_index >= 1) AS engaged_sessions,  -- gave any information
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
        {'channel': h.channel, 'campaign_id': h.campaign_id, 'campaign': h.campaign, 'utm_source': h.utm_source,
         'utm_medium': h.utm_medium} AS touch,
        h.created_at AS touched_at, h.session_id AS touch_id
    FROM conversions AS c
    JOIN humans AS h ON h.tenant_id = c.tenant_id AND h.customer_key = c.customer_key
        AND h.created_at <= c.created_at
        AND h.created_at >= c.created_at - to_days(CAST(getvariable('st_attribution_days') AS INTEGER))
    UNION ALL
    SELECT c.tenant_id, c.session_id, c.booked_date, c.is_job, c.is_booking,
        {'channel': h.channel, 'campaign_id': h.campaign_id, 'campaign': h.campaign, 'utm_source': h.utm_source,
         'utm_medium': h.utm_medium},
        h.created_at, h.session_id
    FROM conversions AS c JOIN humans AS h ON h.tenant_id = c.tenant_id AND h.session_id = c.session_id
    WHERE c.customer_key IS NULL
),
-- Every booked session's touches in one pass: the first and the last (by time, then session id), and how many.
-- A touch's five fields travel as one struct, so each model credits one whole touch.
per_conversion AS (
    SELECT tenant_id, conversion_id, any_value(booked_date) AS booked_date, any_value(is_job) AS is_job,
        any_value(is_booking) AS is_booking, count(*) AS touch_count,
        arg_min(touch, (touched_at, touch_id)) AS first_touch, arg_max(touch, (touched_at, touch_id)) AS last_touch
    FROM touches GROUP BY tenant_id, conversion_id
),
-- One row per model, booked session and campaign it credits, so counting rows counts booked sessions: the credit
-- is `touches` of the booked session's `touch_count` (first and last touch: 1 of 1).
credited AS (
    SELECT 'first_touch' AS attribution_model, tenant_id, booked_date, is_job, is_booking, first_touch AS touch,
        1 AS touches, 1 AS touch_count
    FROM per_conversion
    UNION ALL
    SELECT 'last_touch', tenant_id, booked_date, is_job, is_booking, last_touch, 1, 1
    FROM per_conversion
    UNION ALL
    SELECT 'linear', t.tenant_id, t.booked_date, t.is_job, t.is_booking, t.touch, count(*), any_value(p.touch_count)
    FROM touches AS t JOIN per_conversion AS p USING (tenant_id, conversion_id)
    GROUP BY t.tenant_id, t.conversion_id, t.booked_date, t.is_job, t.is_booking, t.touch
),
-- The booked sessions of a row counted per share of credit (so many thirds, so many halves, ...) first.
shares AS (
    SELECT tenant_id, attribution_model, booked_date, touch, touches, touch_count,
        count(*) AS booked_sessions,
        count(*) FILTER (WHERE is_job) AS jobs,
        count(*) FILTER (WHERE is_booking) AS bookings
    FROM credited GROUP BY ALL
),
customer_level AS (
    SELECT tenant_id, attribution_model, booked_date AS period_start, touch.channel, touch.campaign_id,
        touch.campaign, touch.utm_source, touch.utm_medium,
        CAST(sum(booked_sessions) AS BIGINT) AS booked_sessions,
        CAST(sum(jobs) AS BIGINT) AS jobs,
        CAST(sum(bookings) AS BIGINT) AS bookings,
        -- Linear credits are fractions: each share's total added in one fixed order, so a row recomputed alone
        -- (incrementally) has the very same double as in a full build, whatever order the threads met them in.
        sum(booked_sessions * touches / touch_count ORDER BY touch_count, touches) AS credit
    FROM shares GROUP BY ALL
)
SELECT *,
    CASE WHEN sessions IS NULL THEN NULL ELSE coalesce(booked_sessions / nullif(sessions, 0), 0.0) END AS booked_per_opened,
    CASE WHEN sessions IS NULL THEN NULL ELSE coalesce(booked_sessions / nullif(engaged_sessions, 0), 0.0) END AS booked_per_engaged
FROM (SELECT * FROM session_level UNION ALL BY NAME SELECT * FROM customer_level)
ORDER BY ALL
