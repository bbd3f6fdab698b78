-- Indexes of the SessionStart context (memq.memory.context): a project's sessions, most
-- recently active first, and a session's newest observations and summaries, each read through
-- an index with a LIMIT instead of a scan and a sort.

CREATE INDEX sessions_project ON sessions (project, updated_at, key);

CREATE INDEX observations_session_time ON observations (session_key, created_at, message_id);

CREATE INDEX summaries_session_time ON summaries (session_key, created_at, message_id);
