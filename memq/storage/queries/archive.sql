-- Every statement of a session's export and import (memq.memory.archive). Exports read on
-- their own connection inside one snapshot; an import runs inside one transaction of the
-- queue's writer. Times are integer milliseconds since the Unix epoch; lists are JSON text.

-- Export ------------------------------------------------------------------------------------

-- name: export_session
SELECT key, assistant, external_id, project, cwd, title, prompt_count, started_at, ended_at,
       updated_at
FROM sessions
WHERE key = :session_key;

-- name: export_prompts
SELECT message_id, number, text, created_at, author, machine
FROM prompts
WHERE session_key = :session_key
ORDER BY message_id;

-- name: export_observations
SELECT message_id, kind, title, subtitle, narrative, facts, concepts, files_read,
       files_modified, tool_name, command, exit_code, excerpt, created_at, author, machine
FROM observations
WHERE session_key = :session_key
ORDER BY message_id;

-- name: export_summaries
SELECT message_id, request, investigated, learned, completed, next_steps, files_read,
       files_edited, notes, created_at, author, machine
FROM summaries
WHERE session_key = :session_key
ORDER BY message_id;

-- Import: finding what is already there ------------------------------------------------------

-- name: import_session_exists
SELECT 1 FROM sessions WHERE key = :key;

-- name: import_prompts_at
-- The session's prompts at any of :times (a JSON array of times), for the import to compare
-- with its own: a prompt with the same time and text is already there (its number aside).
SELECT created_at, text
FROM prompts
WHERE session_key = :session_key AND created_at IN (SELECT value FROM json_each(:times));

-- name: import_observations_at
-- The same for observations: the same time and every field.
SELECT created_at, kind, title, subtitle, narrative, facts, concepts, files_read,
       files_modified, tool_name, command, exit_code, excerpt
FROM observations
WHERE session_key = :session_key AND created_at IN (SELECT value FROM json_each(:times));

-- name: import_summaries_at
SELECT created_at, request, investigated, learned, completed, next_steps, files_read,
       files_edited, notes
FROM summaries
WHERE session_key = :session_key AND created_at IN (SELECT value FROM json_each(:times));

-- name: import_prompt_numbers
SELECT number FROM prompts WHERE session_key = :session_key;

-- name: import_forget_stale_keys
-- The queue rows of earlier imports of the session (see import_reserve_ids) whose records are
-- gone, forgotten since: they no longer mark their message as imported.
DELETE FROM pending_messages
WHERE session_id = :session_key
  AND dedupe_key IN (SELECT value FROM json_each(:keys))
  AND status = 'processed' AND payload IS NULL
  AND NOT EXISTS (SELECT 1 FROM prompts WHERE message_id = pending_messages.id)
  AND NOT EXISTS (SELECT 1 FROM observations WHERE message_id = pending_messages.id)
  AND NOT EXISTS (SELECT 1 FROM summaries WHERE message_id = pending_messages.id);

-- name: import_reserved_keys
-- Which of :keys (a JSON array of 'import:<message id>' keys) an earlier import of the session
-- already reserved a message id for.
SELECT dedupe_key
FROM pending_messages
WHERE session_id = :session_key
  AND dedupe_key IN (SELECT value FROM json_each(:keys));

-- name: import_ids_taken
-- How many of :ids (a JSON array of message ids) a queue row or a memory record uses.
SELECT count(*)
FROM json_each(:ids) AS wanted
WHERE EXISTS (SELECT 1 FROM pending_messages WHERE id = wanted.value)
   OR EXISTS (SELECT 1 FROM prompts WHERE message_id = wanted.value)
   OR EXISTS (SELECT 1 FROM observations WHERE message_id = wanted.value)
   OR EXISTS (SELECT 1 FROM summaries WHERE message_id = wanted.value);

-- Import: writing -----------------------------------------------------------------------------

-- name: import_insert_session
INSERT INTO sessions (key, assistant, external_id, project, cwd, title, prompt_count,
                      started_at, ended_at, updated_at, created_at)
VALUES (:key, :assistant, :external_id, :project, :cwd, :title, :prompt_count,
        :started_at, :ended_at, :updated_at, :now);

-- name: import_merge_session
-- The session exists: what it says wins; the file only fills what it lacks, widens its span
-- of time, and counts the prompts imported. ended_at stays: NULL means the session is open.
UPDATE sessions
SET project = coalesce(project, :project),
    cwd = coalesce(cwd, :cwd),
    title = coalesce(title, :title),
    prompt_count = prompt_count + :imported_prompts,
    started_at = min(started_at, :started_at),
    updated_at = max(updated_at, :updated_at)
WHERE key = :key;

-- name: import_reserve_ids
-- A message id for each imported message: a settled queue row with no payload, so that the
-- queue's AUTOINCREMENT never hands the id out again. :messages is [[id, dedupe_key,
-- created_at], ...] in message order; id is the original one when the import keeps ids, else
-- null: a new id, after every id used so far, ascending in that order. The dedupe key
-- 'import:<original id>' marks the message as imported into the session (see
-- import_reserved_keys).
INSERT INTO pending_messages (id, session_id, kind, payload, dedupe_key, status, attempts,
                              available_at, created_at, finished_at)
SELECT json_extract(value, '$[0]'), :session_key, 'event', NULL, json_extract(value, '$[1]'),
       'processed', 0, json_extract(value, '$[2]'), json_extract(value, '$[2]'), :now
FROM json_each(:messages)
ORDER BY key
RETURNING id, dedupe_key;

-- name: import_prompt
-- The number the import gives it (memq.memory.archive), where insert_prompt numbers it after
-- the session's highest. :author and :machine as there: who produced it, NULL for a record
-- of this machine's user.
INSERT INTO prompts (message_id, session_key, number, text, author, machine, created_at)
VALUES (:message_id, :session_key, :number, :text, :author, :machine, :created_at);
