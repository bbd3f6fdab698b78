-- PostgreSQL forms of queue.sql's statements that SQLite's dialect cannot share (json_each,
-- PRAGMA, UPDATE OR IGNORE, {rows} groups). Batches are PostgreSQL arrays (Python lists)
-- read with unnest, so one statement still serves many messages. Settlements are fenced by
-- the claim's token (claim_token), not by attempts: a release refunds the attempt, so
-- (id, attempts) repeats, while a token is never handed out twice.

-- name: insert_messages
-- One row per array position, in array order (WITH ORDINALITY), so identity ids ascend in
-- the order of the operations; RETURNING tells which went in (a repeated
-- (session_id, dedupe_key) is skipped).
INSERT INTO pending_messages (session_id, kind, payload, dedupe_key, available_at, created_at)
SELECT m.session_id, m.kind, m.payload, m.dedupe_key, m.created_at, m.created_at
FROM unnest(:sessions::text[], :kinds::text[], :payloads::text[], :keys::text[],
            :times::bigint[])
     WITH ORDINALITY AS m(session_id, kind, payload, dedupe_key, created_at, n)
ORDER BY m.n
ON CONFLICT (session_id, dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING
RETURNING id, session_id, dedupe_key;

-- name: select_by_dedupe_keys
-- :sessions and :keys, position by position: the rows that a skipped insert collided with.
SELECT existing.id, existing.session_id, existing.dedupe_key
FROM unnest(:sessions::text[], :keys::text[]) AS wanted(session_id, dedupe_key)
JOIN pending_messages AS existing
  ON existing.session_id = wanted.session_id
 AND existing.dedupe_key = wanted.dedupe_key;

-- name: session_heads
-- As on SQLite, for :sessions (an array). The PostgreSQL queue claims one session at a
-- time under its lease (pg_queue.sql's claim_head and head_state) and does not run this.
SELECT wanted.session_id,
       head.available_at,
       (head.available_at <= :now OR head.available_at > :latest_due) AS due
FROM unnest(:sessions::text[]) AS wanted(session_id)
JOIN pending_messages AS head
  ON head.id = (SELECT next.id
                FROM pending_messages AS next
                WHERE next.session_id = wanted.session_id AND next.status = 'pending'
                ORDER BY next.id
                LIMIT 1);

-- name: claim_heads
-- As on SQLite, for :sessions (an array), without a lease: the PostgreSQL queue claims
-- with pg_queue.sql's claim_head, fenced by the session's lease, and does not run this.
UPDATE pending_messages
SET status = 'processing',
    attempts = attempts + 1,
    started_at = :now,
    lease_until = :lease_until
WHERE id IN (
        SELECT (SELECT head.id
                FROM pending_messages AS head
                WHERE head.session_id = wanted.session_id AND head.status = 'pending'
                ORDER BY head.id
                LIMIT 1)
        FROM unnest(:sessions::text[]) AS wanted(session_id)
    )
  AND (available_at <= :now OR available_at > :latest_due)
RETURNING id, session_id, kind, payload, dedupe_key, attempts, created_at;

-- name: ack
-- :ids and :tokens, position by position. 0 rows for a claim: it was taken away (its
-- daemon expired, its lease ran out) and the caller's writes must roll back.
UPDATE pending_messages
SET status = 'processed',
    payload = NULL,
    lease_until = NULL,
    finished_at = :now,
    last_error = NULL
FROM unnest(:ids::bigint[], :tokens::bigint[]) AS settled(id, token)
WHERE pending_messages.id = settled.id
  AND pending_messages.claim_token = settled.token
  AND pending_messages.status = 'processing'
RETURNING pending_messages.id;

-- name: fail
-- Position by position: status 'pending' (retry after backoff) or 'failed' (attempts
-- exhausted), decided by the caller.
UPDATE pending_messages
SET status = settled.status,
    available_at = settled.available_at,
    last_error = settled.error,
    lease_until = NULL,
    finished_at = CASE WHEN settled.status = 'failed' THEN :now::bigint END
FROM unnest(:ids::bigint[], :tokens::bigint[], :statuses::text[], :available::bigint[],
            :errors::text[]) AS settled(id, token, status, available_at, error)
WHERE pending_messages.id = settled.id
  AND pending_messages.claim_token = settled.token
  AND pending_messages.status = 'processing'
RETURNING pending_messages.id, pending_messages.status;

-- name: release
-- Position by position; :available holds NULL for a plain release, the time to try again
-- for a deferral. The attempt is refunded either way.
UPDATE pending_messages
SET status = 'pending',
    attempts = pending_messages.attempts - 1,
    available_at = coalesce(settled.available_at, pending_messages.available_at),
    lease_until = NULL,
    started_at = NULL
FROM unnest(:ids::bigint[], :tokens::bigint[], :available::bigint[])
     AS settled(id, token, available_at)
WHERE pending_messages.id = settled.id
  AND pending_messages.claim_token = settled.token
  AND pending_messages.status = 'processing'
RETURNING pending_messages.id;

-- name: recover_orphans
-- SQLite's recovery at open, under its file lock. The PostgreSQL queue has no such moment
-- (other daemons are alive): its heartbeat sweep (pg_queue.sql) recovers, and it does not
-- run this; the CASE's time is typed so the statement prepares.
UPDATE pending_messages
SET status = CASE WHEN attempts >= :max_attempts THEN 'failed' ELSE 'pending' END,
    available_at = :now,
    lease_until = NULL,
    finished_at = CASE WHEN attempts >= :max_attempts THEN :now::bigint END,
    last_error = :error
WHERE status = 'processing'
RETURNING id, session_id, status, attempts;

-- name: reclaim_expired_leases
-- The watchdog, for a processor that hangs in a live daemon: :expired are this daemon's
-- claims held past the lease (ids, by its monotonic clock); a row claimed by :daemon that
-- no claim here holds (:held) falls back on its stored lease. Other daemons' rows are
-- theirs, or the expiry sweep's.
UPDATE pending_messages
SET status = CASE WHEN attempts >= :max_attempts THEN 'failed' ELSE 'pending' END,
    available_at = :available_at,
    lease_until = NULL,
    finished_at = CASE WHEN attempts >= :max_attempts THEN :now::bigint END,
    last_error = :error
WHERE status = 'processing'
  AND claimed_by = :daemon
  AND (id = ANY(:expired::bigint[])
       OR (lease_until < :now AND NOT id = ANY(:held::bigint[])))
RETURNING id, session_id, status, attempts;

-- name: sessions_with_pending
-- Which of :sessions (an array) have at least one pending message.
SELECT wanted.session_id
FROM unnest(:sessions::text[]) AS wanted(session_id)
WHERE EXISTS (SELECT 1 FROM pending_messages
              WHERE session_id = wanted.session_id AND status = 'pending');

-- name: list_failed
SELECT id, session_id, kind, payload, dedupe_key, attempts, created_at, finished_at, last_error
FROM pending_messages
WHERE status = 'failed' AND finished_at IS NOT NULL
  AND (:session_id::text IS NULL OR session_id = :session_id::text)
ORDER BY finished_at, id
LIMIT :limit;

-- name: retry_failed
-- :ids is an array of message ids. Attempts start over.
UPDATE pending_messages
SET status = 'pending', attempts = 0, available_at = :now, finished_at = NULL
WHERE status = 'failed' AND id = ANY(:ids::bigint[])
RETURNING id, session_id;

-- name: data_version
-- SQLite's count of other connections' commits; PostgreSQL wakes daemons by NOTIFY, so
-- there is nothing to count (kept so that every queue statement has a PostgreSQL form).
SELECT 0 AS data_version;

-- name: move_session
-- Transfer: the session's rows become the target's, except those whose dedupe key the
-- target already has (the same event: left behind for drop_moved_duplicates).
UPDATE pending_messages AS moving
SET session_id = :to_id
WHERE moving.session_id = :from_id
  AND (moving.dedupe_key IS NULL
       OR NOT EXISTS (SELECT 1 FROM pending_messages AS there
                      WHERE there.session_id = :to_id
                        AND there.dedupe_key = moving.dedupe_key))
RETURNING id;
