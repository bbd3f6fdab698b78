-- Every statement the memory store runs. Writes run inside the queue writer's transaction
-- (a message's memory commits with its processed mark); reads run on the store's own
-- connection. Times are integer milliseconds since the Unix epoch; lists are JSON text.

-- name: upsert_session
-- A prompt, a tool call or a summary creates its session (memq.memory.store); :prompts is 1
-- for a prompt (else 0); :title is set only for a prompt and kept only while the session has
-- none; :ended_at is set for a session end; :reopen is 1 for a SessionStart, which opens an
-- ended session again. A new session started at its first queued event (its SessionStart,
-- which created no row): CASE evaluates that look-up only while the session has no row.
INSERT INTO sessions (key, assistant, external_id, project, cwd, title, prompt_count,
                      started_at, ended_at, updated_at, created_at)
VALUES (:key, :assistant, :external_id, :project, :cwd, :title, :prompts,
        CASE WHEN EXISTS (SELECT 1 FROM sessions WHERE key = :key) THEN :at
             ELSE min(:at, coalesce((SELECT min(created_at) FROM pending_messages
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
                    WHEN :reopen THEN NULL
                    ELSE sessions.ended_at END,
    updated_at = max(sessions.updated_at, excluded.updated_at);

-- name: update_session
-- A SessionStart or a session end: as upsert_session for a session memory knows, nothing for
-- one it does not. A session that never had a prompt, a tool call or a summary (Claude Code's
-- setup run, one closed before its first prompt) has no row, so it lists nowhere; its queue
-- rows stay, and its first prompt creates it.
UPDATE sessions
SET project = coalesce(:project, project),
    cwd = coalesce(:cwd, cwd),
    ended_at = CASE WHEN :ended_at IS NOT NULL THEN :ended_at
                    WHEN :reopen THEN NULL
                    ELSE ended_at END,
    updated_at = max(updated_at, :at)
WHERE key = :key;

-- name: insert_prompt
-- Numbered after the session's highest prompt number. :author and :machine: who produced the
-- record and on which machine (memq.memory.origin, migration 0018), for a message the team
-- server took in; NULL for one made here. Stored by the insert itself, so a record costs one
-- statement (a database before 0018 has no such columns: see tests that build one).
INSERT INTO prompts (message_id, session_key, number, text, author, machine, created_at)
SELECT :message_id, :session_key, coalesce(max(number), 0) + 1, :text, :author, :machine,
       :created_at
FROM prompts
WHERE session_key = :session_key;

-- name: insert_observation
INSERT INTO observations (message_id, session_key, kind, title, subtitle, narrative, facts,
                          concepts, files_read, files_modified, tool_name, command, exit_code,
                          excerpt, author, machine, created_at)
VALUES (:message_id, :session_key, :kind, :title, :subtitle, :narrative, :facts,
        :concepts, :files_read, :files_modified, :tool_name, :command, :exit_code,
        :excerpt, :author, :machine, :created_at);

-- name: insert_summary
INSERT INTO summaries (message_id, session_key, request, investigated, learned, completed,
                       next_steps, files_read, files_edited, notes, author, machine, created_at)
VALUES (:message_id, :session_key, :request, :investigated, :learned, :completed,
        :next_steps, :files_read, :files_edited, :notes, :author, :machine, :created_at);

-- name: delete_session_prompts
DELETE FROM prompts WHERE session_key = :session_key;

-- name: delete_session_observations
DELETE FROM observations WHERE session_key = :session_key;

-- name: delete_session_summaries
DELETE FROM summaries WHERE session_key = :session_key;

-- Handing on: before a session's own records from :from_id on leave memory (a delete, from
-- 0; a revert), each one's copies (origin_id, the copy_origins migration) keep it: the copy
-- with the lowest message id (the oldest fork's) becomes its session's own, and the other
-- copies name that one. So search across sessions still finds the record, once, and every
-- copy names an original that exists. Two statements per table: the first names the heir in
-- every other copy (the heir keeps the old original, so each row's look-up finds the same
-- heir whatever the order of rows), the second makes the heir an original.

-- name: hand_on_prompts_name_heir
UPDATE prompts
SET origin_id = (SELECT min(c.message_id) FROM prompts AS c WHERE c.origin_id = prompts.origin_id)
WHERE origin_id IN (SELECT message_id FROM prompts
                    WHERE session_key = :session_key AND inherited = 0
                      AND message_id >= :from_id)
  AND message_id > (SELECT min(c.message_id) FROM prompts AS c
                    WHERE c.origin_id = prompts.origin_id);

-- name: hand_on_prompts_to_heir
UPDATE prompts SET origin_id = NULL, inherited = 0
WHERE origin_id IN (SELECT message_id FROM prompts
                    WHERE session_key = :session_key AND inherited = 0
                      AND message_id >= :from_id);

-- name: hand_on_observations_name_heir
UPDATE observations
SET origin_id = (SELECT min(c.message_id) FROM observations AS c
                 WHERE c.origin_id = observations.origin_id)
WHERE origin_id IN (SELECT message_id FROM observations
                    WHERE session_key = :session_key AND inherited = 0
                      AND message_id >= :from_id)
  AND message_id > (SELECT min(c.message_id) FROM observations AS c
                    WHERE c.origin_id = observations.origin_id);

-- name: hand_on_observations_to_heir
UPDATE observations SET origin_id = NULL, inherited = 0
WHERE origin_id IN (SELECT message_id FROM observations
                    WHERE session_key = :session_key AND inherited = 0
                      AND message_id >= :from_id);

-- name: hand_on_summaries_name_heir
UPDATE summaries
SET origin_id = (SELECT min(c.message_id) FROM summaries AS c
                 WHERE c.origin_id = summaries.origin_id)
WHERE origin_id IN (SELECT message_id FROM summaries
                    WHERE session_key = :session_key AND inherited = 0
                      AND message_id >= :from_id)
  AND message_id > (SELECT min(c.message_id) FROM summaries AS c
                    WHERE c.origin_id = summaries.origin_id);

-- name: hand_on_summaries_to_heir
UPDATE summaries SET origin_id = NULL, inherited = 0
WHERE origin_id IN (SELECT message_id FROM summaries
                    WHERE session_key = :session_key AND inherited = 0
                      AND message_id >= :from_id);

-- name: reparent_forks
-- Before a session is deleted, its forks take its place below its parent, as of its fork;
-- without a parent they stand on their own. (Their copies of its own records were handed on
-- above; their copies of what it inherited still name originals that exist.)
UPDATE sessions
SET parent_key = (SELECT gone.parent_key FROM sessions AS gone WHERE gone.key = :session_key),
    forked_at = (SELECT gone.forked_at FROM sessions AS gone WHERE gone.key = :session_key)
WHERE parent_key = :session_key;

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
SELECT id, message_id, session_key, number, text, created_at, author, machine
FROM prompts
WHERE session_key = :session_key
ORDER BY number;

-- name: list_observations
-- Time order: message ids ascend in the order the queue accepted the events.
SELECT id, message_id, session_key, kind, title, subtitle, narrative, facts, concepts,
       files_read, files_modified, tool_name, command, exit_code, excerpt, created_at,
       author, machine
FROM observations
WHERE session_key = :session_key
ORDER BY message_id
LIMIT :limit OFFSET :offset;

-- name: count_observations
SELECT count(*) FROM observations WHERE session_key = :session_key;

-- name: list_summaries
SELECT id, message_id, session_key, request, investigated, learned, completed, next_steps,
       files_read, files_edited, notes, created_at, author, machine
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
-- set it); a revert is a change of the session, made :now (updated_at never goes back).
UPDATE sessions
SET prompt_count = (SELECT count(*) FROM prompts WHERE session_key = :session_key),
    title = CASE WHEN title_edited
                      OR EXISTS (SELECT 1 FROM prompts WHERE session_key = :session_key)
                 THEN title END,
    updated_at = max(updated_at, :now)
WHERE key = :session_key;

-- name: transfer_links
-- What a transfer needs to keep parent_key a forest (memq.memory.store.transfer_parent): the
-- source's parent and time of fork, the target's (whether it exists), whether the source's
-- parent is the target or below it, and the target's line up to its root, itself first, as a
-- JSON array. No row when the source does not exist. Each walk is one index probe per level.
WITH RECURSIVE
    above_source (key) AS (
        SELECT parent_key FROM sessions WHERE key = :from_key AND parent_key IS NOT NULL
        UNION
        SELECT s.parent_key FROM sessions AS s JOIN above_source ON s.key = above_source.key
        WHERE s.parent_key IS NOT NULL),
    target_line (key) AS (
        SELECT :to_key
        UNION
        SELECT s.parent_key FROM sessions AS s JOIN target_line ON s.key = target_line.key
        WHERE s.parent_key IS NOT NULL)
SELECT source.parent_key AS source_parent,
       source.forked_at AS source_forked_at,
       target.key IS NOT NULL AS target_exists,
       target.parent_key AS target_parent,
       target.forked_at AS target_forked_at,
       EXISTS (SELECT 1 FROM above_source WHERE key = :to_key) AS source_below_target,
       (SELECT json_group_array(key) FROM target_line) AS target_line
FROM sessions AS source
LEFT JOIN sessions AS target ON target.key = :to_key
WHERE source.key = :from_key;

-- name: transfer_session_row
-- The target session: created from the source when it is new; when it exists, its own
-- values win and the source only fills gaps and widens the time span. Its parent and time
-- of fork are :parent_key and :forked_at (transfer_parent); a transfer changes it :now.
INSERT INTO sessions (key, assistant, external_id, project, cwd, title, title_edited,
                      prompt_count, parent_key, forked_at, started_at, ended_at, updated_at,
                      created_at)
SELECT :to_key, :assistant, :external_id, project, cwd, title, title_edited, prompt_count,
       :parent_key, :forked_at, started_at, ended_at, max(updated_at, :now), created_at
FROM sessions
WHERE key = :from_key
ON CONFLICT (key) DO UPDATE
SET project = coalesce(sessions.project, excluded.project),
    cwd = coalesce(sessions.cwd, excluded.cwd),
    title = coalesce(sessions.title, excluded.title),
    parent_key = excluded.parent_key,
    forked_at = excluded.forked_at,
    started_at = min(sessions.started_at, excluded.started_at),
    updated_at = max(sessions.updated_at, excluded.updated_at);

-- Records both sessions hold (origin_id, the copy_origins migration): an original and a copy
-- of it, or two copies of one original. Each ends up once in the target, as an original if
-- either was.

-- name: transfer_drop_held_prompts
-- The source's copies of what the target holds already (the original, or a copy of it).
DELETE FROM prompts
WHERE session_key = :from_key AND origin_id IS NOT NULL
  AND (EXISTS (SELECT 1 FROM prompts AS t
               WHERE t.message_id = prompts.origin_id AND t.session_key = :to_key)
       OR EXISTS (SELECT 1 FROM prompts AS t
                  WHERE t.origin_id = prompts.origin_id AND t.session_key = :to_key));

-- name: transfer_drop_held_observations
DELETE FROM observations
WHERE session_key = :from_key AND origin_id IS NOT NULL
  AND (EXISTS (SELECT 1 FROM observations AS t
               WHERE t.message_id = observations.origin_id AND t.session_key = :to_key)
       OR EXISTS (SELECT 1 FROM observations AS t
                  WHERE t.origin_id = observations.origin_id AND t.session_key = :to_key));

-- name: transfer_drop_held_summaries
DELETE FROM summaries
WHERE session_key = :from_key AND origin_id IS NOT NULL
  AND (EXISTS (SELECT 1 FROM summaries AS t
               WHERE t.message_id = summaries.origin_id AND t.session_key = :to_key)
       OR EXISTS (SELECT 1 FROM summaries AS t
                  WHERE t.origin_id = summaries.origin_id AND t.session_key = :to_key));

-- name: transfer_take_originals_prompts
-- The source's originals of which the target holds a copy: the original leaves the source
-- (returned), and the target's copy becomes it (transfer_restore_*): same message id, so
-- other copies still name it, in the copy's place, so prompt numbers stay.
DELETE FROM prompts
WHERE session_key = :from_key AND inherited = 0
  AND EXISTS (SELECT 1 FROM prompts AS t
              WHERE t.origin_id = prompts.message_id AND t.session_key = :to_key)
RETURNING message_id;

-- name: transfer_restore_prompts
-- :originals: a JSON array of the message ids transfer_take_originals_* returned.
UPDATE prompts SET message_id = origin_id, origin_id = NULL, inherited = 0
WHERE session_key = :to_key AND origin_id IN (SELECT value FROM json_each(:originals));

-- name: transfer_take_originals_observations
DELETE FROM observations
WHERE session_key = :from_key AND inherited = 0
  AND EXISTS (SELECT 1 FROM observations AS t
              WHERE t.origin_id = observations.message_id AND t.session_key = :to_key)
RETURNING message_id;

-- name: transfer_restore_observations
UPDATE observations SET message_id = origin_id, origin_id = NULL, inherited = 0
WHERE session_key = :to_key AND origin_id IN (SELECT value FROM json_each(:originals));

-- name: transfer_take_originals_summaries
DELETE FROM summaries
WHERE session_key = :from_key AND inherited = 0
  AND EXISTS (SELECT 1 FROM summaries AS t
              WHERE t.origin_id = summaries.message_id AND t.session_key = :to_key)
RETURNING message_id;

-- name: transfer_restore_summaries
UPDATE summaries SET message_id = origin_id, origin_id = NULL, inherited = 0
WHERE session_key = :to_key AND origin_id IN (SELECT value FROM json_each(:originals));

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
-- The source's forks now descend from the target, but for one on the target's own line
-- (:target_line, transfer_links): the target descends from it, so it takes the source's
-- place below the source's parent instead (standing on its own without one).
UPDATE sessions
SET parent_key = CASE WHEN key IN (SELECT value FROM json_each(:target_line))
                      THEN :source_parent ELSE :to_key END,
    forked_at = CASE WHEN key IN (SELECT value FROM json_each(:target_line))
                     THEN :source_forked_at ELSE forked_at END
WHERE parent_key = :from_key;

-- name: transfer_recount
UPDATE sessions
SET prompt_count = (SELECT count(*) FROM prompts WHERE session_key = :to_key)
WHERE key = :to_key;

-- name: first_prompt_text
-- And whether the session inherited it (a fork's title from it is marked as a fork's).
SELECT text, inherited FROM prompts WHERE session_key = :session_key ORDER BY number LIMIT 1;

-- name: set_title
-- :edited is 1 for a title the user gave, 0 for the first prompt's (a reset). A new title
-- is a change of the session, made :now.
UPDATE sessions
SET title = :title, title_edited = :edited, updated_at = max(updated_at, :now)
WHERE key = :session_key;

-- name: session_exists
SELECT 1 FROM sessions WHERE key = :session_key;

-- name: session_has_message
-- Whether message :message_id is the session's: a record of the session came from it, or it
-- is one of the session's queue rows (not processed yet, failed, or kept after processing).
SELECT EXISTS (SELECT 1 FROM prompts
               WHERE message_id = :message_id AND session_key = :session_key)
    OR EXISTS (SELECT 1 FROM observations
               WHERE message_id = :message_id AND session_key = :session_key)
    OR EXISTS (SELECT 1 FROM summaries
               WHERE message_id = :message_id AND session_key = :session_key)
    OR EXISTS (SELECT 1 FROM pending_messages
               WHERE id = :message_id AND session_id = :session_key) AS found;

-- name: list_sessions_of_assistant
-- list_sessions for the sessions of one assistant, :assistant: index sessions_assistant
-- (0014) read newest first, no sort.
SELECT key, assistant, external_id, project, cwd, title, title_edited, prompt_count,
       (SELECT count(*) FROM observations WHERE session_key = sessions.key)
           AS observation_count,
       (SELECT count(*) FROM summaries WHERE session_key = sessions.key) AS summary_count,
       parent_key, forked_at, started_at, ended_at, updated_at,
       (SELECT last_access_at FROM session_activity WHERE session_key = sessions.key)
           AS last_access_at
FROM sessions
WHERE assistant = :assistant
ORDER BY updated_at DESC, key DESC
LIMIT :limit OFFSET :offset;

-- name: count_sessions_of_assistant
SELECT count(*) FROM sessions WHERE assistant = :assistant;

-- name: list_sessions_by_assistant
-- list_sessions for the sessions of the assistants in :assistants (a JSON array of names, more
-- than one): sessions_updated walked newest first, stopping at the page. The unary + keeps
-- SQLite from reading sessions_assistant (0014) instead and sorting every session of a
-- common assistant (54 ms against 0.2 ms for 190,000 of 200,000 sessions, no ANALYZE).
SELECT key, assistant, external_id, project, cwd, title, title_edited, prompt_count,
       (SELECT count(*) FROM observations WHERE session_key = sessions.key)
           AS observation_count,
       (SELECT count(*) FROM summaries WHERE session_key = sessions.key) AS summary_count,
       parent_key, forked_at, started_at, ended_at, updated_at,
       (SELECT last_access_at FROM session_activity WHERE session_key = sessions.key)
           AS last_access_at
FROM sessions
WHERE +assistant IN (SELECT value FROM json_each(:assistants))
ORDER BY updated_at DESC, key DESC
LIMIT :limit OFFSET :offset;

-- name: count_sessions_by_assistant
-- Index sessions_assistant (0014).
SELECT count(*) FROM sessions WHERE assistant IN (SELECT value FROM json_each(:assistants));

-- name: list_sessions_by_author
-- list_sessions for the sessions holding records of their own (not a fork's copies) by the
-- people in :authors (a JSON array of names; memq.memory.origin), of the assistants in
-- :assistants too when that is not NULL: the sessions come from the partial indexes
-- *_author (0018), and only they are sorted.
SELECT key, assistant, external_id, project, cwd, title, title_edited, prompt_count,
       (SELECT count(*) FROM observations WHERE session_key = sessions.key)
           AS observation_count,
       (SELECT count(*) FROM summaries WHERE session_key = sessions.key) AS summary_count,
       parent_key, forked_at, started_at, ended_at, updated_at,
       (SELECT last_access_at FROM session_activity WHERE session_key = sessions.key)
           AS last_access_at
FROM sessions
WHERE key IN (SELECT session_key FROM prompts
              WHERE author IN (SELECT value FROM json_each(:authors)) AND inherited = 0
              UNION
              SELECT session_key FROM observations
              WHERE author IN (SELECT value FROM json_each(:authors)) AND inherited = 0
              UNION
              SELECT session_key FROM summaries
              WHERE author IN (SELECT value FROM json_each(:authors)) AND inherited = 0)
  AND (:assistants IS NULL OR assistant IN (SELECT value FROM json_each(:assistants)))
ORDER BY updated_at DESC, key DESC
LIMIT :limit OFFSET :offset;

-- name: count_sessions_by_author
SELECT count(*) FROM sessions
WHERE key IN (SELECT session_key FROM prompts
              WHERE author IN (SELECT value FROM json_each(:authors)) AND inherited = 0
              UNION
              SELECT session_key FROM observations
              WHERE author IN (SELECT value FROM json_each(:authors)) AND inherited = 0
              UNION
              SELECT session_key FROM summaries
              WHERE author IN (SELECT value FROM json_each(:authors)) AND inherited = 0)
  AND (:assistants IS NULL OR assistant IN (SELECT value FROM json_each(:assistants)));
