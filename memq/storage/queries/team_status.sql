-- The team server's part of memq status (memq.team.team_status): its keys, and the
-- requests and refusals of the last hours. Times are epoch milliseconds.

-- name: key_counts
SELECT CAST(coalesce(sum(CASE WHEN revoked_at IS NULL THEN 1 ELSE 0 END), 0) AS BIGINT)
           AS active,
       CAST(coalesce(sum(CASE WHEN revoked_at IS NULL THEN 0 ELSE 1 END), 0) AS BIGINT)
           AS revoked
FROM api_keys;

-- name: requests_since
-- Every key's requests in the hours from :since on (key_use: one row per key and hour).
SELECT CAST(coalesce(sum(requests), 0) AS BIGINT) AS requests
FROM key_use
WHERE hour >= :since;

-- name: refused_since
-- Requests refused from :since on: a wrong or revoked key, a project out of scope (an
-- audit row counts its repeats in `times`).
SELECT CAST(coalesce(sum(times), 0) AS BIGINT) AS refused
FROM audit_log
WHERE action = 'refused' AND at >= :since;
