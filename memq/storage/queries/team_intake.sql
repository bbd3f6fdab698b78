-- The team server's intake (memq.team.intake). Every statement runs on both backends as
-- written. Times are epoch milliseconds of the queue's clock.

-- name: claim_session
-- The first key to send a session owns it: a later claim inserts nothing (and writes
-- nothing: no dead row per event on PostgreSQL). session_owner then says who owns it.
INSERT INTO team_sessions (session_id, key_id, created_at)
VALUES (:session_id, :key_id, :now)
ON CONFLICT (session_id) DO NOTHING;

-- name: session_owner
SELECT key_id FROM team_sessions WHERE session_id = :session_id;
