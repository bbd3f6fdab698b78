-- The live feed (memq.memory.feed): what memory gained, in order. Times are epoch ms.

-- name: append_feed
-- The records message :message_id just added to :session_key (a prompt, an observation, a
-- summary: at most one of each), run by the store's effect after it inserted them.
INSERT INTO feed (at, session_key, project, record_type, record_id)
SELECT :at, :session_key, (SELECT project FROM sessions WHERE key = :session_key), kind, id
FROM (
    SELECT 1 AS rank, 'prompt' AS kind, id FROM prompts
    WHERE message_id = :message_id AND session_key = :session_key
    UNION ALL
    SELECT 2, 'observation', id FROM observations
    WHERE message_id = :message_id AND session_key = :session_key
    UNION ALL
    SELECT 3, 'summary', id FROM summaries
    WHERE message_id = :message_id AND session_key = :session_key
)
ORDER BY rank

-- name: feed_after
-- The first :limit items after seq :after, with the record's current session and project
-- (a transfer moves records); a record deleted since has no session here and is left out.
-- :assistants is a JSON array of assistant names (NULL: all), matched as a quoted name in
-- its text so that every step of the plan stays an index search (no list subquery); :authors
-- (the record's author, migration 0018) the same way, a record without one never matching.
SELECT f.seq, f.at, f.record_type, f.record_id, s.key AS session_key, s.assistant, s.project,
       substr(coalesce(o.title, m.request, p.text), 1, 300) AS title, o.kind,
       coalesce(o.created_at, m.created_at, p.created_at) AS created_at,
       coalesce(o.author, m.author, p.author) AS author,
       coalesce(o.machine, m.machine, p.machine) AS machine
FROM feed AS f
LEFT JOIN observations AS o ON f.record_type = 'observation' AND o.id = f.record_id
LEFT JOIN summaries AS m ON f.record_type = 'summary' AND m.id = f.record_id
LEFT JOIN prompts AS p ON f.record_type = 'prompt' AND p.id = f.record_id
JOIN sessions AS s ON s.key = coalesce(o.session_key, m.session_key, p.session_key)
WHERE f.seq > :after
  AND (:session_key IS NULL OR s.key = :session_key)
  AND (:project IS NULL OR s.project = :project)
  AND (:assistants IS NULL OR instr(:assistants, json_quote(s.assistant)) > 0)
  AND (:authors IS NULL
       OR (coalesce(o.author, m.author, p.author) IS NOT NULL
           AND instr(:authors, json_quote(coalesce(o.author, m.author, p.author))) > 0))
ORDER BY f.seq
LIMIT :limit

-- name: feed_newest
-- The newest :limit items up to seq :upto, newest first.
SELECT f.seq, f.at, f.record_type, f.record_id, s.key AS session_key, s.assistant, s.project,
       substr(coalesce(o.title, m.request, p.text), 1, 300) AS title, o.kind,
       coalesce(o.created_at, m.created_at, p.created_at) AS created_at,
       coalesce(o.author, m.author, p.author) AS author,
       coalesce(o.machine, m.machine, p.machine) AS machine
FROM feed AS f
LEFT JOIN observations AS o ON f.record_type = 'observation' AND o.id = f.record_id
LEFT JOIN summaries AS m ON f.record_type = 'summary' AND m.id = f.record_id
LEFT JOIN prompts AS p ON f.record_type = 'prompt' AND p.id = f.record_id
JOIN sessions AS s ON s.key = coalesce(o.session_key, m.session_key, p.session_key)
WHERE f.seq <= :upto
  AND (:session_key IS NULL OR s.key = :session_key)
  AND (:project IS NULL OR s.project = :project)
  AND (:assistants IS NULL OR instr(:assistants, json_quote(s.assistant)) > 0)
  AND (:authors IS NULL
       OR (coalesce(o.author, m.author, p.author) IS NOT NULL
           AND instr(:authors, json_quote(coalesce(o.author, m.author, p.author))) > 0))
ORDER BY f.seq DESC
LIMIT :limit

-- name: feed_last_seq
SELECT coalesce(max(seq), 0) AS seq FROM feed

-- name: prune_feed_before
-- A chunk at a time, as usage pruning does: the write lock is never held for long.
DELETE FROM feed
WHERE seq IN (SELECT seq FROM feed WHERE at < :before ORDER BY at LIMIT :chunk)

-- name: prune_feed_over
-- Beyond the newest :keep rows, the oldest go.
DELETE FROM feed
WHERE seq IN (SELECT seq FROM feed ORDER BY seq DESC LIMIT :chunk OFFSET :keep)
