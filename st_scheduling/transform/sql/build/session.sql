-- The views of what is being built and the variables the models read (transform/session.py).

-- name: view
CREATE OR REPLACE TEMP VIEW {{ view }} AS {{ query }}

-- name: all_rows
SELECT * FROM {{ table }}

-- name: all_sessions
SELECT * FROM marts.sessions

-- name: campaign_rule
SET VARIABLE {{ variable }} = ?

-- name: vocab_steps
CREATE OR REPLACE TEMP TABLE vocab_steps AS
SELECT unnest(CAST(? AS VARCHAR[])) AS last_step, unnest(CAST(? AS VARCHAR[])) AS milestone

-- name: vocab_outcomes
CREATE OR REPLACE TEMP TABLE vocab_outcomes AS
SELECT unnest(CAST(? AS VARCHAR[])) AS outcome, unnest(CAST(? AS VARCHAR[])) AS outcome_class

-- name: vocab_milestones
-- The milestones in their order, from 0.
CREATE OR REPLACE TEMP TABLE vocab_milestones AS
SELECT CAST(generate_subscripts(m, 1) - 1 AS INTEGER) AS milestone_index, unnest(m) AS milestone
FROM (SELECT CAST(? AS VARCHAR[]) AS m)
