-- One consumer per session across daemons: a session's messages are claimed only by the
-- daemon holding its lease. Taking a lease is an INSERT that loses quietly to another
-- daemon's (ON CONFLICT DO NOTHING), so no daemon ever waits on another's sessions; each
-- lease carries a token from claim_tokens, and a claim names it, so a daemon whose lease was
-- swept away (its heartbeat expired) cannot claim in that session any more. Leases of an
-- expired daemon are deleted by the sweep with the daemon.

CREATE TABLE session_leases (
    session_id TEXT   PRIMARY KEY,
    daemon_id  BIGINT NOT NULL,  -- daemons.id; no reference: the sweep deletes both
    token      BIGINT NOT NULL,  -- nextval('claim_tokens')
    leased_at  BIGINT NOT NULL   -- the queue clock's epoch ms, for status
);

-- The leases of one daemon: dropped at its close, or when it expires.
CREATE INDEX session_leases_daemon ON session_leases (daemon_id);
