-- The recap of one session after a compaction (memq.memory.recap): its project and title,
-- its latest summary and the files its tool calls changed. The prompts and observations
-- since that summary are the session's history (queries/history.sql). Records a fork
-- inherited are part of its recap, as of its history: nothing filters on inherited.
-- Times are integer milliseconds since the Unix epoch.

-- name: recap_session
-- The session's project and title; no row when memory does not know the session.
SELECT project, title
FROM sessions
WHERE key = :session_key;

-- name: recap_summary
-- The session's latest summary (none: no row), through index summaries_session (0002).
SELECT id, message_id, session_key, request, investigated, learned, completed, next_steps,
       files_read, files_edited, notes, created_at
FROM summaries
WHERE session_key = :session_key
ORDER BY message_id DESC
LIMIT 1;

-- name: recap_files
-- The files the session's newest :scan observations changed, each once, the most recently
-- changed first: a walk back through index observations_session (0002) that stops at
-- :scan rows, however long the session.
SELECT f.value AS path, max(o.message_id) AS last_change
FROM (SELECT message_id, files_modified
      FROM observations
      WHERE session_key = :session_key
      ORDER BY message_id DESC
      LIMIT :scan) AS o,
     json_each(o.files_modified) AS f
WHERE f.type = 'text' AND f.value <> ''
GROUP BY f.value
ORDER BY last_change DESC
LIMIT :limit;
