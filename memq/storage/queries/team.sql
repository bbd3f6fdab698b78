-- The team server's API keys, audit log and use counts (memq.team.keys). Every statement
-- runs on both backends as written. Times are epoch milliseconds of the queue's clock.

-- name: create_key
-- Nothing is inserted (no row returned) when an unrevoked key has the name already.
INSERT INTO api_keys (key_id, name, secret_hash, projects, all_projects, created_at)
VALUES (:key_id, :name, :secret_hash, :projects, :all_projects, :now)
ON CONFLICT (name) WHERE revoked_at IS NULL DO NOTHING
RETURNING key_id;

-- name: key_by_id
-- Every authentication reads its key's row: a revocation takes effect at the next request.
SELECT key_id, name, secret_hash, projects, all_projects, created_at, revoked_at,
       last_used_at
FROM api_keys
WHERE key_id = :key_id;

-- name: list_keys
-- Every key, revoked ones too, oldest first; never the secret's hash. `recent_requests`:
-- its requests in the hours from `since` on.
SELECT k.key_id, k.name, k.projects, k.all_projects, k.created_at, k.revoked_at,
       k.last_used_at,
       CAST((SELECT coalesce(sum(u.requests), 0) FROM key_use AS u
             WHERE u.key_id = k.key_id AND u.hour >= :since) AS BIGINT) AS recent_requests
FROM api_keys AS k
ORDER BY k.created_at, k.key_id;

-- name: revoke_key
-- The unrevoked key with that id or name (names never look like ids: at most one matches).
UPDATE api_keys SET revoked_at = :now
WHERE revoked_at IS NULL AND (key_id = :key OR name = :key)
RETURNING key_id, name, projects, all_projects, created_at, revoked_at, last_used_at;

-- name: revoked_key
-- After revoke_key found nothing: whether a key by that id or name was revoked already.
SELECT key_id, name, revoked_at FROM api_keys
WHERE revoked_at IS NOT NULL AND (key_id = :key OR name = :key)
ORDER BY revoked_at DESC
LIMIT 1;

-- name: count_use
-- One more request of the key in the hour that starts at `hour`.
INSERT INTO key_use (key_id, hour, requests) VALUES (:key_id, :hour, 1)
ON CONFLICT (key_id, hour) DO UPDATE SET requests = key_use.requests + 1;

-- name: mark_used
UPDATE api_keys SET last_used_at = :now WHERE key_id = :key_id;

-- name: key_use
-- The key's requests per hour, oldest first.
SELECT hour, requests FROM key_use WHERE key_id = :key_id ORDER BY hour;

-- name: audit
-- One exact row: what was done with a key (create, revoke, a project refused, a deletion).
INSERT INTO audit_log (at, key_id, key_name, action, target, detail, address)
VALUES (:now, :key_id, :key_name, :action, :target, :detail, :address);

-- name: count_refused_token
-- A refused token, counted in its address, key id and reason's row of the minute that
-- starts at `minute` (one row however many tries: the audit log stays bounded). No row
-- changed: the minute's first, audit_refused_token writes it.
UPDATE audit_log SET times = times + 1
WHERE minute = :minute
  AND action = 'refused'
  AND coalesce(address, '') = coalesce(:address, '')
  AND coalesce(key_id, '') = coalesce(:key_id, '')
  AND detail = :detail;

-- name: audit_refused_token
INSERT INTO audit_log (at, key_id, key_name, action, detail, address, times, minute)
VALUES (:now, :key_id, :key_name, 'refused', :detail, :address, 1, :minute);

-- name: audit_entries
-- The newest entries first.
SELECT id, at, key_id, key_name, action, target, detail, address, times
FROM audit_log
ORDER BY id DESC
LIMIT :limit;

-- name: prune_audit
-- One chunk of the audit log's rows older than the retention (memq.team.audit_retention).
DELETE FROM audit_log
WHERE id IN (SELECT id FROM audit_log WHERE at < :before ORDER BY id LIMIT :chunk);

-- name: prune_key_use
-- Each key's hours older than the retention: one row per key and hour, few to delete.
DELETE FROM key_use WHERE hour < :before;
