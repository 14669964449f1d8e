-- marts/sessions, built incrementally: the sessions whose raw rows changed since its last build are rebuilt, and
-- those that came out different replaced and logged in meta.session_changes (transform/build.py).

-- name: stored_since
-- Rows stored by a commit after the one the build last read (the variable st_since), or by hand.
({{ commit_number }} > getvariable('st_since') OR {{ commit_number }} IS NULL OR getvariable('st_since') IS NULL)

-- name: in_build
-- The session of this row is one being rebuilt.
EXISTS (SELECT 1 FROM sessions_to_build AS b WHERE b.tenant_id = {{ alias }}.tenant_id AND b.session_id = {{ alias }}.{{ id }})

-- name: sessions_to_build
-- The sessions stored since, and those in the windows a commit replaced since (where a session may have gone for
-- good). The bound parameter: the raw session tables' names.
CREATE OR REPLACE TEMP TABLE sessions_to_build AS
SELECT tenant_id, id AS session_id FROM raw.scheduler_sessions AS r WHERE {{ scheduler_stored }}
UNION
SELECT tenant_id, id AS session_id FROM raw.router_sessions AS r WHERE {{ router_stored }}
UNION
SELECT s.tenant_id, s.session_id FROM marts.sessions AS s JOIN meta.raw_replaced AS w
    ON w.tenant_id = s.tenant_id AND (w.window_start IS NULL OR s.created_at >= w.window_start
                                      AND s.created_at < w.window_end)
WHERE list_contains(?, w.table_name) AND {{ window_stored }}

-- name: catalogue_now
CREATE OR REPLACE TEMP TABLE catalogue_now AS {{ catalogue }}

-- name: catalogue_changes
CREATE OR REPLACE TEMP TABLE catalogue_changes AS
(SELECT * FROM catalogue_now EXCEPT SELECT * FROM meta.campaign_catalogue)
UNION (SELECT * FROM meta.campaign_catalogue EXCEPT SELECT * FROM catalogue_now)

-- name: sessions_of_changed_campaigns
-- A session's campaign is read from the one catalogue row it joins: its campaignId's, or (without one) its
-- utm_campaign's. Sessions whose row was added, removed or changed are rebuilt.
INSERT INTO sessions_to_build
SELECT tenant_id, id FROM latest_sessions AS l WHERE EXISTS (SELECT 1 FROM catalogue_changes AS c
    WHERE c.tenant_id = l.tenant_id AND c.campaign_id = l.own_campaign_id)
UNION
SELECT tenant_id, id FROM latest_sessions AS l WHERE l.own_campaign_id IS NULL AND EXISTS (
    SELECT 1 FROM catalogue_changes AS c WHERE c.tenant_id = l.tenant_id AND c.utm_campaign = l.utm_given)

-- name: distinct_sessions_to_build
CREATE OR REPLACE TEMP TABLE sessions_to_build AS SELECT DISTINCT * FROM sessions_to_build

-- name: store_catalogue
DELETE FROM meta.campaign_catalogue;
INSERT INTO meta.campaign_catalogue SELECT * FROM catalogue_now;

-- name: raw_rows_in_build
CREATE OR REPLACE TEMP VIEW {{ view }} AS SELECT * FROM {{ table }} AS r WHERE {{ in_build }}

-- name: sessions_rebuilt
CREATE OR REPLACE TEMP TABLE sessions_rebuilt AS {{ model }}

-- name: sessions_before
CREATE OR REPLACE TEMP TABLE sessions_before AS SELECT * FROM marts.sessions AS s WHERE {{ in_build }}

-- name: changed_sessions
-- Most re-read sessions come out as they were: only those that differ are replaced and logged, so the marts
-- above recompute what really changed.
CREATE OR REPLACE TEMP TABLE sessions_to_build AS
SELECT DISTINCT tenant_id, session_id FROM (
    (SELECT * FROM sessions_rebuilt EXCEPT SELECT * FROM sessions_before)
    UNION ALL (SELECT * FROM sessions_before EXCEPT SELECT * FROM sessions_rebuilt))

-- name: log_changes
-- A changed session's old or new row as build ?'s change.
INSERT INTO meta.session_changes
SELECT ?, tenant_id, session_id, scheduler_id, customer_key, created_at, session_date, timeslot_date, booked_date
FROM {{ rows }} AS s WHERE {{ in_build }}

-- name: delete_changed
DELETE FROM marts.sessions AS s WHERE {{ in_build }}

-- name: insert_changed
INSERT INTO marts.sessions SELECT * FROM sessions_rebuilt AS s WHERE {{ in_build }}
