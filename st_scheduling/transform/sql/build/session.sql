-- The views of what is being built and the variables the models read (transform/session.py).

-- name: view
CREATE OR REPLACE TEMP VIEW {{ view }} AS {{ query }}

-- name: all_rows
SELECT * FROM {{ table }}

-- name: all_sessions
SELECT * FROM marts.sessions

-- name: campaign_rule
SET VARIABLE {{ variable }} = ?
