-- The statements only the PostgreSQL queue (memq.queue.postgres) runs: daemons and their
-- heartbeats, session leases, fenced claims, the enqueue's locks and wake-up. Loaded with
-- the PostgreSQL dialect (written with :name parameters like every other file here).
-- Heartbeat times are the server's clock ((extract(epoch from clock_timestamp()) * 1000)
-- as ms), the one clock every daemon shares; message times are the queue's clock, as on
-- SQLite.

-- name: register_daemon
INSERT INTO daemons (host, pid, port, started_at, heartbeat_at)
VALUES (:host, :pid, :port,
        (extract(epoch FROM clock_timestamp()) * 1000)::bigint,
        (extract(epoch FROM clock_timestamp()) * 1000)::bigint)
RETURNING id;

-- name: beat
-- No row back: this daemon was declared dead by another's sweep (fenced).
UPDATE daemons
SET heartbeat_at = (extract(epoch FROM clock_timestamp()) * 1000)::bigint
WHERE id = :daemon
RETURNING id;

-- name: unregister_daemon
DELETE FROM daemons WHERE id = :daemon;

-- name: expire_daemons
-- Daemons whose heartbeat is older than :expiry_ms by the server's clock. SKIP LOCKED: two
-- daemons sweeping at once never queue behind each other.
DELETE FROM daemons
WHERE id IN (SELECT id FROM daemons
             WHERE heartbeat_at < (extract(epoch FROM clock_timestamp()) * 1000)::bigint
                                  - :expiry_ms
             FOR UPDATE SKIP LOCKED)
RETURNING id, host, pid;

-- name: drop_orphan_leases
-- Leases of daemons that are gone (expired above, or by an earlier sweep whose statement
-- could not see a lease taken while it ran).
DELETE FROM session_leases AS l
WHERE NOT EXISTS (SELECT 1 FROM daemons AS d WHERE d.id = l.daemon_id)
RETURNING session_id;

-- name: recover_orphan_claims
-- Claims of daemons that are gone go back to pending, or to failed when out of attempts:
-- attempts are not refunded (a message that kills daemons is a poison message).
UPDATE pending_messages
SET status = CASE WHEN attempts >= :max_attempts THEN 'failed' ELSE 'pending' END,
    lease_until = NULL,
    started_at = NULL,
    finished_at = CASE WHEN attempts >= :max_attempts THEN :now::bigint END,
    last_error = :error
WHERE status = 'processing'
  AND NOT EXISTS (SELECT 1 FROM daemons AS d WHERE d.id = pending_messages.claimed_by)
RETURNING id, session_id, status, attempts;

-- name: take_lease
-- The session's lease for :daemon, with a new token, unless another daemon holds it: then
-- no row, at once (or when :daemon itself was swept away: a fenced daemon takes nothing).
-- A lease :daemon still holds (a drop that failed) is taken again.
INSERT INTO session_leases (session_id, daemon_id, token, leased_at)
SELECT :session_id, id, nextval('claim_tokens'), :now
FROM daemons
WHERE id = :daemon
ON CONFLICT (session_id) DO UPDATE
SET token = excluded.token, leased_at = excluded.leased_at
WHERE session_leases.daemon_id = excluded.daemon_id
RETURNING token;

-- name: drop_lease
DELETE FROM session_leases WHERE session_id = :session_id AND token = :token;

-- name: drop_daemon_leases
DELETE FROM session_leases WHERE daemon_id = :daemon;

-- name: drop_session_leases
-- A forgotten or moved session: whoever held its lease holds nothing there now.
DELETE FROM session_leases WHERE session_id = :session_id;

-- name: claims_in_sessions
-- A move's check: claims still in hand (any daemon's) in either session, after this
-- daemon's hand-backs in the same transaction.
SELECT id, session_id, claimed_by
FROM pending_messages
WHERE session_id IN (:from_id::text, :to_id::text) AND status = 'processing'
ORDER BY id;

-- name: claim_head
-- Claims the session's head when it is due, counting the attempt, under the lease
-- :daemon holds with :lease (the fence: a daemon whose lease was swept claims nothing).
-- A head due after :latest_due was stored before the wall clock was set back: due now.
UPDATE pending_messages
SET status = 'processing',
    attempts = attempts + 1,
    claim_token = nextval('claim_tokens'),
    claimed_by = :daemon,
    started_at = :now,
    lease_until = :lease_until
WHERE id = (SELECT head.id
            FROM pending_messages AS head
            WHERE head.session_id = :session_id AND head.status = 'pending'
            ORDER BY head.id
            LIMIT 1
            FOR UPDATE)
  AND status = 'pending'
  AND (available_at <= :now OR available_at > :latest_due)
  AND EXISTS (SELECT 1 FROM session_leases
              WHERE session_id = :session_id AND daemon_id = :daemon AND token = :lease)
RETURNING id, session_id, kind, payload, dedupe_key, attempts, created_at, claim_token;

-- name: head_state
-- After a claim found nothing: when the session's head becomes due (NULL: nothing
-- pending), and whether :daemon still holds the lease :lease.
SELECT (SELECT available_at
        FROM pending_messages
        WHERE session_id = :session_id AND status = 'pending'
        ORDER BY id
        LIMIT 1) AS available_at,
       EXISTS (SELECT 1 FROM session_leases
               WHERE session_id = :session_id AND daemon_id = :daemon AND token = :lease)
       AS leased;

-- name: lock_sessions
-- Enqueues of one session serialize, of different sessions do not: a sequence hands ids out
-- at nextval, not at commit, so without this two daemons enqueueing to one session could
-- commit id 11 before id 10 and a consumer could claim 11 first. Locks are taken in one
-- order (by key) everywhere, so two batches never deadlock.
SELECT pg_advisory_xact_lock(hashtext('memq enqueue'), key)
FROM (SELECT DISTINCT hashtext(session_id) AS key
      FROM unnest(:sessions::text[]) AS wanted(session_id)
      ORDER BY key) AS sorted;

-- name: notify
-- Delivered at commit only: a daemon is woken for rows it can already see.
SELECT pg_notify(:channel, :payload);

-- name: free_backlog
-- Sessions with a pending message that no other daemon holds the lease of. A loose index
-- scan of pending_messages_next: each step jumps to the next session with a pending row
-- (one index probe per session), instead of reading every pending row.
WITH RECURSIVE pending (session_id) AS (
    (SELECT session_id FROM pending_messages
     WHERE status = 'pending'
     ORDER BY session_id
     LIMIT 1)
    UNION ALL
    SELECT (SELECT p.session_id FROM pending_messages AS p
            WHERE p.status = 'pending' AND p.session_id > pending.session_id
            ORDER BY p.session_id
            LIMIT 1)
    FROM pending
    WHERE pending.session_id IS NOT NULL
)
SELECT pending.session_id
FROM pending
WHERE pending.session_id IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM session_leases AS l
                  WHERE l.session_id = pending.session_id AND l.daemon_id <> :daemon)
ORDER BY pending.session_id;

-- name: free_head
-- The session's head (due or backing off), unless another daemon holds its lease.
SELECT available_at
FROM pending_messages
WHERE session_id = :session_id AND status = 'pending'
  AND NOT EXISTS (SELECT 1 FROM session_leases AS l
                  WHERE l.session_id = :session_id AND l.daemon_id <> :daemon)
ORDER BY id
LIMIT 1;

-- name: live_daemons
-- Every registered daemon, for status: sessions in hand and heartbeat age by the server.
SELECT d.id, d.host, d.pid, d.port, d.started_at, d.heartbeat_at,
       (extract(epoch FROM clock_timestamp()) * 1000)::bigint - d.heartbeat_at
           AS heartbeat_age_ms,
       (SELECT count(*) FROM session_leases AS l WHERE l.daemon_id = d.id) AS sessions
FROM daemons AS d
ORDER BY d.id;

-- name: database_bytes
SELECT pg_database_size(current_database()) AS bytes;
