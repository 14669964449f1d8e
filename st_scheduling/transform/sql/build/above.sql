-- A mart above marts/sessions, built incrementally: the rows the session changes since its last build can alter
-- are deleted and recomputed from the sessions that compute them (transform/build.py, transform/scopes.py).

-- name: changes
CREATE OR REPLACE TEMP TABLE changes AS SELECT * FROM meta.session_changes WHERE build > ?

-- name: changed_keys
-- The customers or schedulers of the changed sessions.
CREATE OR REPLACE TEMP TABLE {{ table }} AS SELECT DISTINCT tenant_id, {{ column }} FROM changes
WHERE {{ column }} IS NOT NULL

-- name: changed_days
SELECT tenant_id, unnest([session_date, timeslot_date, booked_date]) AS day FROM changes

-- name: touched_booking_days
-- Bookings whose look-back window (the bound parameter, in days) holds a changed session.
SELECT b.tenant_id, b.booked_date FROM changes AS c JOIN marts.sessions AS b
    ON b.tenant_id = c.tenant_id AND b.customer_key = c.customer_key AND b.is_booked
    AND b.created_at >= c.created_at AND b.created_at <= c.created_at + to_days(?)

-- name: no_days
SELECT NULL::BIGINT AS tenant_id, NULL::DATE AS day WHERE false

-- name: spans
-- Per tenant, from the first week or month holding a changed day to the end of the last.
CREATE OR REPLACE TEMP TABLE scope_spans AS
WITH days AS (SELECT tenant_id, day, CAST(date_trunc('week', day) AS DATE) AS week,
                  CAST(date_trunc('month', day) AS DATE) AS month
              FROM ({{ changed }} UNION {{ touched }} UNION {{ raw }}) WHERE day IS NOT NULL)
SELECT tenant_id, min(least(week, month)) AS span_start,
    max(greatest(period_end(week, 'week'), period_end(month, 'month'))) AS span_end
FROM days GROUP BY tenant_id

-- name: converters
-- Customers with a booking whose day falls in their tenant's span.
CREATE OR REPLACE TEMP TABLE scope_converters AS
SELECT DISTINCT x.tenant_id, x.customer_key FROM marts.sessions AS x JOIN scope_spans AS s USING (tenant_id)
WHERE x.is_booked AND x.customer_key IS NOT NULL AND x.booked_date >= s.span_start AND x.booked_date < s.span_end

-- name: no_converters
CREATE OR REPLACE TEMP TABLE scope_converters (tenant_id BIGINT, customer_key VARCHAR)

-- name: sessions_in_scope
CREATE OR REPLACE TEMP VIEW sessions_in_scope AS SELECT * FROM marts.sessions AS x WHERE {{ sessions }}

-- name: delete_scope
DELETE FROM {{ mart }} AS t WHERE {{ rows }}

-- name: insert_scope
INSERT INTO {{ mart }} SELECT * FROM ({{ model }}) AS m WHERE {{ rows }}
