-- The rows of a mart, and the sessions of marts/sessions, that an incremental build recomputes (transform/scopes.py).

-- name: period_rows
-- A row counting one period whose length is in a column (grain: day, week or month).
EXISTS (SELECT 1 FROM scope_periods AS s WHERE s.tenant_id = {{ alias }}.tenant_id
    AND s.grain = {{ alias }}.{{ grain_column }} AND s.period_start = {{ alias }}.{{ column }})

-- name: fixed_period_rows
-- A row counting one period of the mart's one length.
EXISTS (SELECT 1 FROM scope_periods AS s WHERE s.tenant_id = {{ alias }}.tenant_id
    AND s.period_start = {{ alias }}.{{ column }})

-- name: dated_sessions
-- Sessions created, due or booked on a day of a period in scope.
(EXISTS (SELECT 1 FROM scope_days AS d WHERE d.tenant_id = {{ alias }}.tenant_id AND d.day = {{ alias }}.session_date)
    OR EXISTS (SELECT 1 FROM scope_days AS d WHERE d.tenant_id = {{ alias }}.tenant_id
        AND d.day = {{ alias }}.timeslot_date)
    OR EXISTS (SELECT 1 FROM scope_days AS d WHERE d.tenant_id = {{ alias }}.tenant_id
        AND d.day = {{ alias }}.booked_date))

-- name: dated_or_converting_sessions
-- Those, and every session of a customer who booked on one of those days.
({{ dated }} OR EXISTS (SELECT 1 FROM scope_converters AS c WHERE c.tenant_id = {{ alias }}.tenant_id
    AND c.customer_key = {{ alias }}.customer_key))

-- name: keyed_rows
-- Rows (and sessions) of one customer or one scheduler of a changed session.
EXISTS (SELECT 1 FROM {{ table }} AS k WHERE k.tenant_id = {{ alias }}.tenant_id
    AND k.{{ column }} = {{ alias }}.{{ column }})

-- name: scheduler_performance_days
-- The /performance days stored since the scorecard's last build: its rows of those days are recomputed too.
SELECT tenant_id, CAST(timezone(getvariable('st_timezone'), window_start) AS DATE)
FROM raw.scheduler_performance WHERE {{ stored_since }}
