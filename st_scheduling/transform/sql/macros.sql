-- Small macros the models share (transform/session.py creates them on the build's connection).

-- A milestone's place in the vocabulary's order (0: opened).
CREATE OR REPLACE TEMP MACRO milestone_position(name) AS list_position(getvariable('st_milestones'), name) - 1;

CREATE OR REPLACE TEMP MACRO slug(x) AS trim(regexp_replace(lower(x), '[^a-z0-9]+', '_', 'g'), '_');

-- A rate's name says what it divides: booked ÷ the first information milestone is "engaged", wherever the flow asks
-- for it.
CREATE OR REPLACE TEMP MACRO rate_name(denominator) AS 'booked_per_' || CASE WHEN denominator =
    getvariable('st_milestones')[2] THEN 'engaged' ELSE denominator END;

-- The first day after a period of the given length.
CREATE OR REPLACE TEMP MACRO period_end(start, grain) AS CASE grain WHEN 'week' THEN start + 7
    WHEN 'month' THEN CAST(start + INTERVAL 1 MONTH AS DATE) ELSE start + 1 END;
