-- Issue 17: the laptop's outbox to the team server (memq.team.outbox, memq.team.forwarder).
-- Times are epoch milliseconds.
--
-- At most one row, written by memq.team.outbox (none: forwarding off): whether forwarding
-- is on (the daemon sets it at start from MEMQ_UPSTREAM) and the name this database goes by
-- upstream (`machine`, chosen once and
-- kept: the server's dedupe key is `origin:<key>:<machine>:<local_id>`, so it must not
-- change between a send and its retry, whatever becomes of the host name).
CREATE TABLE upstream_config (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    enabled INTEGER NOT NULL DEFAULT 0 CHECK (enabled IN (0, 1)),
    machine TEXT
) STRICT;


-- An event to forward: a copy of its queue row (a processed row's payload is dropped, and a
-- row may be pruned, before the server has it). Deleted once the server acknowledged it
-- (accepted or duplicate), so the table holds only what is still on its way, or stays here:
--   waiting     to be sent; not before next_attempt_at (backoff, kept across restarts)
--   refused     the server refused this event (its error in last_error); kept to be seen
--   local_only  its directory names no git remote: not shareable, never sent
CREATE TABLE upstream_outbox (
    message_id      INTEGER PRIMARY KEY,  -- pending_messages.id: the event's local_id upstream
    session_id      TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    dedupe_key      TEXT,
    payload         TEXT    NOT NULL,     -- JSON, as stored (already redacted)
    created_at      INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    state           TEXT    NOT NULL DEFAULT 'waiting'
                    CHECK (state IN ('waiting', 'refused', 'local_only'))
) STRICT;

-- The forwarder's next batch (waiting rows in id order) and the status's counts, without
-- walking refused and local-only rows.
CREATE INDEX upstream_outbox_waiting ON upstream_outbox (message_id) WHERE state = 'waiting';
CREATE INDEX upstream_outbox_state ON upstream_outbox (state, created_at);

-- A trigger, not the daemon's code: the hook's direct insert (memq.hooks.fallback) writes
-- pending_messages while no daemon runs, and its event must reach the outbox in the same
-- transaction whoever wrote it. An insert skipped as a duplicate fires nothing. With
-- forwarding off, an insert pays one look-up of the one-row table.
CREATE TRIGGER pending_messages_upstream AFTER INSERT ON pending_messages
WHEN (SELECT enabled FROM upstream_config WHERE id = 1) = 1
BEGIN
    INSERT INTO upstream_outbox (message_id, session_id, kind, dedupe_key, payload, created_at)
    VALUES (new.id, new.session_id, new.kind, new.dedupe_key, coalesce(new.payload, 'null'),
            new.created_at);
END;
