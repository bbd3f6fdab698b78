-- SQLite's 0016_upstream_outbox (memq.team.outbox): the outbox to the team server, its
-- one-row switch, and the trigger that fills it in the transaction of the queue's insert.
-- Forwarding itself runs only from a SQLite daemon (a laptop; memq.config refuses
-- MEMQ_UPSTREAM with MEMQ_DATABASE_URL), but the schemas stay twins.

CREATE TABLE upstream_config (
    id      BIGINT PRIMARY KEY CHECK (id = 1),
    enabled BIGINT NOT NULL DEFAULT 0 CHECK (enabled IN (0, 1)),
    machine TEXT
);


CREATE TABLE upstream_outbox (
    message_id      BIGINT PRIMARY KEY,
    session_id      TEXT   NOT NULL,
    kind            TEXT   NOT NULL,
    dedupe_key      TEXT,
    payload         TEXT   NOT NULL,
    created_at      BIGINT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at BIGINT NOT NULL DEFAULT 0,
    last_error      TEXT,
    state           TEXT   NOT NULL DEFAULT 'waiting'
                    CHECK (state IN ('waiting', 'refused', 'local_only'))
);

CREATE INDEX upstream_outbox_waiting ON upstream_outbox (message_id) WHERE state = 'waiting';
CREATE INDEX upstream_outbox_state ON upstream_outbox (state, created_at);

-- SQLite's trigger pending_messages_upstream. search_path is pinned to this schema: the
-- queue's connections may run with another.
CREATE FUNCTION memq_pending_messages_upstream() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM upstream_config WHERE id = 1 AND enabled = 1) THEN
        INSERT INTO upstream_outbox (message_id, session_id, kind, dedupe_key, payload,
                                     created_at)
        VALUES (new.id, new.session_id, new.kind, new.dedupe_key,
                coalesce(new.payload, 'null'), new.created_at);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER pending_messages_upstream AFTER INSERT ON pending_messages
FOR EACH ROW EXECUTE FUNCTION memq_pending_messages_upstream();
