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
