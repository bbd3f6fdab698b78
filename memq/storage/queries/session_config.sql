-- Per-session settings (memq.worker.session_config). The daemon reads them all once at start
-- and keeps them in memory; every change goes through it. Values are JSON text.

-- name: all_config
SELECT session_key, name, value FROM session_config ORDER BY session_key, name;

-- name: set_config
INSERT INTO session_config (session_key, name, value, updated_at)
VALUES (:session_key, :name, :value, :now)
ON CONFLICT (session_key, name) DO UPDATE
SET value = excluded.value, updated_at = excluded.updated_at;

-- name: delete_config
DELETE FROM session_config WHERE session_key = :session_key AND name = :name;

-- name: delete_session_config
DELETE FROM session_config WHERE session_key = :session_key;

-- name: paused_sessions
-- For ``memq status`` when no daemon answers.
SELECT session_key FROM session_config
WHERE name = 'paused' AND value = 'true'
ORDER BY session_key;

-- name: session_known
-- Whether memq knows the session a setting is for: a memory row, or any queue row (asked
-- through the queue's partial indexes, as fork_child_known explains: a processed row without
-- a dedupe key is the one left out, and its session has a memory row).
SELECT EXISTS (SELECT 1 FROM sessions WHERE key = :session_key)
    OR EXISTS (SELECT 1 FROM pending_messages
               WHERE session_id = :session_key AND dedupe_key IS NOT NULL)
    OR EXISTS (SELECT 1 FROM pending_messages
               WHERE session_id = :session_key AND status = 'pending')
    OR EXISTS (SELECT 1 FROM pending_messages
               WHERE status = 'processing' AND session_id = :session_key)
    OR EXISTS (SELECT 1 FROM pending_messages
               WHERE status = 'failed' AND session_id = :session_key)
    AS known;
