-- Every statement the memory store runs. Writes run inside the queue writer's transaction
-- (a message's memory commits with its processed mark); reads run on the store's own
-- connection. Times are integer milliseconds since the Unix epoch; lists are JSON text.

-- name: upsert_session
-- Every message touches its session. :prompts is 1 for a prompt (else 0); :title is set only
-- for a prompt and kept only while the session has none; :ended_at is set for a session end;
-- :reopen is 1 for a SessionStart, which opens an ended session again.
INSERT INTO sessions (key, assistant, external_id, project, cwd, title, prompt_count,
                      started_at, ended_at, updated_at, created_at)
VALUES (:key, :assistant, :external_id, :project, :cwd, :title, :prompts,
        :at, :ended_at, :at, :now)
ON CONFLICT (key) DO UPDATE
SET project = coalesce(excluded.project, sessions.project),
    cwd = coalesce(excluded.cwd, sessions.cwd),
    title = coalesce(sessions.title, excluded.title),
    prompt_count = sessions.prompt_count + excluded.prompt_count,
    ended_at = CASE WHEN excluded.ended_at IS NOT NULL THEN excluded.ended_at
                    WHEN :reopen THEN NULL
                    ELSE sessions.ended_at END,
    updated_at = max(sessions.updated_at, excluded.updated_at);

-- name: insert_prompt
-- Numbered after the session's highest prompt number.
INSERT INTO prompts (message_id, session_key, number, text, created_at)
SELECT :message_id, :session_key, coalesce(max(number), 0) + 1, :text, :created_at
FROM prompts
WHERE session_key = :session_key;

-- name: insert_observation
INSERT INTO observations (message_id, session_key, kind, title, subtitle, narrative, facts,
                          concepts, files_read, files_modified, tool_name, command, exit_code,
                          excerpt, created_at)
VALUES (:message_id, :session_key, :kind, :title, :subtitle, :narrative, :facts,
        :concepts, :files_read, :files_modified, :tool_name, :command, :exit_code,
        :excerpt, :created_at);

-- name: insert_summary
INSERT INTO summaries (message_id, session_key, request, investigated, learned, completed,
                       next_steps, files_read, files_edited, notes, created_at)
VALUES (:message_id, :session_key, :request, :investigated, :learned, :completed,
        :next_steps, :files_read, :files_edited, :notes, :created_at);

-- name: delete_session_prompts
DELETE FROM prompts WHERE session_key = :session_key;

-- name: delete_session_observations
DELETE FROM observations WHERE session_key = :session_key;

-- name: delete_session_summaries
DELETE FROM summaries WHERE session_key = :session_key;

-- name: adopt_inherited_prompts
-- Before a session is deleted, its forks' copies of its memory become their own: with the
-- parent gone they are the only ones left, and search across sessions must find them. (The
-- parent's own copies from a grandparent become visible twice: the lesser evil.)
UPDATE prompts SET inherited = 0
WHERE inherited = 1
  AND session_key IN (SELECT key FROM sessions WHERE parent_key = :session_key);

-- name: adopt_inherited_observations
UPDATE observations SET inherited = 0
WHERE inherited = 1
  AND session_key IN (SELECT key FROM sessions WHERE parent_key = :session_key);

-- name: adopt_inherited_summaries
UPDATE summaries SET inherited = 0
WHERE inherited = 1
  AND session_key IN (SELECT key FROM sessions WHERE parent_key = :session_key);

-- name: delete_session
-- Last: the records above reference the session.
DELETE FROM sessions WHERE key = :session_key;

-- name: existing_tables
-- Which of :names (a JSON array of table names) exist: every memory reader (the store,
-- search, context, export; memq.memory.reader) checks at open that the schema was migrated.
SELECT name FROM sqlite_schema
WHERE type = 'table' AND name IN (SELECT value FROM json_each(:names));

-- name: list_sessions
-- Newest activity first, with counts; last_access_at is NULL until the daemon has flushed
-- one (memq.worker.activity).
SELECT key, assistant, external_id, project, cwd, title, title_edited, prompt_count,
       (SELECT count(*) FROM observations WHERE session_key = sessions.key)
           AS observation_count,
       (SELECT count(*) FROM summaries WHERE session_key = sessions.key) AS summary_count,
       parent_key, forked_at, started_at, ended_at, updated_at,
       (SELECT last_access_at FROM session_activity WHERE session_key = sessions.key)
           AS last_access_at
FROM sessions
ORDER BY updated_at DESC, key DESC
LIMIT :limit OFFSET :offset;

-- name: count_sessions
SELECT count(*) FROM sessions;

-- name: get_session
SELECT key, assistant, external_id, project, cwd, title, title_edited, prompt_count,
       (SELECT count(*) FROM observations WHERE session_key = sessions.key)
           AS observation_count,
       (SELECT count(*) FROM summaries WHERE session_key = sessions.key) AS summary_count,
       parent_key, forked_at, started_at, ended_at, updated_at,
       (SELECT last_access_at FROM session_activity WHERE session_key = sessions.key)
           AS last_access_at
FROM sessions
WHERE key = :session_key;

-- name: session_prompts
SELECT id, message_id, session_key, number, text, created_at
FROM prompts
WHERE session_key = :session_key
ORDER BY number;

-- name: list_observations
-- Time order: message ids ascend in the order the queue accepted the events.
SELECT id, message_id, session_key, kind, title, subtitle, narrative, facts, concepts,
       files_read, files_modified, tool_name, command, exit_code, excerpt, created_at
FROM observations
WHERE session_key = :session_key
ORDER BY message_id
LIMIT :limit OFFSET :offset;

-- name: count_observations
SELECT count(*) FROM observations WHERE session_key = :session_key;

-- name: list_summaries
SELECT id, message_id, session_key, request, investigated, learned, completed, next_steps,
       files_read, files_edited, notes, created_at
FROM summaries
WHERE session_key = :session_key
ORDER BY message_id
LIMIT :limit OFFSET :offset;

-- name: count_summaries
SELECT count(*) FROM summaries WHERE session_key = :session_key;

-- name: revert_cutoff
-- The first of the session's :last newest messages that left memory (a prompt, an
-- observation or a summary); NULL when it has none.
SELECT min(message_id) AS cutoff FROM (
    SELECT message_id FROM (
        SELECT message_id FROM prompts WHERE session_key = :session_key
        UNION SELECT message_id FROM observations WHERE session_key = :session_key
        UNION SELECT message_id FROM summaries WHERE session_key = :session_key
    )
    ORDER BY message_id DESC
    LIMIT :last
);

-- name: revert_prompts
DELETE FROM prompts WHERE session_key = :session_key AND message_id >= :from_id;

-- name: revert_observations
DELETE FROM observations WHERE session_key = :session_key AND message_id >= :from_id;

-- name: revert_summaries
DELETE FROM summaries WHERE session_key = :session_key AND message_id >= :from_id;

-- name: recount_session
-- After a revert: the prompt count, the title (gone with the last prompt, unless the user
-- set it), and the latest activity that is left.
UPDATE sessions
SET prompt_count = (SELECT count(*) FROM prompts WHERE session_key = :session_key),
    title = CASE WHEN title_edited
                      OR EXISTS (SELECT 1 FROM prompts WHERE session_key = :session_key)
                 THEN title END,
    updated_at = coalesce(
        (SELECT max(created_at) FROM (
            SELECT created_at FROM prompts WHERE session_key = :session_key
            UNION ALL SELECT created_at FROM observations WHERE session_key = :session_key
            UNION ALL SELECT created_at FROM summaries WHERE session_key = :session_key)),
        started_at)
WHERE key = :session_key;

-- name: transfer_session_row
-- The target session: created from the source when it is new; when it exists, its own
-- values win and the source only fills gaps and widens the time span.
INSERT INTO sessions (key, assistant, external_id, project, cwd, title, title_edited,
                      prompt_count, parent_key, forked_at, started_at, ended_at, updated_at,
                      created_at)
SELECT :to_key, :assistant, :external_id, project, cwd, title, title_edited, prompt_count,
       parent_key, forked_at, started_at, ended_at, updated_at, created_at
FROM sessions
WHERE key = :from_key
ON CONFLICT (key) DO UPDATE
SET project = coalesce(sessions.project, excluded.project),
    cwd = coalesce(sessions.cwd, excluded.cwd),
    title = coalesce(sessions.title, excluded.title),
    parent_key = coalesce(sessions.parent_key, excluded.parent_key),
    forked_at = coalesce(sessions.forked_at, excluded.forked_at),
    started_at = min(sessions.started_at, excluded.started_at),
    updated_at = max(sessions.updated_at, excluded.updated_at);

-- name: transfer_prompts
-- Numbered after the target's own prompts, in the order they were asked.
UPDATE prompts
SET session_key = :to_key, number = moved.number
FROM (SELECT id,
             (SELECT coalesce(max(number), 0) FROM prompts WHERE session_key = :to_key)
             + row_number() OVER (ORDER BY message_id) AS number
      FROM prompts
      WHERE session_key = :from_key) AS moved
WHERE prompts.id = moved.id;

-- name: transfer_observations
UPDATE observations SET session_key = :to_key WHERE session_key = :from_key;

-- name: transfer_summaries
UPDATE summaries SET session_key = :to_key WHERE session_key = :from_key;

-- name: transfer_forks
-- The source's forks now descend from the target.
UPDATE sessions SET parent_key = :to_key WHERE parent_key = :from_key;

-- name: transfer_recount
UPDATE sessions
SET prompt_count = (SELECT count(*) FROM prompts WHERE session_key = :to_key)
WHERE key = :to_key;

-- name: first_prompt_text
SELECT text FROM prompts WHERE session_key = :session_key ORDER BY number LIMIT 1;

-- name: set_title
-- :edited is 1 for a title the user gave, 0 for the first prompt's (a reset).
UPDATE sessions SET title = :title, title_edited = :edited WHERE key = :session_key;

-- name: session_exists
SELECT 1 FROM sessions WHERE key = :session_key;
