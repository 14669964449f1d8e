-- How long booking takes, per tenant, scheduler and week of the session: from the session's start to its
-- booking, from the booking to the booked arrival window, and, for recoveries (a booking made more than an
-- hour after the session started: the customer left and came back), from the session's start to the
-- recovery. Median and 90th percentile; bots left out.
WITH booked AS (
    SELECT tenant_id, scheduler_id, session_week AS week_start,
        epoch(booked_at - created_at) / 60.0 AS minutes_to_booking,
        epoch(timeslot_start - booked_at) / 3600.0 AS hours_to_arrival_window,
        booked_at - created_at > INTERVAL 1 HOUR AS recovered
    FROM sessions_in_scope WHERE is_booked AND NOT is_bot AND scheduler_id IS NOT NULL
)
SELECT b.tenant_id, b.scheduler_id, s.name AS scheduler_name, b.week_start,
    count(*) AS bookings,
    median(minutes_to_booking) FILTER (WHERE NOT recovered) AS median_minutes_to_booking,
    quantile_cont(minutes_to_booking, 0.9) FILTER (WHERE NOT recovered) AS p90_minutes_to_booking,
    median(hours_to_arrival_window) AS median_hours_to_arrival_window,
    quantile_cont(hours_to_arrival_window, 0.9) AS p90_hours_to_arrival_window,
    count(*) FILTER (WHERE recovered) AS recoveries,
    median(minutes_to_booking / 60.0) FILTER (WHERE recovered) AS median_hours_to_recovery,
    quantile_cont(minutes_to_booking / 60.0, 0.9) FILTER (WHERE recovered) AS p90_hours_to_recovery
FROM booked AS b
LEFT JOIN raw.schedulers AS s ON s.tenant_id = b.tenant_id AND s.id = b.scheduler_id
GROUP BY ALL
ORDER BY ALL
