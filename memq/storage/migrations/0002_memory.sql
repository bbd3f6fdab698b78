-- Memory: sessions, their prompts, and what processors made of their messages.
-- Times are integer milliseconds since the Unix epoch (UTC); a record's created_at is when its
-- event happened (the message's created_at), not when it was processed. JSON lists are TEXT.
-- Every record carries the id of the message it came from under a UNIQUE constraint, so a
-- message replayed after a crash can never add its memory twice. message_id does not reference
-- pending_messages: processed queue rows are pruned, memory stays.

CREATE TABLE sessions (
    key          TEXT    PRIMARY KEY,               -- '<assistant>:<assistant session id>'
    assistant    TEXT    NOT NULL,                  -- e.g. 'claude-code'
    external_id  TEXT    NOT NULL,                  -- the assistant's own session id
    project      TEXT,
    cwd          TEXT,                              -- the latest working directory seen
    title        TEXT,                              -- from the first prompt
    prompt_count INTEGER NOT NULL DEFAULT 0 CHECK (prompt_count >= 0),
    started_at   INTEGER NOT NULL,                  -- its first event
    ended_at     INTEGER,                           -- NULL while open; SessionStart re-opens
    updated_at   INTEGER NOT NULL,                  -- its latest event
    created_at   INTEGER NOT NULL                   -- when this row was written
) STRICT;

-- The session list, newest activity first.
CREATE INDEX sessions_updated ON sessions (updated_at, key);

CREATE TABLE prompts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id  INTEGER NOT NULL UNIQUE,
    session_key TEXT    NOT NULL REFERENCES sessions (key),
    number      INTEGER NOT NULL CHECK (number >= 1),  -- 1, 2, ... within the session
    text        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    UNIQUE (session_key, number)
) STRICT;

CREATE TABLE observations (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id     INTEGER NOT NULL UNIQUE,
    session_key    TEXT    NOT NULL REFERENCES sessions (key),
    kind           TEXT    NOT NULL CHECK (kind IN ('change', 'discovery', 'command', 'search',
                                                    'web', 'decision', 'bugfix', 'feature',
                                                    'refactor', 'other')),
    title          TEXT    NOT NULL,
    subtitle       TEXT    NOT NULL,
    narrative      TEXT    NOT NULL,
    facts          TEXT    NOT NULL CHECK (json_type(facts) = 'array'),
    concepts       TEXT    NOT NULL CHECK (json_type(concepts) = 'array'),
    files_read     TEXT    NOT NULL CHECK (json_type(files_read) = 'array'),
    files_modified TEXT    NOT NULL CHECK (json_type(files_modified) = 'array'),
    tool_name      TEXT,
    command        TEXT,
    exit_code      INTEGER,
    excerpt        TEXT    NOT NULL,
    created_at     INTEGER NOT NULL
) STRICT;

-- A session's observations in order, and those after its last summary (message ids ascend
-- in the order the queue accepted the events).
CREATE INDEX observations_session ON observations (session_key, message_id);

CREATE TABLE summaries (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id   INTEGER NOT NULL UNIQUE,
    session_key  TEXT    NOT NULL REFERENCES sessions (key),
    request      TEXT    NOT NULL,
    investigated TEXT    NOT NULL,
    learned      TEXT    NOT NULL,
    completed    TEXT    NOT NULL,
    next_steps   TEXT    NOT NULL,
    files_read   TEXT    NOT NULL CHECK (json_type(files_read) = 'array'),
    files_edited TEXT    NOT NULL CHECK (json_type(files_edited) = 'array'),
    notes        TEXT    NOT NULL,
    created_at   INTEGER NOT NULL
) STRICT;

CREATE INDEX summaries_session ON summaries (session_key, message_id);
