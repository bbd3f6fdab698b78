-- When each session was last used (memq.worker.activity). Times are epoch milliseconds.

-- name: upsert_last_access
-- One row per session; run with executemany, one batch per flush. max() keeps the newest
-- time whatever order flushes commit in, so a late or retried flush never moves it back.
INSERT INTO session_activity (session_key, last_access_at)
VALUES (:session_key, :last_access_at)
ON CONFLICT (session_key) DO UPDATE
    SET last_access_at = max(last_access_at, excluded.last_access_at)

-- name: delete_last_access
DELETE FROM session_activity WHERE session_key = :session_key
