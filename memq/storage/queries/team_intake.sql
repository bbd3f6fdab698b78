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

-- name: take_over_session
-- Key rotation: a session whose owning key was revoked passes to the live key of the same
-- name (the same person's new key), so their open sessions keep being accepted. Another
-- name's key, or a live owner, takes over nothing.
UPDATE team_sessions SET key_id = :key_id
WHERE session_id = :session_id
  AND key_id IN (
      SELECT key_id FROM api_keys
      WHERE name = :name AND revoked_at IS NOT NULL AND key_id <> :key_id
  );
