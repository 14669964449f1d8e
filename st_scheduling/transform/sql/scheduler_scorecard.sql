-- Per scheduler and day: each metric reproduced from sessions beside ServiceTitan's own /performance number
-- and their difference. API-only metrics (recoveries, SMS, membership interest) have no computed value.
-- Every metric counts what the vocabulary file says ServiceTitan counts (bots in milestones or not, zipcode/
-- interacted order, each rate's denominator, leads in abandoned or not, bots in jobs, bookings, sent-to counts
-- and contacts or not, contacts as distinct names or as sessions reaching the customer step): the switches are
-- read by name, so the check can try the other definitions.
WITH per_session AS (
    SELECT *, session_date AS day, milestone_position(milestone) AS position,
        NOT is_bot OR getvariable('st_bots_in_milestones') AS in_milestones,
        NOT is_bot OR getvariable('st_bots_in_totals') AS in_totals
    FROM sessions_in_scope
    WHERE scheduler_id IS NOT NULL
),
counted AS (
    SELECT tenant_id, scheduler_id, day,
        count(*) AS total_sessions,
        count(*) FILTER (WHERE in_milestones) AS opened,
        count(*) FILTER (WHERE in_milestones AND position >= milestone_position('zipcode')) AS zipcode,
        count(*) FILTER (WHERE in_milestones AND position >= milestone_position('interacted')) AS interacted,
        count(*) FILTER (WHERE in_milestones AND position >= milestone_position('issue')) AS issue,
        count(*) FILTER (WHERE in_milestones AND position >= milestone_position('schedule')) AS schedule,
        count(*) FILTER (WHERE in_milestones AND position >= milestone_position('customer')) AS customer,
        count(*) FILTER (WHERE in_milestones AND position >= milestone_position('details')) AS details,
        count(*) FILTER (WHERE in_milestones AND position >= milestone_position('booked')) AS booked,
        count(*) FILTER (WHERE in_milestones AND is_abandoned
                         AND (getvariable('st_leads_in_abandoned') OR NOT sent_to_lead)) AS abandoned,
        count(*) FILTER (WHERE in_totals AND is_job) AS jobs,
        count(*) FILTER (WHERE in_totals AND is_booking) AS bookings,
        count(*) FILTER (WHERE in_totals AND sent_to_booking) AS sent_to_bookings,
        count(*) FILTER (WHERE in_totals AND sent_to_lead) AS sent_to_leads,
        CASE getvariable('st_contacts_captured')
            WHEN 'customer_step' THEN count(*) FILTER (WHERE in_totals AND position >= milestone_position('customer'))
            ELSE count(DISTINCT contact_name_key) FILTER (WHERE in_totals)
        END AS contacts
    FROM per_session
    GROUP BY ALL
),
computed AS (
    SELECT *,
        map(['opened', 'zipcode', 'interacted', 'issue', 'schedule', 'customer', 'details'],
            [opened, zipcode, interacted, issue, schedule, customer, details]) AS reached
    FROM counted
),
api AS (
    SELECT *, id AS scheduler_id, CAST(timezone(getvariable('st_timezone'), window_start) AS DATE) AS day
    FROM raw.scheduler_performance
),
paired AS (
    SELECT a.tenant_id, a.scheduler_id, a.day, a.scheduler_name, a.brand_name,
        [
            {'metric': 'total_sessions', 'api_metric': 'totalSessions', 'computed': coalesce(c.total_sessions, 0)::DOUBLE, 'api': a.total_sessions::DOUBLE},
            {'metric': 'opened', 'api_metric': 'milestoneFrequencyCount.opened', 'computed': coalesce(c.opened, 0)::DOUBLE, 'api': a.milestone_opened::DOUBLE},
            {'metric': 'zipcode', 'api_metric': 'milestoneFrequencyCount.zipcode', 'computed': coalesce(c.zipcode, 0)::DOUBLE, 'api': a.milestone_zipcode::DOUBLE},
            {'metric': 'interacted', 'api_metric': 'milestoneFrequencyCount.interacted', 'computed': coalesce(c.interacted, 0)::DOUBLE, 'api': a.milestone_interacted::DOUBLE},
            {'metric': 'issue', 'api_metric': 'milestoneFrequencyCount.issue', 'computed': coalesce(c.issue, 0)::DOUBLE, 'api': a.milestone_issue::DOUBLE},
            {'metric': 'schedule', 'api_metric': 'milestoneFrequencyCount.schedule', 'computed': coalesce(c.schedule, 0)::DOUBLE, 'api': a.milestone_schedule::DOUBLE},
            {'metric': 'customer', 'api_metric': 'milestoneFrequencyCount.customer', 'computed': coalesce(c.customer, 0)::DOUBLE, 'api': a.milestone_customer::DOUBLE},
            {'metric': 'details', 'api_metric': 'milestoneFrequencyCount.details', 'computed': coalesce(c.details, 0)::DOUBLE, 'api': a.milestone_details::DOUBLE},
            {'metric': 'booked', 'api_metric': 'milestoneFrequencyCount.booked', 'computed': coalesce(c.booked, 0)::DOUBLE, 'api': a.milestone_booked::DOUBLE},
            {'metric': 'abandoned', 'api_metric': 'milestoneFrequencyCount.abandoned', 'computed': coalesce(c.abandoned, 0)::DOUBLE, 'api': a.milestone_abandoned::DOUBLE},
            {'metric': 'jobs_created', 'api_metric': 'totalJobsCreated', 'computed': coalesce(c.jobs, 0)::DOUBLE, 'api': a.total_jobs_created::DOUBLE},
            {'metric': 'bookings_created', 'api_metric': 'totalBookingsCreated', 'computed': coalesce(c.bookings, 0)::DOUBLE, 'api': a.total_bookings_created::DOUBLE},
            {'metric': 'customer_contacts_captured', 'api_metric': 'totalCustomerContactsCaptured', 'computed': coalesce(c.contacts, 0)::DOUBLE, 'api': a.total_customer_contacts_captured::DOUBLE},
            {'metric': 'abandoned_sent_to_bookings', 'api_metric': 'totalAbandonedSessionsSentToBookings', 'computed': coalesce(c.sent_to_bookings, 0)::DOUBLE, 'api': a.total_abandoned_sessions_sent_to_bookings::DOUBLE},
            {'metric': 'abandoned_sent_to_leads', 'api_metric': 'totalAbandonedSessionsSentToLeads', 'computed': coalesce(c.sent_to_leads, 0)::DOUBLE, 'api': a.total_abandoned_sessions_sent_to_leads::DOUBLE},
            {'metric': rate_name(getvariable('st_opened_rate_of')), 'api_metric': 'openedCompletionRate', 'computed': coalesce(c.booked / nullif(c.reached[getvariable('st_opened_rate_of')], 0), 0.0)::DOUBLE, 'api': a.opened_completion_rate::DOUBLE},
            {'metric': rate_name(getvariable('st_scheduler_rate_of')), 'api_metric': 'schedulerCompletionRate', 'computed': coalesce(c.booked / nullif(c.reached[getvariable('st_scheduler_rate_of')], 0), 0.0)::DOUBLE, 'api': a.scheduler_completion_rate::DOUBLE}
        ] AS reproduced,
        [
            {'metric': 'bookings_recovered_recovery_link', 'api_metric': 'totalBookingsRecoveredFromAbandonedSessionsRecoveryLink', 'api': a.total_bookings_recovered_from_abandoned_sessions_recovery_link::DOUBLE},
            {'metric': 'jobs_recovered_recovery_link', 'api_metric': 'totalJobsRecoveredFromAbandonedSessionsRecoveryLink', 'api': a.total_jobs_recovered_from_abandoned_sessions_recovery_link::DOUBLE},
            {'metric': 'bookings_recovered_ai_agent', 'api_metric': 'totalBookingsRecoveredFromAbandonedSessionsAiAgent', 'api': a.total_bookings_recovered_from_abandoned_sessions_ai_agent::DOUBLE},
            {'metric': 'jobs_recovered_ai_agent', 'api_metric': 'totalJobsRecoveredFromAbandonedSessionsAiAgent', 'api': a.total_jobs_recovered_from_abandoned_sessions_ai_agent::DOUBLE},
            {'metric': 'bookings_recovered', 'api_metric': 'totalBookingsRecoveredFromAbandonedSessions', 'api': a.total_bookings_recovered_from_abandoned_sessions::DOUBLE},
            {'metric': 'jobs_recovered', 'api_metric': 'totalJobsRecoveredFromAbandonedSessions', 'api': a.total_jobs_recovered_from_abandoned_sessions::DOUBLE},
            {'metric': 'sms_sent_recovery_link', 'api_metric': 'totalSmsSentToRecoverAbandonedSessionRecoveryLink', 'api': a.total_sms_sent_to_recover_abandoned_session_recovery_link::DOUBLE},
            {'metric': 'sms_sent_ai_agent', 'api_metric': 'totalSmsSentToRecoverAbandonedSessionAiAgent', 'api': a.total_sms_sent_to_recover_abandoned_session_ai_agent::DOUBLE},
            {'metric': 'membership_interest', 'api_metric': 'totalMembershipInterest', 'api': a.total_membership_interest::DOUBLE}
        ] AS api_only
    FROM api AS a
    LEFT JOIN computed AS c USING (tenant_id, scheduler_id, day)
)
SELECT tenant_id, scheduler_id, scheduler_name, brand_name, day, r.metric, r.api_metric, r.computed AS computed_value,
    r.api AS api_value, r.computed - r.api AS difference, false AS api_only
FROM paired, unnest(reproduced) AS u(r)
UNION ALL
SELECT tenant_id, scheduler_id, scheduler_name, brand_name, day, r.metric, r.api_metric, NULL, r.api, NULL, true
FROM paired, unnest(api_only) AS u(r)
ORDER BY ALL
