-- Every statement the context builder runs, all reads on its own connection. A project's
-- newest records are merged a few sessions at a time, most recently active session first
-- (of the sessions holding such records, so that sessions without any cost no round trip):
-- a record's created_at is never later than its session's updated_at (every message that
-- writes memory moves updated_at to at least its own time), so once the records kept are
-- all newer than the next session's updated_at, no later session can add one. Every
-- statement reads through an index with a LIMIT; none scans a table. The records a fork
-- inherited (a copy of its parent's) are left out, so that each shows once, as the parent's:
-- every read of records goes through an index of the sessions' own records (migration 0006,
-- partial on inherited = 0). Times are integer milliseconds since the Unix epoch.

-- name: sessions_with_observations
-- One page of the project's sessions that hold observations of their own, most recently
-- active first, after the (updated_at, key) cursor of the previous page: the sessions
-- newest_observations merges. Index sessions_project (0004), and one probe of
-- observations_own_time (0006) per session. :assistants (a JSON array, NULL for all) keeps
-- only those assistants' sessions; :authors (the same) only sessions holding those people's
-- records of their own (a probe of observations_author, 0018, per session).
SELECT key, updated_at
FROM sessions
WHERE project = :project
  AND key IS NOT :exclude_session
  AND (:assistants IS NULL OR assistant IN (SELECT value FROM json_each(:assistants)))
  AND (updated_at, key) < (:before_updated_at, :before_key)
  AND EXISTS (SELECT 1 FROM observations WHERE session_key = sessions.key AND inherited = 0)
  AND (:authors IS NULL
       OR EXISTS (SELECT 1 FROM observations
                  WHERE author IN (SELECT value FROM json_each(:authors))
                    AND session_key = sessions.key AND inherited = 0))
ORDER BY updated_at DESC, key DESC
LIMIT :limit;

-- name: sessions_with_summaries
-- The same for the sessions that hold summaries of their own (a probe of summaries_own_time
-- each).
SELECT key, updated_at
FROM sessions
WHERE project = :project
  AND key IS NOT :exclude_session
  AND (:assistants IS NULL OR assistant IN (SELECT value FROM json_each(:assistants)))
  AND (updated_at, key) < (:before_updated_at, :before_key)
  AND EXISTS (SELECT 1 FROM summaries WHERE session_key = sessions.key AND inherited = 0)
  AND (:authors IS NULL
       OR EXISTS (SELECT 1 FROM summaries
                  WHERE author IN (SELECT value FROM json_each(:authors))
                    AND session_key = sessions.key AND inherited = 0))
ORDER BY updated_at DESC, key DESC
LIMIT :limit;

-- name: newest_observations
-- The newest observations of the sessions in :session_keys (a JSON array), newest first:
-- each session's own newest :limit through index observations_own_time (0006), only
-- those after (:after_created_at, :after_message_id) (-1, -1 while the merge keeps fewer
-- than it wants), then the newest :limit of them all (a sort of at most sessions x :limit
-- rows). :authors (a JSON array, NULL for all) keeps those people's records only (a session
-- may hold several people's after a transfer). :exclude_author with :exclude_machines (a JSON
-- array, NULL for none) leaves out that person's records from those machines: a team server's
-- context for a laptop that has its own records already, under each name it went by
-- (memq.team.team_reads).
SELECT o.id, o.message_id, o.session_key, o.kind, o.title, o.files_read, o.files_modified,
       o.created_at, o.author, o.machine
FROM json_each(:session_keys) AS s
JOIN observations AS o
  ON o.id IN (SELECT id FROM observations
              WHERE session_key = s.value
                AND inherited = 0
                AND (created_at, message_id) > (:after_created_at, :after_message_id)
                AND (:authors IS NULL OR author IN (SELECT value FROM json_each(:authors)))
                AND (:exclude_machines IS NULL
                     OR author IS NOT :exclude_author OR machine IS NULL
                     OR machine NOT IN (SELECT value FROM json_each(:exclude_machines)))
              ORDER BY created_at DESC, message_id DESC
              LIMIT :limit)
ORDER BY o.created_at DESC, o.message_id DESC
LIMIT :limit;

-- name: newest_summaries
-- The same for summaries, through index summaries_own_time (0006), with their session's
-- title (which names a summary without a request).
SELECT u.id, u.message_id, u.session_key, u.request, u.investigated, u.learned, u.completed,
       u.next_steps, u.files_read, u.files_edited, u.notes, u.created_at, u.author, u.machine,
       (SELECT title FROM sessions WHERE key = u.session_key) AS session_title
FROM json_each(:session_keys) AS s
JOIN summaries AS u
  ON u.id IN (SELECT id FROM summaries
              WHERE session_key = s.value
                AND inherited = 0
                AND (created_at, message_id) > (:after_created_at, :after_message_id)
                AND (:authors IS NULL OR author IN (SELECT value FROM json_each(:authors)))
                AND (:exclude_machines IS NULL
                     OR author IS NOT :exclude_author OR machine IS NULL
                     OR machine NOT IN (SELECT value FROM json_each(:exclude_machines)))
              ORDER BY created_at DESC, message_id DESC
              LIMIT :limit)
ORDER BY u.created_at DESC, u.message_id DESC
LIMIT :limit;
