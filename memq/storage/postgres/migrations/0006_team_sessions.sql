-- SQLite's 0017_team_sessions (memq/storage/migrations), whose comments say what it is for:
-- the API key that owns each session the team server took in.
CREATE TABLE team_sessions (
    session_id TEXT   PRIMARY KEY,
    key_id     TEXT   NOT NULL,
    created_at BIGINT NOT NULL
);
