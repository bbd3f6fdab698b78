-- PostgreSQL forms of fork.sql's statements that differ (memq.storage.sqlfile overlays them
-- by name).

-- name: fork_recent_resume
-- strpos for SQLite's instr.
SELECT EXISTS (SELECT 1 FROM session_resumes
               WHERE cwd = :cwd AND resumed_at >= :since AND session_key <> :child
                 AND substr(session_key, 1, strpos(session_key, ':'))
                     = substr(:child, 1, strpos(:child, ':'))) AS found;

-- name: fork_find_parent
-- strpos for SQLite's instr.
SELECT r.session_key
FROM session_resumes AS r
WHERE r.cwd = :cwd
  AND r.resumed_at >= :since
  AND r.session_key <> :child
  AND substr(r.session_key, 1, strpos(r.session_key, ':'))
      = substr(:child, 1, strpos(:child, ':'))
  AND EXISTS (SELECT 1 FROM sessions WHERE key = r.session_key)
  AND NOT EXISTS (SELECT 1 FROM pending_messages AS later
                  WHERE later.id > r.message_id AND later.session_id = r.session_key
                    AND later.kind <> 'unsubscribed')
ORDER BY r.resumed_at DESC, r.message_id DESC
LIMIT 1;

-- name: fork_reserve_ids
-- The subqueries in FROM need aliases on PostgreSQL.
INSERT INTO pending_messages (session_id, kind, payload, dedupe_key, status, attempts,
                              available_at, created_at, finished_at)
SELECT :child, 'event', NULL, 'fork:' || message_id, 'processed', 0, created_at, created_at,
       :now
FROM (SELECT message_id, min(created_at) AS created_at
      FROM (SELECT message_id, created_at FROM prompts WHERE session_key = :parent
            UNION ALL
            SELECT message_id, created_at FROM observations WHERE session_key = :parent
            UNION ALL
            SELECT message_id, created_at FROM summaries WHERE session_key = :parent)
           AS records
      GROUP BY message_id) AS messages
ORDER BY message_id;
