-- Issue 17: which API key owns each session the team server took in (memq.team.intake).
-- The first key to send a session's event owns it; another key's events for it are
-- refused, so one key cannot add to (or pass itself off in) someone else's session.
-- `key_id` is api_keys.key_id; kept when the key is revoked (the session stays its).
-- Times are epoch milliseconds.
CREATE TABLE team_sessions (
    session_id TEXT    PRIMARY KEY,
    key_id     TEXT    NOT NULL,
    created_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
