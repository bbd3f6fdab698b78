-- Every statement the durable queue runs. Batches arrive as one JSON array parameter
-- (read with json_each), so that one statement, and one await, serves many messages.
-- Times are integer milliseconds since the Unix epoch.

-- name: insert_messages
-- {rows} stands for one "(?, ?, ?, ?, ?, ?)" group per message: session_id, kind,
-- payload (JSON text), dedupe_key (or NULL), available_at, created_at. Bound parameters, not
-- a JSON batch: SQLite would parse each element once per extracted field. Rows go in in
-- order, so AUTOINCREMENT ids ascend in that order, one apart when every row went in (the
-- last is last_insert_rowid()). A repeated (session_id, dedupe_key) is skipped, and its id
-- too: then inserted_messages tells which rows went in. No RETURNING: each returned row is
-- one more step of the statement, and the writer's thread gives up Python's lock and waits
-- to take it back at each step, while the event loop is busiest.
INSERT INTO pending_messages (session_id, kind, payload, dedupe_key, available_at, created_at)
VALUES {rows}
ON CONFLICT (session_id, dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING;

-- name: inserted_messages
-- The :count rows that the last insert_messages put in, :last being the last of them: no
-- other writer came between (the queue's writer holds the write lock, or, outside a
-- transaction, another process can only add rows with higher ids).
SELECT id, session_id, dedupe_key
FROM pending_messages
WHERE id <= :last
ORDER BY id DESC
LIMIT :count;

-- name: select_by_dedupe_keys
-- :keys is [[session_id, dedupe_key], ...]: the rows that a skipped insert collided with.
SELECT existing.id, existing.session_id, existing.dedupe_key
FROM json_each(:keys) AS wanted
JOIN pending_messages AS existing
  ON existing.session_id = json_extract(wanted.value, '$[0]')
 AND existing.dedupe_key = json_extract(wanted.value, '$[1]')
WHERE existing.dedupe_key IS NOT NULL;

-- name: session_heads
-- The head (lowest pending id) of each session in :sessions, when it becomes claimable, and
-- whether it is due now, as claim_heads decides. A session with nothing pending has no row.
-- Read before claiming, so that a stream about to wait costs no write.
SELECT wanted.value AS session_id,
       head.available_at,
       (head.available_at <= :now OR head.available_at > :latest_due) AS due
FROM json_each(:sessions) AS wanted
JOIN pending_messages AS head
  ON head.id = (SELECT next.id
                FROM pending_messages AS next
                WHERE next.session_id = wanted.value AND next.status = 'pending'
                ORDER BY next.id
                LIMIT 1);

-- name: claim_heads
-- Claims the head (lowest pending id) of each session in :sessions when it is due, counting
-- the attempt. A session whose head is backing off yields nothing: order within a session
-- is strict. A head due after :latest_due waits longer than any wait the queue sets: the
-- wall clock was set back since it was stored, so it is due now, not an hour late.
UPDATE pending_messages
SET status = 'processing',
    attempts = attempts + 1,
    started_at = :now,
    lease_until = :lease_until
WHERE id IN (
        SELECT (SELECT head.id
                FROM pending_messages AS head
                WHERE head.session_id = wanted.value AND head.status = 'pending'
                ORDER BY head.id
                LIMIT 1)
        FROM json_each(:sessions) AS wanted
    )
  AND (available_at <= :now OR available_at > :latest_due)
RETURNING id, session_id, kind, payload, dedupe_key, attempts, created_at;

-- name: ack
-- :claims is [[id, attempts], ...]. A claim matches only while it is the row's current
-- attempt, so a consumer whose lease was taken back cannot ack a later attempt's message.
UPDATE pending_messages
SET status = 'processed',
    payload = NULL,
    lease_until = NULL,
    finished_at = :now,
    last_error = NULL
FROM (SELECT json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS attempts
      FROM json_each(:claims)) AS settled
WHERE pending_messages.id = settled.id
  AND pending_messages.attempts = settled.attempts
  AND pending_messages.status = 'processing'
RETURNING pending_messages.id;

-- name: fail
-- :claims is [[id, attempts, status, available_at, error], ...]; status is 'pending'
-- (retry after backoff) or 'failed' (attempts exhausted), decided by the caller.
UPDATE pending_messages
SET status = settled.status,
    available_at = settled.available_at,
    last_error = settled.error,
    lease_until = NULL,
    finished_at = CASE WHEN settled.status = 'failed' THEN :now END
FROM (SELECT json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS attempts,
             json_extract(value, '$[2]') AS status, json_extract(value, '$[3]') AS available_at,
             json_extract(value, '$[4]') AS error
      FROM json_each(:claims)) AS settled
WHERE pending_messages.id = settled.id
  AND pending_messages.attempts = settled.attempts
  AND pending_messages.status = 'processing'
RETURNING pending_messages.id, pending_messages.status;

-- name: release
-- :claims is [[id, attempts], ...]: claims given back unprocessed (consumer closed or
-- cancelled), or [[id, attempts, available_at], ...]: claims deferred, to be tried again at
-- available_at (a rate limit, a paused processor). Either way the attempt is refunded:
-- nothing was tried to completion.
UPDATE pending_messages
SET status = 'pending',
    attempts = pending_messages.attempts - 1,
    available_at = coalesce(settled.available_at, pending_messages.available_at),
    lease_until = NULL,
    started_at = NULL
FROM (SELECT json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS attempts,
             json_extract(value, '$[2]') AS available_at
      FROM json_each(:claims)) AS settled
WHERE pending_messages.id = settled.id
  AND pending_messages.attempts = settled.attempts
  AND pending_messages.status = 'processing'
RETURNING pending_messages.id;

-- name: recover_orphans
-- At open, with the instance lock held, every 'processing' row belongs to a process that
-- died. Its attempt stays counted: a message that kills the daemon is a poison message.
UPDATE pending_messages
SET status = CASE WHEN attempts >= :max_attempts THEN 'failed' ELSE 'pending' END,
    available_at = :now,
    lease_until = NULL,
    finished_at = CASE WHEN attempts >= :max_attempts THEN :now END,
    last_error = :error
WHERE status = 'processing'
RETURNING id, session_id, status, attempts;

-- name: reclaim_expired_leases
-- The watchdog: a claim not settled by its lease's end counts as a failed attempt. Claims
-- that this process holds expire by its monotonic clock (:expired, ids), so a wall clock set
-- forward cannot take back work still running; a row that no claim here holds (:held is
-- every held id) falls back on its stored lease.
UPDATE pending_messages
SET status = CASE WHEN attempts >= :max_attempts THEN 'failed' ELSE 'pending' END,
    available_at = :available_at,
    lease_until = NULL,
    finished_at = CASE WHEN attempts >= :max_attempts THEN :now END,
    last_error = :error
WHERE status = 'processing'
  AND (id IN (SELECT value FROM json_each(:expired))
       OR (lease_until < :now AND id NOT IN (SELECT value FROM json_each(:held))))
RETURNING id, session_id, status, attempts;

-- name: head_available_at
-- When the session's head becomes claimable; no row when the session has nothing pending.
SELECT available_at
FROM pending_messages
WHERE session_id = :session_id AND status = 'pending'
ORDER BY id
LIMIT 1;

-- name: sessions_with_pending
-- Which of :sessions (a JSON array) have at least one pending message.
SELECT wanted.value AS session_id
FROM json_each(:sessions) AS wanted
WHERE EXISTS (SELECT 1 FROM pending_messages
              WHERE session_id = wanted.value AND status = 'pending');

-- name: sessions_with_backlog
SELECT DISTINCT session_id
FROM pending_messages
WHERE status = 'pending'
ORDER BY session_id;

-- name: count_by_session_and_status
SELECT session_id, status, count(*) AS n
FROM pending_messages
GROUP BY session_id, status;

-- name: processing_messages
-- What is being processed right now, longest running first (the status's
-- processing_messages); :limit bounds it.
SELECT id, session_id, kind, attempts, started_at
FROM pending_messages
WHERE status = 'processing'
ORDER BY started_at, id
LIMIT :limit;

-- name: prune_processed
-- One chunk at a time, so pruning a large history never holds the write lock for long.
DELETE FROM pending_messages
WHERE id IN (SELECT id FROM pending_messages
             WHERE status = 'processed' AND finished_at < :before
             LIMIT :chunk);

-- name: prune_failed
DELETE FROM pending_messages
WHERE id IN (SELECT id FROM pending_messages
             WHERE status = 'failed' AND finished_at < :before
             LIMIT :chunk);

-- name: list_failed
SELECT id, session_id, kind, payload, dedupe_key, attempts, created_at, finished_at, last_error
FROM pending_messages
WHERE status = 'failed' AND finished_at IS NOT NULL
  AND (:session_id IS NULL OR session_id = :session_id)
ORDER BY finished_at, id
LIMIT :limit;

-- name: retry_failed
-- :ids is a JSON array of message ids. Attempts start over.
UPDATE pending_messages
SET status = 'pending', attempts = 0, available_at = :now, finished_at = NULL
WHERE status = 'failed' AND id IN (SELECT value FROM json_each(:ids))
RETURNING id, session_id;

-- name: retry_all_failed
UPDATE pending_messages
SET status = 'pending', attempts = 0, available_at = :now, finished_at = NULL
WHERE status = 'failed' AND finished_at IS NOT NULL
RETURNING id, session_id;

-- name: get_message
SELECT id, session_id, kind, payload, dedupe_key, status, attempts, available_at,
       created_at, started_at, finished_at, last_error
FROM pending_messages
WHERE id = :id;

-- name: data_version
PRAGMA data_version;

-- name: delete_session_from
-- The session's rows from :from_id on, whatever their status: a revert, so that nothing
-- after the cut is processed again, or (from 0) a forgotten session.
DELETE FROM pending_messages
WHERE session_id = :session_id AND id >= :from_id
RETURNING id;

-- name: move_session
-- Transfer: the session's rows become the target's. A row whose dedupe key the target
-- already has is the same event: it stays behind and is dropped by drop_moved_duplicates.
UPDATE OR IGNORE pending_messages SET session_id = :to_id WHERE session_id = :from_id
RETURNING id;

-- name: drop_moved_duplicates
DELETE FROM pending_messages WHERE session_id = :from_id RETURNING id;
