-- Sessions as a user manages them: forks, edited titles, per-session settings and the time
-- each was last used. Times are integer milliseconds since the Unix epoch (UTC).

-- A fork records the session it was forked from and when. It starts with a copy of its
-- parent's memory; the copied records are marked ``inherited`` so that search and the
-- SessionStart context, which look across sessions, show each record once (the parent's).
ALTER TABLE sessions ADD COLUMN parent_key TEXT;
ALTER TABLE sessions ADD COLUMN forked_at INTEGER;
-- A title set by the user, which a revert keeps (a title from the first prompt goes with it).
ALTER TABLE sessions ADD COLUMN title_edited INTEGER NOT NULL DEFAULT 0
    CHECK (title_edited IN (0, 1));

CREATE INDEX sessions_parent ON sessions (parent_key) WHERE parent_key IS NOT NULL;

ALTER TABLE prompts ADD COLUMN inherited INTEGER NOT NULL DEFAULT 0 CHECK (inherited IN (0, 1));
ALTER TABLE observations ADD COLUMN inherited INTEGER NOT NULL DEFAULT 0
    CHECK (inherited IN (0, 1));
ALTER TABLE summaries ADD COLUMN inherited INTEGER NOT NULL DEFAULT 0
    CHECK (inherited IN (0, 1));

-- Per-session settings (memq.worker.session_config): a session may be configured before
-- memory has a row for it (its events are still queued), so there is no reference to
-- sessions; deleting a session deletes its settings. Values are JSON text.
CREATE TABLE session_config (
    session_key TEXT    NOT NULL,
    name        TEXT    NOT NULL CHECK (name IN ('processor', 'model', 'paused')),
    value       TEXT    NOT NULL CHECK (json_valid(value)),
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (session_key, name)
) STRICT, WITHOUT ROWID;

-- When each session was last used (an event accepted for it, or a read of it through the
-- API). Written in batches (memq.worker.activity), not once per event, and kept apart from
-- ``sessions``: an event is accepted before memory has a row for its session.
CREATE TABLE session_activity (
    session_key    TEXT    PRIMARY KEY,
    last_access_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
