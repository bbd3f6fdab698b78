-- PostgreSQL forms of feed.sql's statements that differ (memq.storage.sqlfile overlays them
-- by name). A parameter tested with IS NULL before any other use is cast there: the server
-- types it from its first use, and psycopg sends text and None untyped.

-- name: append_feed
-- The subquery in FROM needs an alias on PostgreSQL. Seqs in commit order: an identity
-- hands its values out at insert, not at commit, so two daemons' acks could commit seq 11
-- before seq 10, and a reader resuming after 11 would never see 10. The schema's feed lock
-- (held to the end of the ack's transaction, released after its commit is visible) is
-- taken before any seq is drawn: the next writer draws after this one's rows are visible.
WITH feed_lock AS MATERIALIZED (
    SELECT pg_advisory_xact_lock(hashtext('memq.feed'), hashtext(current_schema())) AS taken)
INSERT INTO feed (at, session_key, project, record_type, record_id)
SELECT :at, :session_key, (SELECT project FROM sessions WHERE key = :session_key), kind, id
FROM feed_lock, (
    SELECT 1 AS rank, 'prompt' AS kind, id FROM prompts
    WHERE message_id = :message_id AND session_key = :session_key
    UNION ALL
    SELECT 2, 'observation', id FROM observations
    WHERE message_id = :message_id AND session_key = :session_key
    UNION ALL
    SELECT 3, 'summary', id FROM summaries
    WHERE message_id = :message_id AND session_key = :session_key
) AS records
ORDER BY rank

-- name: feed_after
-- :assistants read with jsonb_array_elements_text where SQLite looks for the quoted name in
-- its text (json_quote and instr, for SQLite's planner), :authors likewise; casts on the NULL
-- tests.
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
  AND (:session_key::text IS NULL OR s.key = :session_key)
  AND (:project::text IS NULL OR s.project = :project)
  AND (:assistants::jsonb IS NULL
       OR s.assistant IN (SELECT jsonb_array_elements_text(:assistants::jsonb)))
  AND (:authors::jsonb IS NULL
       OR coalesce(o.author, m.author, p.author)
          IN (SELECT jsonb_array_elements_text(:authors::jsonb)))
ORDER BY f.seq
LIMIT :limit

-- name: feed_newest
-- As feed_after.
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
  AND (:session_key::text IS NULL OR s.key = :session_key)
  AND (:project::text IS NULL OR s.project = :project)
  AND (:assistants::jsonb IS NULL
       OR s.assistant IN (SELECT jsonb_array_elements_text(:assistants::jsonb)))
  AND (:authors::jsonb IS NULL
       OR coalesce(o.author, m.author, p.author)
          IN (SELECT jsonb_array_elements_text(:authors::jsonb)))
ORDER BY f.seq DESC
LIMIT :limit
