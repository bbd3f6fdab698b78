-- PostgreSQL forms of usage.sql's statements that differ (memq.storage.sqlfile overlays
-- them by name). A parameter tested with IS NULL before any other use is cast there: the
-- server types it from its first use, and psycopg sends text and None untyped. Sums of
-- BIGINT are numeric on PostgreSQL: cast back to bigint, the int SQLite gives.

-- name: insert_fetch
-- IS NOT DISTINCT FROM for SQLite's IS.
INSERT INTO usage_fetches (at, session_key, project, tool, refs, results, query)
VALUES (
    :at,
    coalesce(
        :session_key,
        (SELECT session_key FROM usage_injections
         WHERE project IS NOT DISTINCT FROM :project AND at <= :at AND at >= :at - :window
         ORDER BY at DESC, id DESC
         LIMIT 1)
    ),
    :project, :tool, :refs, :results, :query
)

-- name: injection_figures
-- IS NOT DISTINCT FROM for IS; a negative :limit (SQLite's "no limit") as LIMIT NULL;
-- jsonb_array_elements_text for json_each, strpos for instr, json_array_length of the
-- text cast to json; hit and ref_hit are booleans, summed as 0/1; sum(tokens) cast to
-- bigint.
WITH newest AS (
    SELECT session_key FROM usage_injections
    WHERE :project::text IS NULL OR project IS NOT DISTINCT FROM :project
    GROUP BY session_key
    ORDER BY max(at) DESC
    LIMIT CASE WHEN :limit >= 0 THEN :limit END
),
shown AS (
    SELECT id, at, session_key, project, source, refs, tokens,
           lead(at) OVER (PARTITION BY session_key ORDER BY at, id) AS next_at
    FROM usage_injections
    WHERE (:project::text IS NULL OR project IS NOT DISTINCT FROM :project)
      AND (:group::text <> 'session' OR session_key IN (SELECT session_key FROM newest))
),
hits AS (
    SELECT shown.*,
        EXISTS (
            SELECT 1 FROM usage_fetches AS f
            WHERE f.session_key = shown.session_key
              AND f.at >= shown.at AND (shown.next_at IS NULL OR f.at < shown.next_at)
              AND f.tool <> 'recent_context'
        ) AS hit
    FROM shown
),
judged AS (
    SELECT hits.*,
        hit AND EXISTS (
            SELECT 1
            FROM usage_fetches AS f, jsonb_array_elements_text(f.refs::jsonb) AS fetched (value)
            WHERE f.session_key = hits.session_key
              AND f.at >= hits.at AND (hits.next_at IS NULL OR f.at < hits.next_at)
              AND f.tool IN ('get_observations', 'timeline')
              AND strpos(hits.refs, '"' || fetched.value || '"') > 0
        ) AS ref_hit
    FROM hits
)
SELECT CASE :group WHEN 'session' THEN session_key ELSE project END AS grouping,
       max(project) AS project,
       count(*) AS injections,
       sum(tokens)::bigint AS tokens,
       sum(json_array_length(refs::json)) AS refs_shown,
       sum(hit::int) AS hits,
       sum(ref_hit::int) AS ref_hits,
       sum((source = 'startup')::int) AS startup,
       sum((source = 'resume')::int) AS resume,
       sum((source = 'clear')::int) AS clear,
       sum((source = 'compact')::int) AS compact,
       sum((source = 'prompt')::int) AS prompt,
       min(at) AS first_at,
       max(at) AS last_at
FROM judged
GROUP BY grouping
ORDER BY last_at DESC

-- name: fetch_figures
-- Sums of 0/1 comparisons cast; json_array_length of the text cast to json;
-- jsonb_array_elements_text for json_each; IS NOT DISTINCT FROM for IS.
SELECT CASE :group WHEN 'session' THEN session_key ELSE project END AS grouping,
       count(*) AS fetches,
       sum((tool = 'search')::int) AS searches,
       sum((tool = 'timeline')::int) AS timelines,
       sum((tool = 'get_observations')::int) AS get_observations,
       sum((tool = 'recent_context')::int) AS recent_context,
       sum(CASE WHEN session_key IS NULL THEN 0 ELSE json_array_length(refs::json) END)
           AS records_fetched,
       min(at) AS first_at,
       max(at) AS last_at
FROM usage_fetches
WHERE (:project::text IS NULL OR project IS NOT DISTINCT FROM :project)
  AND (:group::text <> 'session'
       OR session_key IN (SELECT jsonb_array_elements_text(:sessions::jsonb)))
GROUP BY grouping

-- name: usage_span
-- The subquery in FROM needs an alias on PostgreSQL.
SELECT min(first) AS since
FROM (SELECT min(at) AS first FROM usage_injections
      UNION ALL
      SELECT min(at) FROM usage_fetches) AS oldest
