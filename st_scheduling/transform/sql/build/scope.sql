-- The rows of a mart, and the sessions of marts/sessions, that an incremental build recomputes (transform/scopes.py).

-- name: period_rows
-- A row counting one period whose length is in a column (grain: day, week or month).
EXISTS (SELECT 1 FROM scope_spans AS s WHERE s.tenant_id = {{ alias }}.tenant_id
    AND {{ alias }}.{{ column }} >= s.span_start
    AND period_end({{ alias }}.{{ column }}, {{ alias }}.{{ grain_column }}) <= s.span_end)

-- name: fixed_period_rows
-- A row counting one period of the mart's one length (the variable st_scope_grain, set by the build).
EXISTS (SELECT 1 FROM scope_spans AS s WHERE s.tenant_id = {{ alias }}.tenant_id
    AND {{ alias }}.{{ column }} >= s.span_start
    AND period_end({{ alias }}.{{ column }}, getvariable('st_scope_grain')) <= s.span_end)

-- name: dated_sessions
-- Sessions created, due or booked within their tenant's span.
EXISTS (SELECT 1 FROM scope_spans AS s WHERE s.tenant_id = {{ alias }}.tenant_id
    AND (({{ alias }}.session_date >= s.span_start AND {{ alias }}.session_date < s.span_end)
         OR ({{ alias }}.timeslot_date >= s.span_start AND {{ alias }}.timeslot_date < s.span_end)
         OR ({{ alias }}.booked_date >= s.span_start AND {{ alias }}.booked_date < s.span_end)))

-- name: dated_or_converting_sessions
-- Those, and every session of a customer who booked within the span.
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
