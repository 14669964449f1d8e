-- The marketing channel of a session, by the rules marketers already read their reports with: Google Analytics 4's
-- default channel group (Analytics Help, "[GA4] Default channel group", answer 9756891: the 18 channels of the
-- 2023 rules), evaluated in its order, first match wins, lower-cased. Google's own source lists are internal; the
-- lists below hold the sources home-service contractors see. `source`, `medium` and `campaign` are the session's,
-- as `sessions.sql` reads them: its UTMs, else what its click ids and ServiceTitan's own fields say.
CREATE OR REPLACE TEMP MACRO shopping_source(source) AS list_contains(
    ['amazon', 'ebay', 'etsy', 'shopify', 'walmart', 'google shopping', 'shopping.google.com'], source);
CREATE OR REPLACE TEMP MACRO search_source(source) AS list_contains(
    ['google', 'bing', 'yahoo', 'duckduckgo', 'ecosia', 'baidu', 'yandex', 'aol', 'ask', 'brave', 'www.google.com',
     'www.bing.com', 'search.yahoo.com'], source);
CREATE OR REPLACE TEMP MACRO social_source(source) AS list_contains(
    ['facebook', 'fb', 'm.facebook.com', 'l.facebook.com', 'instagram', 'ig', 'linkedin', 'twitter', 'x', 't.co',
     'pinterest', 'reddit', 'tiktok', 'nextdoor', 'snapchat', 'threads', 'yelp'], source);
CREATE OR REPLACE TEMP MACRO video_source(source) AS list_contains(
    ['youtube', 'youtube.com', 'm.youtube.com', 'vimeo', 'twitch', 'dailymotion'], source);
CREATE OR REPLACE TEMP MACRO paid_medium(medium) AS regexp_matches(medium, '^(.*cp.*|ppc|retargeting|paid.*)$');
CREATE OR REPLACE TEMP MACRO shopping_campaign(campaign) AS
    regexp_matches(campaign, '^(.*(([^a-df-z]|^)shop|shopping).*)$');

CREATE OR REPLACE TEMP MACRO default_channel(source, medium, campaign) AS CASE
    WHEN source = '(direct)' AND medium IN ('(not set)', '(none)') THEN 'Direct'
    WHEN campaign LIKE '%cross-network%' THEN 'Cross-network'
    WHEN (shopping_source(source) OR shopping_campaign(campaign)) AND paid_medium(medium) THEN 'Paid Shopping'
    WHEN search_source(source) AND paid_medium(medium) THEN 'Paid Search'
    WHEN social_source(source) AND paid_medium(medium) THEN 'Paid Social'
    WHEN video_source(source) AND paid_medium(medium) THEN 'Paid Video'
    WHEN medium IN ('display', 'banner', 'expandable', 'interstitial', 'cpm') THEN 'Display'
    WHEN paid_medium(medium) THEN 'Paid Other'
    WHEN shopping_source(source) OR shopping_campaign(campaign) THEN 'Organic Shopping'
    WHEN social_source(source) OR medium IN ('social', 'social-network', 'social-media', 'sm', 'social network',
                                             'social media') THEN 'Organic Social'
    WHEN video_source(source) OR medium LIKE '%video%' THEN 'Organic Video'
    WHEN search_source(source) OR medium = 'organic' THEN 'Organic Search'
    WHEN source IN ('email', 'e-mail', 'e_mail', 'e mail') OR medium IN ('email', 'e-mail', 'e_mail', 'e mail')
        THEN 'Email'
    WHEN medium = 'affiliate' THEN 'Affiliates'
    WHEN medium IN ('referral', 'app', 'link') THEN 'Referral'
    WHEN medium = 'audio' THEN 'Audio'
    WHEN source = 'sms' OR medium = 'sms' THEN 'SMS'
    WHEN medium LIKE '%push' OR medium LIKE '%mobile%' OR medium LIKE '%notification%' OR source = 'firebase'
        THEN 'Mobile Push Notifications'
    ELSE 'Unassigned'
END;
