-- Issue 17: the team server's API keys, its audit log and each key's use per hour
-- (memq.team.keys). A token is `memq_<key_id>_<secret>`; only the SHA-256 of its secret is
-- kept (hex), never the secret or the token. Times are epoch milliseconds.
--
-- A key may use the projects (repository identities, memq.team.identity) in `projects`, a
-- JSON list of strings, or every project when `all_projects` is 1 (then `projects` is []).
-- A revoked key keeps its row (the audit log and the use counts name it); its name may be
-- given to a new key.
CREATE TABLE api_keys (
    key_id       TEXT    PRIMARY KEY,
    name         TEXT    NOT NULL,
    secret_hash  TEXT    NOT NULL,
    projects     TEXT    NOT NULL DEFAULT '[]'
                 CHECK (json_valid(projects) AND json_type(projects) = 'array'),
    all_projects INTEGER NOT NULL DEFAULT 0 CHECK (all_projects IN (0, 1)),
    created_at   INTEGER NOT NULL,
    revoked_at   INTEGER,
    last_used_at INTEGER,
    CHECK (all_projects = 0 OR projects = '[]')
) STRICT;

-- One unrevoked key per name: `memq keys revoke NAME` names exactly one.
CREATE UNIQUE INDEX api_keys_name ON api_keys (name) WHERE revoked_at IS NULL;

-- What was done with keys: create, revoke, refused (an authentication that failed: the
-- key_id when the token had one, never any part of the secret), delete (through the team
-- API). `target` is what it was done to (a project, a session), `detail` why or how.
CREATE TABLE audit_log (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    at       INTEGER NOT NULL,
    key_id   TEXT,
    key_name TEXT,
    action   TEXT    NOT NULL CHECK (action IN ('create', 'revoke', 'refused', 'delete')),
    target   TEXT,
    detail   TEXT
) STRICT;

CREATE INDEX audit_log_at ON audit_log (at);

-- Requests each key made, per hour (`hour`: the epoch ms at the hour's start): one row
-- per key and hour, counted up, not a row per request.
CREATE TABLE key_use (
    key_id   TEXT    NOT NULL,
    hour     INTEGER NOT NULL,
    requests INTEGER NOT NULL CHECK (requests >= 0),
    PRIMARY KEY (key_id, hour)
) STRICT, WITHOUT ROWID;
