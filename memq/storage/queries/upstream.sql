-- The laptop's outbox to the team server (memq.team.outbox): upstream_outbox, filled by the
-- trigger pending_messages_upstream while upstream_config.enabled is 1 (migration 0016).
-- One row per statement (executemany), so one text runs on SQLite and PostgreSQL alike.

-- name: set_enabled
-- :enabled is 1 or 0: whether inserts into pending_messages fill the outbox from now on.
-- The one row is written here, not by the migration: a repaired database copies it over
-- from the damaged one like any other row (a row the migration made would collide).
INSERT INTO upstream_config (id, enabled) VALUES (1, :enabled)
ON CONFLICT (id) DO UPDATE SET enabled = excluded.enabled;

-- name: claim_machine
-- The name this database goes by upstream: the one given (MEMQ_MACHINE_NAME), but a new
-- one only while no event waits. A waiting row may have reached the server already (its
-- answer lost, or the daemon stopped before it settled the row), under the stored name:
-- sent again under another it would be a second event there (the server's dedupe key
-- holds the name). Rows gone are acknowledged; refused and local rows were never stored.
INSERT INTO upstream_config (id, enabled, machine) VALUES (1, 0, CAST(:machine AS TEXT))
ON CONFLICT (id) DO UPDATE SET machine = CASE
    WHEN upstream_config.machine IS NULL THEN excluded.machine
    WHEN EXISTS (SELECT 1 FROM upstream_outbox WHERE state = 'waiting')
        THEN upstream_config.machine
    ELSE excluded.machine
END
RETURNING machine;

-- name: next_waiting
-- The next rows to send, in id order: each session's events in the order they happened.
SELECT message_id, session_id, kind, dedupe_key, payload, created_at, attempts,
       next_attempt_at
FROM upstream_outbox
WHERE state = 'waiting'
ORDER BY message_id
LIMIT :limit;

-- name: delete_sent
-- The server has it (accepted, or a duplicate of what it had).
DELETE FROM upstream_outbox WHERE message_id = :id;

-- name: mark_refused
UPDATE upstream_outbox
SET state = 'refused', attempts = attempts + 1, last_error = :error
WHERE message_id = :id AND state = 'waiting';

-- name: mark_local_only
UPDATE upstream_outbox
SET state = 'local_only', last_error = :error
WHERE message_id = :id AND state = 'waiting';

-- name: defer_waiting
-- A send that failed as a whole (server down, 5xx): these rows wait until :next_attempt_at.
UPDATE upstream_outbox
SET attempts = attempts + 1, next_attempt_at = :next_attempt_at, last_error = :error
WHERE message_id = :id AND state = 'waiting';

-- name: retry_refused
-- Send the refused rows again (after a key's scope was widened).
UPDATE upstream_outbox
SET state = 'waiting', attempts = 0, next_attempt_at = 0, last_error = NULL
WHERE state = 'refused'
RETURNING message_id;

-- name: count_by_state
-- The status: rows and the oldest event's time per state.
SELECT state, count(*) AS n, min(created_at) AS oldest_at
FROM upstream_outbox
GROUP BY state;

-- name: mark_forwarded
-- MEMQ_UPSTREAM_MODE=forward: the server has the event and nothing processes it here; the
-- queue row ends as a processed one would (its payload dropped, pruned with the others).
-- A failed row is one the server refused before (mark_not_forwarded), sent again by
-- memq upstream retry: now forwarded, it is no longer a failure.
UPDATE pending_messages
SET status = 'processed', payload = NULL, lease_until = NULL, finished_at = :now,
    last_error = NULL
WHERE id = :id AND status IN ('pending', 'failed');

-- name: mark_not_forwarded
-- MEMQ_UPSTREAM_MODE=forward: an event the server refused or that stays on this machine,
-- which nothing here processes either: failed with the reason, kept for failed_retention.
UPDATE pending_messages
SET status = 'failed', lease_until = NULL, finished_at = :now, last_error = :error
WHERE id = :id AND status = 'pending';

-- name: head_waiting
-- The next row to send: why it waits (the last failure) and until when.
SELECT last_error, next_attempt_at
FROM upstream_outbox
WHERE state = 'waiting'
ORDER BY message_id
LIMIT 1;

-- name: machine
SELECT machine FROM upstream_config WHERE id = 1;

-- name: machine_name
-- The name this database goes by upstream, read only (memq.team.team_search): no row or
-- NULL when nothing was ever forwarded from it.
SELECT machine FROM upstream_config WHERE id = 1;

-- name: remember_machine
-- A name claimed (claim_machine) is one the server may file records under: kept for good.
INSERT INTO upstream_machines (name) VALUES (CAST(:machine AS TEXT))
ON CONFLICT (name) DO NOTHING;

-- name: machines
-- Every name this database went by upstream (memq.team.team_reads, memq.team.team_search:
-- the server leaves out the records of all of them).
SELECT name FROM upstream_machines ORDER BY name;

-- name: held
-- memq upstream list: the rows in the states asked for (each flag 1 or 0), in id order,
-- the order they are (or were) sent in.
SELECT message_id, session_id, kind, state, attempts, last_error, created_at, next_attempt_at
FROM upstream_outbox
WHERE (state = 'waiting' AND :waiting = 1)
   OR (state = 'refused' AND :refused = 1)
   OR (state = 'local_only' AND :local_only = 1)
ORDER BY message_id
LIMIT :limit;

-- name: outbox_state
SELECT state FROM upstream_outbox WHERE message_id = :id;

-- name: retry_refused_one
-- memq upstream retry ID: one refused row waits again, due at once.
UPDATE upstream_outbox
SET state = 'waiting', attempts = 0, next_attempt_at = 0, last_error = NULL
WHERE message_id = :id AND state = 'refused'
RETURNING message_id;

-- name: drop_unsent
-- memq upstream drop ID: forget a row that will not be sent (refused, or kept local).
DELETE FROM upstream_outbox
WHERE message_id = :id AND state IN ('refused', 'local_only')
RETURNING message_id, session_id, kind, state, last_error;
