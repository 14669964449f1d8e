-- Sessions reaching each milestone per tenant, scheduler and day / week / month (bots only when the
-- vocabulary file says ServiceTitan counts them, so the funnel matches its reports).
WITH periods AS (
    SELECT tenant_id, scheduler_id, 'day' AS grain, session_date AS period_start, milestone_index, is_abandoned, is_bot
    FROM sessions_in_scope WHERE scheduler_id IS NOT NULL
    UNION ALL
    SELECT tenant_id, scheduler_id, 'week', session_week, milestone_index, is_abandoned, is_bot
    FROM sessions_in_scope WHERE scheduler_id IS NOT NULL
    UNION ALL
    SELECT tenant_id, scheduler_id, 'month', session_month, milestone_index, is_abandoned, is_bot
    FROM sessions_in_scope WHERE scheduler_id IS NOT NULL
),
totals AS (
    SELECT tenant_id, scheduler_id, grain, period_start,
        count(*) FILTER (WHERE NOT is_bot) AS sessions,
        count(*) FILTER (WHERE is_bot) AS bot_sessions,
        count(*) FILTER (WHERE NOT is_bot AND is_abandoned) AS abandoned_sessions
    FROM periods GROUP BY ALL
),
-- How many sessions stopped at each milestone, then, per milestone, how many got at least that far: a small
-- table, so every session is counted once and not once per milestone.
stopped AS (
    SELECT tenant_id, scheduler_id, grain, period_start, milestone_index,
        count(*) FILTER (WHERE NOT is_bot OR getvariable('st_bots_in_milestones')) AS sessions
    FROM periods GROUP BY ALL
),
reached AS (
    SELECT p.tenant_id, p.scheduler_id, p.grain, p.period_start, m.milestone_index, m.milestone,
        CAST(coalesce(sum(p.sessions) FILTER (WHERE p.milestone_index >= m.milestone_index), 0) AS BIGINT)
            AS sessions_reached
    FROM stopped AS p CROSS JOIN vocab_milestones AS m
    GROUP BY ALL
)
SELECT
    r.tenant_id, r.scheduler_id, r.grain, r.period_start, r.milestone_index, r.milestone,
    r.sessions_reached,
    coalesce(r.sessions_reached / nullif(lag(r.sessions_reached) OVER w, 0), CASE WHEN r.milestone_index = 0 THEN 1.0 ELSE 0.0 END)
        AS step_conversion_rate,
    r.sessions_reached - coalesce(lead(r.sessions_reached) OVER w, r.sessions_reached) AS dropped_after,
    coalesce((r.sessions_reached - coalesce(lead(r.sessions_reached) OVER w, r.sessions_reached))
        / nullif(first_value(r.sessions_reached) OVER w, 0), 0.0)
        AS drop_off_share,
    t.sessions, t.bot_sessions, t.abandoned_sessions,
    s.name AS scheduler_name
FROM reached AS r JOIN totals AS t USING (tenant_id, scheduler_id, grain, period_start)
LEFT JOIN raw.schedulers AS s ON s.tenant_id = r.tenant_id AND s.id = r.scheduler_id
WINDOW w AS (PARTITION BY r.tenant_id, r.scheduler_id, r.grain, r.period_start ORDER BY r.milestone_index)
ORDER BY ALL
