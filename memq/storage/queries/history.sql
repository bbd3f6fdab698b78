-- A session's history for prompting (memq.memory.history): its newest prompts and
-- observations after its last summary. Each read walks an index backwards from the newest
-- record and stops at :limit, so a long session costs no more than a short one. Records a
-- fork inherited from its parent are part of its history: nothing filters on inherited.

-- name: history_start
-- The session's project and its last summary's message id (NULL when it has none). No row
-- when memory does not know the session.
SELECT project,
       (SELECT max(message_id) FROM summaries WHERE session_key = :session_key)
           AS after_summary
FROM sessions
WHERE key = :session_key;

-- name: history_prompts
-- Newest first; through prompts_session (migration 0007).
SELECT id, message_id, session_key, number, text, created_at
FROM prompts
WHERE session_key = :session_key AND message_id > :after
ORDER BY message_id DESC
LIMIT :limit;

-- name: history_observations
-- Newest first; through observations_session.
SELECT id, message_id, session_key, kind, title, subtitle, narrative, facts, concepts,
       files_read, files_modified, tool_name, command, exit_code, excerpt, created_at
FROM observations
WHERE session_key = :session_key AND message_id > :after
ORDER BY message_id DESC
LIMIT :limit;

-- name: history_total
-- How many prompts and observations follow the last summary: counted in the covering
-- indexes alone, no record is read. A summary at each Stop keeps this span one turn long.
SELECT (SELECT count(*) FROM prompts
        WHERE session_key = :session_key AND message_id > :after)
     + (SELECT count(*) FROM observations
        WHERE session_key = :session_key AND message_id > :after) AS total;
