-- Forks (memq.memory.fork, memq.worker.forks): what the automatic link of a forked session
-- to its parent looks up, and the SessionStart context's indexes without inherited records.
-- Times are integer milliseconds since the Unix epoch (UTC).

-- Claude Code's --fork-session sends SessionStart (source "resume") with the parent's id and
-- every later event with the new one. The link looks for such a SessionStart, but a queue row
-- loses its payload once processed (within milliseconds), so the trigger below keeps what the
-- link needs when the row is inserted, whoever inserts it (the daemon or the hook's
-- fallback): each session's latest resuming SessionStart, for a day (far longer than the
-- link's window). An insert skipped as a duplicate fires no trigger.
CREATE TABLE session_resumes (
    session_key TEXT    PRIMARY KEY,
    cwd         TEXT    NOT NULL,
    message_id  INTEGER NOT NULL,  -- its queue row
    resumed_at  INTEGER NOT NULL   -- the row's created_at
) STRICT, WITHOUT ROWID;

-- The link's look-up: the newest resumes in one directory.
CREATE INDEX session_resumes_cwd ON session_resumes (cwd, resumed_at);

-- Only rows of kind 'event' (SessionStart among them) get past the first test, so other
-- messages pay one comparison. CASE, not AND, guards json_extract: a payload that is not
-- JSON must not fail the insert.
CREATE TRIGGER pending_messages_resume AFTER INSERT ON pending_messages
WHEN new.kind = 'event'
 AND CASE WHEN json_valid(new.payload)
          THEN json_extract(new.payload, '$.hook_event_name') = 'SessionStart'
               AND json_extract(new.payload, '$.source') = 'resume'
               AND json_type(new.payload, '$.cwd') = 'text'
     END
BEGIN
    DELETE FROM session_resumes WHERE resumed_at < new.created_at - 86400000;
    INSERT INTO session_resumes (session_key, cwd, message_id, resumed_at)
    VALUES (new.session_id, json_extract(new.payload, '$.cwd'), new.id, new.created_at)
    ON CONFLICT (session_key) DO UPDATE
    SET cwd = excluded.cwd, message_id = excluded.message_id, resumed_at = excluded.resumed_at
    WHERE excluded.message_id > session_resumes.message_id;
END;

-- The SessionStart context leaves out the records a fork inherited (its parent shows them),
-- so its per-session reads of the newest records (0004) go through indexes of a session's
-- own records: the same columns, partial. With the full index, a fork with few records of
-- its own would be walked through all its inherited ones at every context build.
DROP INDEX observations_session_time;
CREATE INDEX observations_own_time ON observations (session_key, created_at, message_id)
    WHERE inherited = 0;

DROP INDEX summaries_session_time;
CREATE INDEX summaries_own_time ON summaries (session_key, created_at, message_id)
    WHERE inherited = 0;
