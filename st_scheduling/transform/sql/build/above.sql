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

-- name: periods
-- Per tenant, every period (of the mart's lengths, the variable st_scope_grains) holding a changed day.
CREATE OR REPLACE TEMP TABLE scope_periods AS
SELECT DISTINCT tenant_id, grain, CAST(date_trunc(grain, day) AS DATE) AS period_start
FROM ({{ changed }} UNION {{ touched }} UNION {{ raw }})
    CROSS JOIN unnest(getvariable('st_scope_grains')) AS g(grain)
WHERE day IS NOT NULL

-- name: days
-- Every day of those periods: the sessions dated on one of them compute the periods' rows.
CREATE OR REPLACE TEMP TABLE scope_days AS
SELECT DISTINCT tenant_id, CAST(unnest(generate_series(period_start, period_end(period_start, grain) - 1,
    INTERVAL 1 DAY)) AS DATE) AS day
FROM scope_periods

-- name: converters
-- Customers with a booking on one of those days.
CREATE OR REPLACE TEMP TABLE scope_converters AS
SELECT DISTINCT x.tenant_id, x.customer_key FROM marts.sessions AS x
WHERE x.is_booked AND x.customer_key IS NOT NULL
    AND EXISTS (SELECT 1 FROM scope_days AS d WHERE d.tenant_id = x.tenant_id AND d.day = x.booked_date)

-- name: no_converters
CREATE OR REPLACE TEMP TABLE scope_converters (tenant_id BIGINT, customer_key VARCHAR)

-- name: sessions_in_scope
CREATE OR REPLACE TEMP VIEW sessions_in_scope AS SELECT * FROM marts.sessions AS x WHERE {{ sessions }}

-- name: delete_scope
DELETE FROM {{ mart }} AS t WHERE {{ rows }}

-- name: insert_scope
INSERT INTO {{ mart }} SELECT * FROM ({{ model }}) AS m WHERE {{ rows }}
