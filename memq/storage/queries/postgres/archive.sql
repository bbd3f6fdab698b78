-- PostgreSQL forms of archive.sql's statements that differ (memq.storage.sqlfile overlays
-- them by name). Lists stay JSON text, as memq binds them on both backends.

-- name: import_prompts_at
-- The times from jsonb_array_elements_text, cast, for SQLite's json_each.
SELECT created_at, text
FROM prompts
WHERE session_key = :session_key
  AND created_at IN (SELECT jsonb_array_elements_text(:times::jsonb)::bigint);

-- name: import_observations_at
-- The times from jsonb_array_elements_text, cast, for SQLite's json_each.
SELECT created_at, kind, title, subtitle, narrative, facts, concepts, files_read,
       files_modified, tool_name, command, exit_code, excerpt
FROM observations
WHERE session_key = :session_key
  AND created_at IN (SELECT jsonb_array_elements_text(:times::jsonb)::bigint);

-- name: import_summaries_at
-- The times from jsonb_array_elements_text, cast, for SQLite's json_each.
SELECT created_at, request, investigated, learned, completed, next_steps, files_read,
       files_edited, notes
FROM summaries
WHERE session_key = :session_key
  AND created_at IN (SELECT jsonb_array_elements_text(:times::jsonb)::bigint);

-- name: import_forget_stale_keys
-- The keys from jsonb_array_elements_text for SQLite's json_each.
DELETE FROM pending_messages
WHERE session_id = :session_key
  AND dedupe_key IN (SELECT jsonb_array_elements_text(:keys::jsonb))
  AND status = 'processed' AND payload IS NULL
  AND NOT EXISTS (SELECT 1 FROM prompts WHERE message_id = pending_messages.id)
  AND NOT EXISTS (SELECT 1 FROM observations WHERE message_id = pending_messages.id)
  AND NOT EXISTS (SELECT 1 FROM summaries WHERE message_id = pending_messages.id);

-- name: import_reserved_keys
-- The keys from jsonb_array_elements_text for SQLite's json_each.
SELECT dedupe_key
FROM pending_messages
WHERE session_id = :session_key
  AND dedupe_key IN (SELECT jsonb_array_elements_text(:keys::jsonb));

-- name: import_ids_taken
-- The ids from jsonb_array_elements_text, cast, for SQLite's json_each.
SELECT count(*)
FROM (SELECT jsonb_array_elements_text(:ids::jsonb)::bigint AS value) AS wanted
WHERE EXISTS (SELECT 1 FROM pending_messages WHERE id = wanted.value)
   OR EXISTS (SELECT 1 FROM prompts WHERE message_id = wanted.value)
   OR EXISTS (SELECT 1 FROM observations WHERE message_id = wanted.value)
   OR EXISTS (SELECT 1 FROM summaries WHERE message_id = wanted.value);

-- name: import_merge_session
-- LEAST and GREATEST for SQLite's two-argument min() and max() (which return NULL for a
-- NULL argument where these skip it; the file's times are never NULL).
UPDATE sessions
SET project = coalesce(project, :project),
    cwd = coalesce(cwd, :cwd),
    title = coalesce(title, :title),
    prompt_count = prompt_count + :imported_prompts,
    started_at = LEAST(started_at, :started_at),
    updated_at = GREATEST(updated_at, :updated_at)
WHERE key = :key;

-- name: import_reserve_ids
-- jsonb_array_elements WITH ORDINALITY for json_each (and its key), ->> for json_extract.
-- An identity column refuses NULL where SQLite's AUTOINCREMENT gives the next id: a null id
-- takes nextval, in message order (the ordered subquery feeds nextval row by row). Kept ids
-- move the sequence past them (setval, never back: GREATEST with its last value), as
-- sqlite_sequence follows the largest id; a concurrent nextval between the two reads of
-- setval could only make a later insert fail on the primary key, never reuse an id.
WITH wanted AS (
    SELECT (m.value ->> 0)::bigint AS id, m.value ->> 1 AS dedupe_key,
           (m.value ->> 2)::bigint AS created_at, m.n
    FROM jsonb_array_elements(:messages::jsonb) WITH ORDINALITY AS m (value, n)
),
numbered AS (
    SELECT coalesce(ordered.id, nextval(pg_get_serial_sequence('pending_messages', 'id')))
               AS id,
           ordered.dedupe_key, ordered.created_at, ordered.n
    FROM (SELECT * FROM wanted ORDER BY n) AS ordered
),
inserted AS (
    INSERT INTO pending_messages (id, session_id, kind, payload, dedupe_key, status,
                                  attempts, available_at, created_at, finished_at)
    SELECT id, :session_key, 'event', NULL, dedupe_key, 'processed', 0, created_at,
           created_at, :now
    FROM numbered
    ORDER BY n
    RETURNING id, dedupe_key
),
raised AS (
    SELECT setval(pg_get_serial_sequence('pending_messages', 'id'),
                  GREATEST(max(id), pg_sequence_last_value(
                      pg_get_serial_sequence('pending_messages', 'id')::regclass)))
    FROM inserted
)
SELECT inserted.id, inserted.dedupe_key
FROM inserted, raised;
