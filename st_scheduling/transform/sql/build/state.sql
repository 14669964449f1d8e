-- What each mart's build read and changed, in the meta schema (warehouse/meta.py defines its tables).

-- name: state
SELECT fingerprint, sessions_build, full_build, raw_commit, raw_rows, content FROM meta.mart_builds WHERE mart = ?

-- name: record
INSERT OR REPLACE INTO meta.mart_builds VALUES (?, ?, ?, ?, ?, ?, ?, now())

-- name: next_sessions_build
SELECT nextval('meta.session_build_numbers')

-- name: next_content
SELECT nextval('meta.mart_content_numbers')

-- name: last_commit
-- The last commit to a raw table (a commit may only have removed rows, so meta.raw_replaced counts too).
SELECT max(commit_number) FROM (
    SELECT max(commit_number) AS commit_number FROM {{ table }}
    UNION ALL SELECT max(commit_number) FROM meta.raw_replaced WHERE table_name = ?)

-- name: rows
SELECT count(*) FROM {{ table }}

-- name: rows_committed_since
-- Rows the platform's commits stored less those they removed, in the given raw tables since the last build.
SELECT coalesce(sum(rows_stored - rows_removed), 0) FROM meta.raw_replaced
WHERE list_contains(?, table_name) AND {{ stored_since }}

-- name: exists
SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'marts' AND table_name = ?

-- name: scheduler_names
-- The scheduler names a mart shows: a change rebuilds it in full.
SELECT string_agg(concat_ws('/', tenant_id, id, name), ',' ORDER BY ALL) FROM raw.schedulers

-- name: forget_changes_read
-- The session changes every mart above marts/sessions has read (the bound parameter: their names).
DELETE FROM meta.session_changes WHERE build <= coalesce(
    (SELECT min(sessions_build) FROM meta.mart_builds WHERE list_contains(?, mart)),
    (SELECT max(build) FROM meta.session_changes))

-- name: forget_commits_read
-- The raw commits every mart reading raw tables has read (the bound parameter: their names); none while one of
-- them has never been built.
DELETE FROM meta.raw_replaced WHERE commit_number <= (
    SELECT CASE WHEN bool_and(raw_commit IS NOT NULL) THEN min(raw_commit) END
    FROM meta.mart_builds WHERE list_contains(?, mart))

-- name: forget_session_changes
DELETE FROM meta.session_changes

-- name: catalogue
CREATE OR REPLACE TABLE meta.campaign_catalogue AS {{ catalogue }}

-- name: full
CREATE OR REPLACE TABLE {{ mart }} AS {{ model }}
