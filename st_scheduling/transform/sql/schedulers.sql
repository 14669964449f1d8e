-- Current schedulers: where each is installed from (data API key, quick-launch link) and how it is set up.
SELECT
    tenant_id,
    id AS scheduler_id,
    name AS scheduler_name,
    company_name,
    is_default,
    mode,
    scheduler_status AS status,
    data_api_key,
    quick_launch_link,
    created_on AS created_at,
    modified_on AS updated_at
FROM raw.schedulers
ORDER BY tenant_id, company_name, NOT is_default, scheduler_name
