-- PostgreSQL forms of context.sql's statements that differ (memq.storage.sqlfile overlays
-- them by name). Lists stay JSON text, as memq binds them on both backends. A parameter
-- tested with IS NULL before any other use is cast there: the server types it from its
-- first use, and psycopg sends text and None untyped. :authors is matched with
-- `author = ANY (ARRAY(...))`: a restriction that lets the partial author indexes (0007) serve.

-- name: sessions_with_observations
-- IS DISTINCT FROM for SQLite's IS NOT; jsonb_array_elements_text for json_each.
SELECT key, updated_at
FROM sessions
WHERE project = :project
  AND key IS DISTINCT FROM :exclude_session
  AND (:assistants::jsonb IS NULL
       OR assistant IN (SELECT jsonb_array_elements_text(:assistants::jsonb)))
  AND (updated_at, key) < (:before_updated_at, :before_key)
  AND EXISTS (SELECT 1 FROM observations WHERE session_key = sessions.key AND inherited = 0)
  AND (:authors::jsonb IS NULL
       OR EXISTS (SELECT 1 FROM observations
                  WHERE author = ANY (ARRAY(SELECT jsonb_array_elements_text(:authors::jsonb)))
                    AND session_key = sessions.key AND inherited = 0))
ORDER BY updated_at DESC, key DESC
LIMIT :limit;

-- name: sessions_with_summaries
-- IS DISTINCT FROM for SQLite's IS NOT; jsonb_array_elements_text for json_each.
SELECT key, updated_at
FROM sessions
WHERE project = :project
  AND key IS DISTINCT FROM :exclude_session
  AND (:assistants::jsonb IS NULL
       OR assistant IN (SELECT jsonb_array_elements_text(:assistants::jsonb)))
  AND (updated_at, key) < (:before_updated_at, :before_key)
  AND EXISTS (SELECT 1 FROM summaries WHERE session_key = sessions.key AND inherited = 0)
  AND (:authors::jsonb IS NULL
       OR EXISTS (SELECT 1 FROM summaries
                  WHERE author = ANY (ARRAY(SELECT jsonb_array_elements_text(:authors::jsonb)))
                    AND session_key = sessions.key AND inherited = 0))
ORDER BY updated_at DESC, key DESC
LIMIT :limit;

-- name: newest_observations
-- jsonb_array_elements_text for json_each, and each session's newest rows as a LATERAL
-- subquery (one index walk per session) for SQLite's correlated IN in the join condition,
-- which PostgreSQL would test against every observation.
SELECT o.id, o.message_id, o.session_key, o.kind, o.title, o.files_read, o.files_modified,
       o.created_at, o.author, o.machine
FROM jsonb_array_elements_text(:session_keys::jsonb) AS s (value)
CROSS JOIN LATERAL (
    SELECT id, message_id, session_key, kind, title, files_read, files_modified, created_at,
           author, machine
    FROM observations
    WHERE session_key = s.value
      AND inherited = 0
      AND (created_at, message_id) > (:after_created_at, :after_message_id)
      AND (:authors::jsonb IS NULL
           OR author = ANY (ARRAY(SELECT jsonb_array_elements_text(:authors::jsonb))))
      AND (:exclude_machines::jsonb IS NULL
           OR author IS DISTINCT FROM :exclude_author::text
           OR machine IS NULL
           OR machine <> ALL (ARRAY(SELECT jsonb_array_elements_text(:exclude_machines::jsonb))))
    ORDER BY created_at DESC, message_id DESC
    LIMIT :limit
) AS o
ORDER BY o.created_at DESC, o.message_id DESC
LIMIT :limit;

-- name: newest_summaries
-- As newest_observations: jsonb_array_elements_text, and a LATERAL subquery.
SELECT u.id, u.message_id, u.session_key, u.request, u.investigated, u.learned, u.completed,
       u.next_steps, u.files_read, u.files_edited, u.notes, u.created_at, u.author, u.machine,
       (SELECT title FROM sessions WHERE key = u.session_key) AS session_title
FROM jsonb_array_elements_text(:session_keys::jsonb) AS s (value)
CROSS JOIN LATERAL (
    SELECT id, message_id, session_key, request, investigated, learned, completed,
           next_steps, files_read, files_edited, notes, created_at, author, machine
    FROM summaries
    WHERE session_key = s.value
      AND inherited = 0
      AND (created_at, message_id) > (:after_created_at, :after_message_id)
      AND (:authors::jsonb IS NULL
           OR author = ANY (ARRAY(SELECT jsonb_array_elements_text(:authors::jsonb))))
      AND (:exclude_machines::jsonb IS NULL
           OR author IS DISTINCT FROM :exclude_author::text
           OR machine IS NULL
           OR machine <> ALL (ARRAY(SELECT jsonb_array_elements_text(:exclude_machines::jsonb))))
    ORDER BY created_at DESC, message_id DESC
    LIMIT :limit
) AS u
ORDER BY u.created_at DESC, u.message_id DESC
LIMIT :limit;
