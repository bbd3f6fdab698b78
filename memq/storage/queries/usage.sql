-- Whether the model uses memory (memq.memory.usage): injections of context, the model's
-- fetches through the MCP tools, their pruning and the figures. Times are epoch milliseconds.

-- name: insert_injection
INSERT INTO usage_injections (at, session_key, project, source, refs, tokens)
VALUES (:at, :session_key, :project, :source, :refs, :tokens)

-- name: insert_fetch
-- A fetch that names no session goes to the session of the project's newest injection at
-- or before it, within the attribution window (:window ms); with none, to no session. Run
-- after the batch's injections, so one recorded just before the fetch counts.
INSERT INTO usage_fetches (at, session_key, project, tool, refs, results, query)
VALUES (
    :at,
    coalesce(
        :session_key,
        (SELECT session_key FROM usage_injections
         WHERE project IS :project AND at <= :at AND at >= :at - :window
         ORDER BY at DESC, id DESC
         LIMIT 1)
    ),
    :project, :tool, :refs, :results, :query
)

-- name: prune_injections_before
-- One chunk at a time, as the queue prunes: the write lock is never held for long.
DELETE FROM usage_injections
WHERE id IN (SELECT id FROM usage_injections WHERE at < :before ORDER BY at LIMIT :chunk)

-- name: prune_fetches_before
DELETE FROM usage_fetches
WHERE id IN (SELECT id FROM usage_fetches WHERE at < :before ORDER BY at LIMIT :chunk)

-- name: prune_injections_over
-- Beyond the newest :keep rows, the oldest go (a chunk at a time).
DELETE FROM usage_injections
WHERE id IN (SELECT id FROM usage_injections ORDER BY at DESC, id DESC
             LIMIT :chunk OFFSET :keep)

-- name: prune_fetches_over
DELETE FROM usage_fetches
WHERE id IN (SELECT id FROM usage_fetches ORDER BY at DESC, id DESC
             LIMIT :chunk OFFSET :keep)

-- name: delete_session_usage_injections
DELETE FROM usage_injections WHERE session_key = :session_key

-- name: delete_session_usage_fetches
DELETE FROM usage_fetches WHERE session_key = :session_key

-- name: move_session_usage_injections
UPDATE usage_injections SET session_key = :to_key WHERE session_key = :session_key

-- name: move_session_usage_fetches
UPDATE usage_fetches SET session_key = :to_key WHERE session_key = :session_key

-- name: injection_figures
-- Each injection with whether the model reached into memory after it (hit) and whether it
-- fetched one of the records it showed (ref_hit): counting the session's fetches from the
-- injection on, until the session's next injection. recent_context only reads the digest
-- again: it is no hit. Grouped by :group ('project', or 'session': only the :limit sessions
-- injected into last are judged), newest group first.
WITH newest AS (
    SELECT session_key FROM usage_injections
    WHERE :project IS NULL OR project IS :project
    GROUP BY session_key
    ORDER BY max(at) DESC
    LIMIT :limit
),
shown AS (
    SELECT id, at, session_key, project, source, refs, tokens,
           lead(at) OVER (PARTITION BY session_key ORDER BY at, id) AS next_at
    FROM usage_injections
    WHERE (:project IS NULL OR project IS :project)
      AND (:group <> 'session' OR session_key IN (SELECT session_key FROM newest))
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
    -- A ref hit is a hit: only those are searched for one. The references are JSON text
    -- of quoted strings, so a quoted reference found in it is one of them (#12, not #123).
    SELECT hits.*,
        hit AND EXISTS (
            SELECT 1 FROM usage_fetches AS f, json_each(f.refs) AS fetched
            WHERE f.session_key = hits.session_key
              AND f.at >= hits.at AND (hits.next_at IS NULL OR f.at < hits.next_at)
              AND f.tool IN ('get_observations', 'timeline')
              AND instr(hits.refs, '"' || fetched.value || '"') > 0
        ) AS ref_hit
    FROM hits
)
SELECT CASE :group WHEN 'session' THEN session_key ELSE project END AS grouping,
       max(project) AS project,
       count(*) AS injections,
       sum(tokens) AS tokens,
       sum(json_array_length(refs)) AS refs_shown,
       sum(hit) AS hits,
       sum(ref_hit) AS ref_hits,
       sum(source = 'startup') AS startup,
       sum(source = 'resume') AS resume,
       sum(source = 'clear') AS clear,
       sum(source = 'compact') AS compact,
       sum(source = 'prompt') AS prompt,
       min(at) AS first_at,
       max(at) AS last_at
FROM judged
GROUP BY grouping
ORDER BY last_at DESC

-- name: fetch_figures
-- The model's tool calls by :group ('project' or 'session'; a session's fetches all have
-- one). records_fetched counts the records fetched by calls attributed to a session, that
-- is after one of its injections.
SELECT CASE :group WHEN 'session' THEN session_key ELSE project END AS grouping,
       count(*) AS fetches,
       sum(tool = 'search') AS searches,
       sum(tool = 'timeline') AS timelines,
       sum(tool = 'get_observations') AS get_observations,
       sum(tool = 'recent_context') AS recent_context,
       sum(CASE WHEN session_key IS NULL THEN 0 ELSE json_array_length(refs) END)
           AS records_fetched,
       min(at) AS first_at,
       max(at) AS last_at
FROM usage_fetches
WHERE (:project IS NULL OR project IS :project)
  AND (:group <> 'session' OR session_key IN (SELECT value FROM json_each(:sessions)))
GROUP BY grouping

-- name: usage_span
-- The oldest row kept: the figures cover from then on.
SELECT min(first) AS since
FROM (SELECT min(at) AS first FROM usage_injections
      UNION ALL
      SELECT min(at) FROM usage_fetches)
