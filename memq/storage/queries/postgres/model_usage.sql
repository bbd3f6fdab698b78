-- PostgreSQL forms of model_usage.sql's statements that differ (memq.storage.sqlfile
-- overlays them by name). Sums of BIGINT columns are numeric on PostgreSQL (a Decimal in
-- Python): cast back to bigint, the int SQLite gives.

-- name: tokens_since
-- count(fallback) for SQLite's sum of a 0/1 comparison; the sum cast to bigint.
SELECT coalesce(sum(input_tokens + output_tokens + cache_read_tokens + cache_write_tokens),
                0)::bigint AS tokens,
       count(fallback) AS fallbacks
FROM model_usage
WHERE at >= :since

-- name: model_usage_groups
-- to_char of the UTC time for SQLite's date(..., 'unixepoch') (at / 1000 divides integers
-- on both); count(fallback) for a sum of 0/1; sums cast to bigint; IS NOT DISTINCT FROM for
-- IS, and :project cast where it is first tested.
SELECT to_char(to_timestamp(at / 1000) AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day,
       project, processor, model,
       count(*) AS messages,
       sum(calls)::bigint AS calls,
       sum(input_tokens)::bigint AS input_tokens,
       sum(output_tokens)::bigint AS output_tokens,
       sum(cache_read_tokens)::bigint AS cache_read_tokens,
       sum(cache_write_tokens)::bigint AS cache_write_tokens,
       count(fallback) AS fallbacks
FROM model_usage
WHERE at >= :since AND (:project::text IS NULL OR project IS NOT DISTINCT FROM :project)
GROUP BY day, project, processor, model
ORDER BY day DESC
