-- Issue 17: the team server's audit log stays bounded, and a rotated key's re-sent events
-- stay duplicates (memq.team.keys, memq.team.intake). Times are epoch milliseconds.
--
-- Refused tokens (malformed, unknown key, revoked key, wrong secret) are counted, not logged
-- one row each: an attacker spraying tokens would otherwise write a row per try. One row per
-- client address, key id (NULL for a malformed token or an unknown key: an id the caller
-- made up names nobody) and reason per minute: `minute` is the epoch ms at the minute's
-- start, `times` how many refusals the row stands for, `at` the first of them. Every other
-- row (create, revoke, a project out of a key's scope, delete) is exact: `minute` NULL,
-- `times` 1. `address` is the client's address where the server knew it.
ALTER TABLE audit_log ADD COLUMN address TEXT;
ALTER TABLE audit_log ADD COLUMN times INTEGER NOT NULL DEFAULT 1 CHECK (times >= 1);
ALTER TABLE audit_log ADD COLUMN minute INTEGER;

-- A refusal finds its minute's row through this (memq.team.keys: an update, else an
-- insert; two daemons' first refusals of one minute at once may make two rows, each counted).
CREATE INDEX audit_log_minute ON audit_log (minute) WHERE minute IS NOT NULL;

-- The queue's dedupe key of a forwarded event was `origin:<key_id>:<machine>:<local_id>`;
-- it is now `origin:<length of name>.<name>:<machine>:<local_id>`, the key's name standing
-- for the person (one unrevoked key per name; a new key of a revoked key's name is its
-- rotation), so a batch re-sent with the rotated key is a duplicate. The length prefix keeps
-- a name with a colon from reading as another name and machine. Rows already stored take
-- the new form; where a rotation already stored an event twice (the old bug), the first row
-- takes it and the other keeps its old key (the unique index allows one).
WITH origins AS (
    SELECT m.id, m.session_id,
           'origin:' || length(k.name) || '.' || k.name || substr(m.dedupe_key, 20) AS renamed
    FROM pending_messages AS m
    JOIN api_keys AS k ON k.key_id = substr(m.dedupe_key, 8, 12)
    WHERE m.dedupe_key LIKE 'origin:____________:%'
)
UPDATE pending_messages
SET dedupe_key = (SELECT o.renamed FROM origins AS o WHERE o.id = pending_messages.id)
WHERE id IN (SELECT min(o.id) FROM origins AS o GROUP BY o.session_id, o.renamed);
