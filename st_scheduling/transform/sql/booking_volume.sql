-- Jobs and bookings per tenant and scheduler per day / week / month, by session date and by timeslot date.
-- Abandoned sessions sent to bookings or leads are counted apart (they are not booked). Scheduler names
-- come from the current inventory.
WITH dated AS (
    SELECT tenant_id, scheduler_id, 'session_date' AS date_basis, session_date AS day,
        is_job, is_booking, sent_to_booking, sent_to_lead
    FROM sessions_in_scope WHERE NOT is_bot AND scheduler_id IS NOT NULL
    UNION ALL
    SELECT tenant_id, scheduler_id, 'timeslot_date', timeslot_date, is_job, is_booking, false, false
    FROM sessions_in_scope WHERE NOT is_bot AND scheduler_id IS NOT NULL AND is_booked AND timeslot_date IS NOT NULL
),
grains AS (
    SELECT *, 'day' AS grain, day AS period_start FROM dated
    UNION ALL SELECT *, 'week', CAST(date_trunc('week', day) AS DATE) FROM dated
    UNION ALL SELECT *, 'month', CAST(date_trunc('month', day) AS DATE) FROM dated
),
counted AS (
    SELECT tenant_id, scheduler_id, date_basis, grain, period_start,
        count(*) FILTER (WHERE is_job) AS jobs,
        count(*) FILTER (WHERE is_booking) AS bookings,
        count(*) FILTER (WHERE is_job OR is_booking) AS booked,
        count(*) FILTER (WHERE sent_to_booking) AS abandoned_sent_to_bookings,
        count(*) FILTER (WHERE sent_to_lead) AS abandoned_sent_to_leads
    FROM grains GROUP BY ALL
)
SELECT c.*, s.name AS scheduler_name
FROM counted AS c LEFT JOIN raw.schedulers AS s ON s.tenant_id = c.tenant_id AND s.id = c.scheduler_id
ORDER BY ALL
