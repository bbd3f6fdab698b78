-- Whether the model uses memory (memq.memory.usage): what each injection of context showed
-- the model, and what the model fetched later through the MCP tools. Written in batches
-- through the queue's writer, pruned by age and by count; times are epoch milliseconds.
-- References are record references as the model sees them ("#12", "#S3", "#P7": see
-- memq.memory.refs), kept as JSON arrays of text.

-- One context given to a session: at its start (SessionStart's source: startup, resume,
-- clear, compact) or with a prompt (per-prompt recall). ``project`` is NULL outside any.
CREATE TABLE usage_injections (
    id          INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    session_key TEXT    NOT NULL,
    project     TEXT,
    source      TEXT    NOT NULL
        CHECK (source IN ('startup', 'resume', 'clear', 'compact', 'prompt')),
    refs        TEXT    NOT NULL CHECK (json_valid(refs) AND json_type(refs) = 'array'),
    tokens      INTEGER NOT NULL CHECK (tokens >= 0)
) STRICT;

-- The newest injection of a project attributes a fetch to its session; a session's
-- injections in order delimit what follows each (the figures).
CREATE INDEX usage_injections_project ON usage_injections (project, at);
CREATE INDEX usage_injections_session ON usage_injections (session_key, at);
CREATE INDEX usage_injections_at ON usage_injections (at);  -- pruning by age

-- One call of an MCP tool that read memory through the daemon. ``session_key`` is the
-- session it is attributed to (NULL: none); ``refs`` the records it fetched by name (the
-- records of get_observations, the anchor of a timeline), ``results`` how many records its
-- answer listed, ``query`` the words searched for.
CREATE TABLE usage_fetches (
    id          INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    session_key TEXT,
    project     TEXT,
    tool        TEXT    NOT NULL
        CHECK (tool IN ('search', 'timeline', 'get_observations', 'recent_context')),
    refs        TEXT    NOT NULL CHECK (json_valid(refs) AND json_type(refs) = 'array'),
    results     INTEGER NOT NULL CHECK (results >= 0),
    query       TEXT
) STRICT;

CREATE INDEX usage_fetches_session ON usage_fetches (session_key, at)
    WHERE session_key IS NOT NULL;
CREATE INDEX usage_fetches_at ON usage_fetches (at);
