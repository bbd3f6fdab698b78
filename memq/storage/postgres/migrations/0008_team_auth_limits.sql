-- SQLite's 0019_team_auth_limits (memq/storage/migrations), whose comments say what each
-- part is for: refused tokens counted per address, key id and reason per minute in the
-- audit log (the other rows stay exact), and the forwarded events' dedupe keys by the key's
-- name instead of its id (`origin:<length of name>.<name>:<machine>:<local_id>`).
ALTER TABLE audit_log
    ADD COLUMN address TEXT,
    ADD COLUMN times   BIGINT NOT NULL DEFAULT 1 CHECK (times >= 1),
    ADD COLUMN minute  BIGINT;

CREATE INDEX audit_log_minute ON audit_log (minute) WHERE minute IS NOT NULL;

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
