-- One clean row per tenant and session, for the sessions being built (all of them, or those that changed), their
-- campaigns named from the catalogue of every session (`campaign_catalogue.sql`).
WITH latest AS NOT MATERIALIZED (SELECT * FROM latest_sessions_in_scope),
routed AS (SELECT DISTINCT tenant_id, id FROM router_sessions_in_scope),
classified AS (
    SELECT
        l.*,
        s.milestone AS step_milestone,
        -- A lead id makes a lead whatever the outcome says, unless the session created a job or booking.
        CASE WHEN l.lead_id IS NOT NULL AND l.job_id IS NULL AND l.booking_id IS NULL THEN 'sent_to_lead'
             ELSE o.outcome_class END AS outcome_class,
        o.outcome_class IS NULL AND l.session_outcome IS NOT NULL AS unknown_outcome,
        coalesce(l.customer_is_bot, false) AS is_bot,
        lower(trim(nullif(l.customer_email, ''))) AS email_norm,
        nullif(regexp_replace(coalesce(l.customer_phone, ''), '[^0-9]', '', 'g'), '') AS phone_digits,
        lower(concat_ws(' ', nullif(trim(l.customer_first_name), ''), nullif(trim(l.customer_last_name), ''))) AS contact_name,
        lower(coalesce(l.source_sourced_from_marketing_pro, 'false')) NOT IN ('', 'false', '0', 'no') AS marketing_pro,
        -- Source and medium as Google Analytics reads them: the UTMs, else what the click ids say (auto-tagged
        -- Google and Microsoft ads are paid search; Meta tags every outbound link, paid or not), else Google's
        -- own surfaces (organic), else direct.
        coalesce(nullif(lower(trim(l.source_utm_source)), ''), CASE
            WHEN coalesce(nullif(l.source_gclid, ''), nullif(l.source_gbraid, ''), nullif(l.source_wbraid, '')) IS NOT NULL
                THEN 'google'
            WHEN nullif(l.source_msclkid, '') IS NOT NULL THEN 'bing'
            WHEN nullif(l.source_fbclid, '') IS NOT NULL THEN 'facebook'
            WHEN l.source_is_rwg_session OR nullif(l.gbp_name, '') IS NOT NULL THEN 'google'
        END, '(direct)') AS traffic_source,
        coalesce(nullif(lower(trim(l.source_utm_medium)), ''), CASE
            WHEN coalesce(nullif(l.source_gclid, ''), nullif(l.source_gbraid, ''), nullif(l.source_wbraid, ''),
                          nullif(l.source_msclkid, '')) IS NOT NULL THEN 'cpc'
            WHEN nullif(l.source_fbclid, '') IS NOT NULL THEN 'referral'
            WHEN l.source_is_rwg_session OR nullif(l.gbp_name, '') IS NOT NULL THEN 'organic'
        END, '(none)') AS traffic_medium
    FROM latest AS l
    LEFT JOIN vocab_outcomes AS o ON o.outcome = l.session_outcome
    LEFT JOIN vocab_steps AS s ON s.last_step = l.last_step
),
booked AS (
    SELECT *,
        coalesce(outcome_class IN ('abandoned', 'sent_to_booking', 'sent_to_lead'), false) AS is_abandoned,
        coalesce(outcome_class NOT IN ('abandoned', 'sent_to_booking', 'sent_to_lead'), true)
            AND (job_id IS NOT NULL OR booking_id IS NOT NULL) AS is_booked
    FROM classified
),
reached AS (
    -- Booked is the last milestone; otherwise the furthest of what lastStep says and what the session's own
    -- fields prove (evidence rules, README), never past details.
    SELECT *,
        CASE WHEN is_booked THEN milestone_position('booked') ELSE least(milestone_position('details'), greatest(
            coalesce(milestone_position(step_milestone), 0),
            CASE WHEN nullif(trim(customer_address_zip), '') IS NOT NULL THEN milestone_position('zipcode') END,
            CASE WHEN nullif(trim(category), '') IS NOT NULL OR job_type_id IS NOT NULL OR business_unit_id IS NOT NULL
                 THEN milestone_position('interacted') END,
            CASE WHEN len(customer_responses) > 0 THEN milestone_position('issue') END,
            CASE WHEN timeslot_start IS NOT NULL THEN milestone_position('schedule') END,
            CASE WHEN contact_name <> '' OR phone_digits IS NOT NULL OR email_norm IS NOT NULL
                 THEN milestone_position('customer') END
        )) END AS milestone_index
    FROM booked
),
named_campaigns AS (
    -- A session with a campaignId belongs to that id's campaign (the id itself when the catalogue has no name for
    -- it); one with only UTMs to the campaign its utm_campaign names, if any.
    SELECT t.*, coalesce(i.campaign_key, t.own_campaign_id, u.campaign_key) AS resolved_campaign_id,
        coalesce(i.name, u.name, t.own_campaign_id, t.name_given, t.utm_given, '(none)') AS campaign_label
    FROM reached AS t
    LEFT JOIN meta.campaign_catalogue AS i ON i.tenant_id = t.tenant_id AND i.campaign_id = t.own_campaign_id
    LEFT JOIN meta.campaign_catalogue AS u
        ON t.own_campaign_id IS NULL AND u.tenant_id = t.tenant_id AND u.utm_campaign = t.utm_given
)
SELECT
    tenant_id,
    id AS session_id,
    CASE WHEN listed_by = 'scheduler' THEN listed_by_id ELSE scheduler_id END AS scheduler_id,
    listed_by = 'router' OR routed.id IS NOT NULL AS via_router,
    created_on AS created_at,
    modified_on AS modified_at,
    CAST(timezone(getvariable('st_timezone'), created_on) AS DATE) AS session_date,
    CAST(date_trunc('week', timezone(getvariable('st_timezone'), created_on)) AS DATE) AS session_week,
    CAST(date_trunc('month', timezone(getvariable('st_timezone'), created_on)) AS DATE) AS session_month,
    -- An unlisted value may be anything the API put in the field, a customer's details included: it stays in
    -- raw (tagged PII), and this mart, published as it is, says only that it was unknown.
    CASE WHEN step_milestone IS NULL AND last_step IS NOT NULL THEN '(unknown)' ELSE last_step END AS last_step,
    c.milestone_index,
    getvariable('st_milestones')[c.milestone_index + 1] AS milestone,
    step_milestone IS NULL AND last_step IS NOT NULL AS unknown_last_step,
    CASE WHEN unknown_outcome THEN '(unknown)' ELSE session_outcome END AS outcome,
    outcome_class,
    unknown_outcome,
    is_booked,
    CASE WHEN is_booked THEN coalesce(last_checkin_date, modified_on) END AS booked_at,
    CASE WHEN is_booked THEN CAST(timezone(getvariable('st_timezone'), coalesce(last_checkin_date, modified_on)) AS DATE)
        END AS booked_date,
    is_abandoned,
    is_booked AND job_id IS NOT NULL AS is_job,
    is_booked AND job_id IS NULL AS is_booking,
    coalesce(outcome_class = 'sent_to_booking', false) AS sent_to_booking,
    coalesce(outcome_class = 'sent_to_lead', false) AS sent_to_lead,
    job_id,
    booking_id,
    lead_id,
    blocker_type,
    category,
    job_type_id,
    business_unit_id,
    timeslot_start,
    CAST(timezone(getvariable('st_timezone'), timeslot_start) AS DATE) AS timeslot_date,
    default_channel(traffic_source, traffic_medium, lower(coalesce(utm_given, name_given, ''))) AS channel,
    traffic_source,
    traffic_medium,
    CASE
        WHEN source_is_rwg_session THEN 'Reserve with Google'
        WHEN nullif(gbp_name, '') IS NOT NULL THEN 'Google Business Profile'
        WHEN marketing_pro THEN 'Marketing Pro'
        ELSE 'Website or link'
    END AS entry_point,
    resolved_campaign_id AS campaign_id,
    campaign_label AS campaign,
    coalesce(nullif(source_utm_source, ''), '(none)') AS utm_source,
    coalesce(nullif(source_utm_medium, ''), '(none)') AS utm_medium,
    source_booked_from AS booked_from,
    CASE
        WHEN email_norm IS NOT NULL THEN sha256(getvariable('st_customer_key_salt') || 'email:' || email_norm)
        WHEN phone_digits IS NOT NULL THEN sha256(getvariable('st_customer_key_salt') || 'phone:' || phone_digits)
    END AS customer_key,
    CASE WHEN contact_name <> '' THEN sha256(getvariable('st_customer_key_salt') || 'name:' || contact_name) END
        AS contact_name_key,
    contact_name <> '' AS contact_captured,
    phone_digits IS NOT NULL AS has_phone,
    email_norm IS NOT NULL AS has_email,
    customer_is_new_customer AS is_new_customer,
    is_bot
FROM named_campaigns AS c
LEFT JOIN routed USING (tenant_id, id)
