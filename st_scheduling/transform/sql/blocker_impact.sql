-- What each blocker costs: per tenant, scheduler, blocker type, week and the furthest milestone the blocked
-- sessions reached, how many were blocked and the bookings they would likely have made. "Likely": the
-- share of this scheduler's unblocked sessions that reached the same milestone and went on to book.
WITH humans AS (SELECT * FROM sessions_in_scope WHERE NOT is_bot AND scheduler_id IS NOT NULL),
reach AS (
    SELECT h.tenant_id, h.scheduler_id, m.milestone_index, count(*) AS reached, count(*) FILTER (WHERE h.is_booked) AS booked
    FROM humans AS h JOIN vocab_milestones AS m ON h.milestone_index >= m.milestone_index
    WHERE h.blocker_type IS NULL
    GROUP BY ALL
),
blocked AS (
    SELECT tenant_id, scheduler_id, blocker_type, session_week AS week_start, milestone_index, milestone,
        count(*) AS sessions_blocked
    FROM humans WHERE nullif(trim(blocker_type), '') IS NOT NULL AND NOT is_booked
    GROUP BY ALL
)
SELECT b.tenant_id, b.scheduler_id, s.name AS scheduler_name, b.blocker_type, b.week_start,
    b.milestone AS furthest_milestone, b.milestone_index, b.sessions_blocked,
    coalesce(r.booked / nullif(r.reached, 0), 0.0) AS comparable_booking_rate,
    b.sessions_blocked * coalesce(r.booked / nullif(r.reached, 0), 0.0) AS estimated_bookings_lost
FROM blocked AS b
LEFT JOIN reach AS r USING (tenant_id, scheduler_id, milestone_index)
LEFT JOIN raw.schedulers AS s ON s.tenant_id = b.tenant_id AND s.id = b.scheduler_id
ORDER BY ALL
