-- The durable queue: one row per accepted hook event.
-- Times are integer milliseconds since the Unix epoch (UTC).

CREATE TABLE pending_messages (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused, even after pruning
    session_id   TEXT    NOT NULL,
    kind         TEXT    NOT NULL,                   -- observation, prompt, summarize, ...
    payload      TEXT,                               -- JSON; NULL once processed
    dedupe_key   TEXT,                               -- e.g. Claude Code's tool_use_id
    status       TEXT    NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'processing', 'processed', 'failed')),
    attempts     INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    available_at INTEGER NOT NULL,                   -- not claimed before (retry backoff)
    lease_until  INTEGER,                            -- set while processing
    created_at   INTEGER NOT NULL,                   -- when the event happened
    started_at   INTEGER,                            -- start of the latest attempt
    finished_at  INTEGER,                            -- when it became processed or failed
    last_error   TEXT
) STRICT;

-- A session's next message, and backlog counts, without touching processed history.
CREATE INDEX pending_messages_next
    ON pending_messages (session_id, id) WHERE status = 'pending';

-- The lease watchdog's scan.
CREATE INDEX pending_messages_leases
    ON pending_messages (lease_until) WHERE status = 'processing';

-- A hook that retries or fires twice gets the original row back.
CREATE UNIQUE INDEX pending_messages_dedupe
    ON pending_messages (session_id, dedupe_key) WHERE dedupe_key IS NOT NULL;

-- Retention prunes settled rows by age, and failed rows are listed, without a full scan.
CREATE INDEX pending_messages_processed
    ON pending_messages (finished_at) WHERE status = 'processed';
CREATE INDEX pending_messages_failed
    ON pending_messages (finished_at) WHERE status = 'failed';
