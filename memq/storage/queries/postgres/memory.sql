-- PostgreSQL forms of memory.sql's statements that differ (memq.storage.sqlfile overlays
-- them by name). Lists stay JSON text, as memq binds them on both backends. The 0/1 flags
-- (:reopen, title_edited) are compared with 0: PostgreSQL's CASE and OR want booleans.

-- name: upsert_session
-- LEAST and GREATEST for SQLite's two-argument min() and max() (never given a NULL here);
-- :reopen compared with 0.
INSERT INTO sessions (key, assistant, external_id, project, cwd, title, prompt_count,
                      started_at, ended_at, updated_at, created_at)
VALUES (:key, :assistant, :external_id, :project, :cwd, :title, :prompts,
        CASE WHEN EXISTS (SELECT 1 FROM sessions WHERE key = :key) THEN :at
             ELSE LEAST(:at, coalesce((SELECT min(created_at) FROM pending_messages
                                       WHERE session_id = :key AND dedupe_key IS NOT NULL
                                         AND kind <> 'unsubscribed'), :at))
        END,
        :ended_at, :at, :now)
ON CONFLICT (key) DO UPDATE
SET project = coalesce(excluded.project, sessions.project),
    cwd = coalesce(excluded.cwd, sessions.cwd),
    title = coalesce(sessions.title, excluded.title),
    prompt_count = sessions.prompt_count + excluded.prompt_count,
    ended_at = CASE WHEN excluded.ended_at IS NOT NULL THEN excluded.ended_at
                    WHEN :reopen::int <> 0 THEN NULL
                    ELSE sessions.ended_at END,
    updated_at = GREATEST(sessions.updated_at, excluded.updated_at);

-- name: update_session
-- GREATEST for max(); :reopen compared with 0; :ended_at cast where it is first tested.
UPDATE sessions
SET project = coalesce(:project, project),
    cwd = coalesce(:cwd, cwd),
    ended_at = CASE WHEN :ended_at::bigint IS NOT NULL THEN :ended_at
                    WHEN :reopen::int <> 0 THEN NULL
                    ELSE ended_at END,
    updated_at = GREATEST(updated_at, :at)
WHERE key = :key;

-- name: existing_tables
-- The catalog for sqlite_schema: each name as the statements' unqualified names find it
-- (to_regclass follows the search path), if that is a table.
SELECT wanted.name
FROM jsonb_array_elements_text(:names::jsonb) AS wanted (name)
JOIN pg_catalog.pg_class AS c ON c.oid = to_regclass(quote_ident(wanted.name))
WHERE c.relkind IN ('r', 'p');

-- name: revert_cutoff
-- The subqueries in FROM need aliases on PostgreSQL.
SELECT min(message_id) AS cutoff FROM (
    SELECT message_id FROM (
        SELECT message_id FROM prompts WHERE session_key = :session_key
        UNION SELECT message_id FROM observations WHERE session_key = :session_key
        UNION SELECT message_id FROM summaries WHERE session_key = :session_key
    ) AS records
    ORDER BY message_id DESC
    LIMIT :last
) AS newest;

-- name: recount_session
-- title_edited compared with 0; GREATEST for max().
UPDATE sessions
SET prompt_count = (SELECT count(*) FROM prompts WHERE session_key = :session_key),
    title = CASE WHEN title_edited <> 0
                      OR EXISTS (SELECT 1 FROM prompts WHERE session_key = :session_key)
                 THEN title END,
    updated_at = GREATEST(updated_at, :now)
WHERE key = :session_key;

-- name: transfer_links
-- json_agg(...)::text for json_group_array (the line is JSON text, as transfer_forks reads
-- it); :to_key typed where it starts the recursive CTE. target_exists and
-- source_below_target are booleans, not 0/1: memq reads them as truth values.
WITH RECURSIVE
    above_source (key) AS (
        SELECT parent_key FROM sessions WHERE key = :from_key AND parent_key IS NOT NULL
        UNION
        SELECT s.parent_key FROM sessions AS s JOIN above_source ON s.key = above_source.key
        WHERE s.parent_key IS NOT NULL),
    target_line (key) AS (
        SELECT :to_key::text
        UNION
        SELECT s.parent_key FROM sessions AS s JOIN target_line ON s.key = target_line.key
        WHERE s.parent_key IS NOT NULL)
SELECT source.parent_key AS source_parent,
       source.forked_at AS source_forked_at,
       target.key IS NOT NULL AS target_exists,
       target.parent_key AS target_parent,
       target.forked_at AS target_forked_at,
       EXISTS (SELECT 1 FROM above_source WHERE key = :to_key) AS source_below_target,
       (SELECT json_agg(key)::text FROM target_line) AS target_line
FROM sessions AS source
LEFT JOIN sessions AS target ON target.key = :to_key
WHERE source.key = :from_key;

-- name: transfer_session_row
-- GREATEST and LEAST for max() and min(); :forked_at typed (a NULL in a SELECT list would
-- be text).
INSERT INTO sessions (key, assistant, external_id, project, cwd, title, title_edited,
                      prompt_count, parent_key, forked_at, started_at, ended_at, updated_at,
                      created_at)
SELECT :to_key, :assistant, :external_id, project, cwd, title, title_edited, prompt_count,
       :parent_key, :forked_at::bigint, started_at, ended_at, GREATEST(updated_at, :now),
       created_at
FROM sessions
WHERE key = :from_key
ON CONFLICT (key) DO UPDATE
SET project = coalesce(sessions.project, excluded.project),
    cwd = coalesce(sessions.cwd, excluded.cwd),
    title = coalesce(sessions.title, excluded.title),
    parent_key = excluded.parent_key,
    forked_at = excluded.forked_at,
    started_at = LEAST(sessions.started_at, excluded.started_at),
    updated_at = GREATEST(sessions.updated_at, excluded.updated_at);

-- name: transfer_restore_prompts
-- The ids from jsonb_array_elements_text, cast, for SQLite's json_each.
UPDATE prompts SET message_id = origin_id, origin_id = NULL, inherited = 0
WHERE session_key = :to_key
  AND origin_id IN (SELECT jsonb_array_elements_text(:originals::jsonb)::bigint);

-- name: transfer_restore_observations
-- The ids from jsonb_array_elements_text, cast, for SQLite's json_each.
UPDATE observations SET message_id = origin_id, origin_id = NULL, inherited = 0
WHERE session_key = :to_key
  AND origin_id IN (SELECT jsonb_array_elements_text(:originals::jsonb)::bigint);

-- name: transfer_restore_summaries
-- The ids from jsonb_array_elements_text, cast, for SQLite's json_each.
UPDATE summaries SET message_id = origin_id, origin_id = NULL, inherited = 0
WHERE session_key = :to_key
  AND origin_id IN (SELECT jsonb_array_elements_text(:originals::jsonb)::bigint);

-- name: transfer_forks
-- jsonb_array_elements_text for json_each.
UPDATE sessions
SET parent_key = CASE WHEN key IN (SELECT jsonb_array_elements_text(:target_line::jsonb))
                      THEN :source_parent ELSE :to_key END,
    forked_at = CASE WHEN key IN (SELECT jsonb_array_elements_text(:target_line::jsonb))
                     THEN :source_forked_at ELSE forked_at END
WHERE parent_key = :from_key;

-- name: set_title
-- GREATEST for max().
UPDATE sessions
SET title = :title, title_edited = :edited, updated_at = GREATEST(updated_at, :now)
WHERE key = :session_key;

-- name: list_sessions_by_assistant
-- jsonb_array_elements_text for json_each, and no unary + (SQLite's way to keep its
-- planner off an index; PostgreSQL has no unary + on text).
SELECT key, assistant, external_id, project, cwd, title, title_edited, prompt_count,
       (SELECT count(*) FROM observations WHERE session_key = sessions.key)
           AS observation_count,
       (SELECT count(*) FROM summaries WHERE session_key = sessions.key) AS summary_count,
       parent_key, forked_at, started_at, ended_at, updated_at,
       (SELECT last_access_at FROM session_activity WHERE session_key = sessions.key)
           AS last_access_at
FROM sessions
WHERE assistant IN (SELECT jsonb_array_elements_text(:assistants::jsonb))
ORDER BY updated_at DESC, key DESC
LIMIT :limit OFFSET :offset;

-- name: count_sessions_by_assistant
-- jsonb_array_elements_text for json_each.
SELECT count(*) FROM sessions
WHERE assistant IN (SELECT jsonb_array_elements_text(:assistants::jsonb));

-- name: list_sessions_by_author
-- `author = ANY (ARRAY(...))` for SQLite's IN over json_each: a restriction that lets the
-- partial *_author indexes (0007) serve; :assistants cast where it is tested for NULL.
SELECT key, assistant, external_id, project, cwd, title, title_edited, prompt_count,
       (SELECT count(*) FROM observations WHERE session_key = sessions.key)
           AS observation_count,
       (SELECT count(*) FROM summaries WHERE session_key = sessions.key) AS summary_count,
       parent_key, forked_at, started_at, ended_at, updated_at,
       (SELECT last_access_at FROM session_activity WHERE session_key = sessions.key)
           AS last_access_at
FROM sessions
WHERE key IN (SELECT session_key FROM prompts
              WHERE author = ANY (ARRAY(SELECT jsonb_array_elements_text(:authors::jsonb)))
                AND inherited = 0
              UNION
              SELECT session_key FROM observations
              WHERE author = ANY (ARRAY(SELECT jsonb_array_elements_text(:authors::jsonb)))
                AND inherited = 0
              UNION
              SELECT session_key FROM summaries
              WHERE author = ANY (ARRAY(SELECT jsonb_array_elements_text(:authors::jsonb)))
                AND inherited = 0)
  AND (:assistants::jsonb IS NULL
       OR assistant IN (SELECT jsonb_array_elements_text(:assistants::jsonb)))
ORDER BY updated_at DESC, key DESC
LIMIT :limit OFFSET :offset;

-- name: count_sessions_by_author
-- As list_sessions_by_author.
SELECT count(*) FROM sessions
WHERE key IN (SELECT session_key FROM prompts
              WHERE author = ANY (ARRAY(SELECT jsonb_array_elements_text(:authors::jsonb)))
                AND inherited = 0
              UNION
              SELECT session_key FROM observations
              WHERE author = ANY (ARRAY(SELECT jsonb_array_elements_text(:authors::jsonb)))
                AND inherited = 0
              UNION
              SELECT session_key FROM summaries
              WHERE author = ANY (ARRAY(SELECT jsonb_array_elements_text(:authors::jsonb)))
                AND inherited = 0)
  AND (:assistants::jsonb IS NULL
       OR assistant IN (SELECT jsonb_array_elements_text(:assistants::jsonb)));
