-- The call-back list: identified customers whose latest session stopped short of booked, with contact
-- details, where and why they stopped, whether they booked since, and whether the office already has that
-- session as a job, booking request or lead (a call then would be a second call). Contains customer PII.
WITH contacts AS (
    SELECT tenant_id, id AS session_id, customer_first_name, customer_last_name, customer_phone, customer_email
    FROM raw.scheduler_sessions
    UNION ALL BY NAME
    SELECT tenant_id, id, customer_first_name, customer_last_name, customer_phone, customer_email
    FROM raw.router_sessions
),
stopped AS (
    SELECT s.*,
        -- An id the session created is proof enough even when its outcome says abandoned; the sent-to flags
        -- cover the office's copy when the API sends the outcome without the id. A job outranks the rest.
        CASE WHEN s.job_id IS NOT NULL THEN 'job'
             WHEN s.booking_id IS NOT NULL OR s.sent_to_booking THEN 'booking request'
             WHEN s.lead_id IS NOT NULL OR s.sent_to_lead THEN 'lead'
        END AS office_has
    FROM sessions_in_scope AS s
    WHERE NOT s.is_bot AND NOT s.is_booked AND s.customer_key IS NOT NULL
    QUALIFY row_number() OVER (PARTITION BY s.tenant_id, s.customer_key ORDER BY s.created_at DESC, s.session_id DESC) = 1
),
booked_since AS (
    SELECT st.tenant_id, st.session_id, max(b.created_at) AS booked_at
    FROM stopped AS st
    JOIN sessions_in_scope AS b
      ON b.tenant_id = st.tenant_id AND b.customer_key = st.customer_key AND b.is_booked AND b.created_at > st.created_at
    GROUP BY ALL
)
SELECT
    st.tenant_id,
    st.customer_key,
    any_value(c.customer_first_name) AS first_name,
    any_value(c.customer_last_name) AS last_name,
    any_value(c.customer_phone) AS phone,
    any_value(c.customer_email) AS email,
    st.milestone AS last_milestone,
    st.blocker_type,
    st.outcome,
    st.scheduler_id,
    any_value(sch.name) AS scheduler_name,
    st.channel,
    st.campaign,
    st.category,
    st.created_at AS last_seen_at,
    st.session_id AS last_session_id,
    bs.booked_at IS NOT NULL AS booked_since,
    bs.booked_at AS booked_since_at,
    st.office_has,
    bs.booked_at IS NULL AND st.office_has IS NULL AS needs_follow_up,
    -- A booking since is named first: it settles the call whatever the office holds.
    CASE WHEN bs.booked_at IS NOT NULL THEN 'booked since'
         WHEN st.office_has IS NOT NULL THEN 'office has a ' || st.office_has
         ELSE 'stopped short, not booked since'
    END AS follow_up_reason
FROM stopped AS st
JOIN contacts AS c USING (tenant_id, session_id)
LEFT JOIN booked_since AS bs USING (tenant_id, session_id)
LEFT JOIN raw.schedulers AS sch ON sch.tenant_id = st.tenant_id AND sch.id = st.scheduler_id
GROUP BY ALL
ORDER BY needs_follow_up DESC, last_seen_at DESC
