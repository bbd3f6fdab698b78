-- Every statement memory search runs, all reads on its own connection. Migration 0003 made
-- the index memory_fts: one FTS5 index of observations, summaries and prompts, whose rowid is
-- message_id * 4 + 1, 2 or 3 for the three record types (so rowid order is time order);
-- migration 0011 added its column parts (camelCase words split into their parts).
-- Times are integer milliseconds since the Unix epoch; lists are JSON text.

-- name: search
-- The index drives: MATCH finds the records between :rowid_low and :rowid_high and FTS5
-- returns them in rank order itself (no sort by SQLite); each is read by its UNIQUE
-- message_id from its own table (the LEFT JOIN whose type matches the rowid), its session by
-- key; the filters drop what they must and LIMIT stops the walk, so only the rows returned
-- pay for snippet(). A NULL filter means "no filter".
--
-- Rank is bm25() with one weight per column of memory_fts: title 10, detail 4, body 2,
-- facts 3, files 3, command 3, output 1, prompt 5, parts 0.5 (parts repeats, split, words
-- that their own column already counts: the split adds a little, the whole identifier in its
-- column counts for more). The score is -rank: positive, higher is better.
--
-- :types is a JSON array of type codes (1 observation, 2 summary, 3 prompt); :kinds a JSON
-- array of observation kinds, which leaves the other types alone; :file keeps records whose
-- read, modified or edited paths contain that text, ASCII case folded (prompts have none);
-- :assistants a JSON array of assistant names (sessions.assistant); :authors a JSON array of
-- the people whose records to keep (the record's author, migration 0018: a record made on this
-- machine has none and is left out by it).
--
-- The records a fork inherited (a copy of its parent's, migration 0005) are left out, so that
-- each record is found once, as its parent's; a search filtered to one session includes its
-- inherited records, which are part of that session's memory. The flag is read from the row
-- already fetched: it costs no look-up.
SELECT f.rowid & 3 AS type_code,
       coalesce(o.id, m.id, p.id) AS id,
       f.rowid >> 2 AS message_id,
       s.key AS session_key,
       s.project,
       o.kind,
       coalesce(o.title, nullif(m.request, ''), m.completed, p.text) AS title,
       snippet(memory_fts, -1, :mark_open, :mark_close, :ellipsis, :snippet_tokens)
           AS snippet,
       -f.rank AS score,
       coalesce(o.created_at, m.created_at, p.created_at) AS created_at,
       coalesce(o.inherited, m.inherited, p.inherited) AS inherited,
       coalesce(o.author, m.author, p.author) AS author,
       coalesce(o.machine, m.machine, p.machine) AS machine
FROM memory_fts AS f
LEFT JOIN observations AS o ON o.message_id = f.rowid >> 2 AND f.rowid & 3 = 1
LEFT JOIN summaries AS m ON m.message_id = f.rowid >> 2 AND f.rowid & 3 = 2
LEFT JOIN prompts AS p ON p.message_id = f.rowid >> 2 AND f.rowid & 3 = 3
JOIN sessions AS s ON s.key = coalesce(o.session_key, m.session_key, p.session_key)
WHERE memory_fts MATCH :query
  AND f.rank MATCH 'bm25(10.0, 4.0, 2.0, 3.0, 3.0, 3.0, 1.0, 5.0, 0.5)'
  AND f.rowid BETWEEN :rowid_low AND :rowid_high
  AND (:types IS NULL OR f.rowid & 3 IN (SELECT value FROM json_each(:types)))
  AND (:kinds IS NULL OR o.kind IS NULL OR o.kind IN (SELECT value FROM json_each(:kinds)))
  AND (:project IS NULL OR s.project = :project)
  AND (:session_key IS NULL OR s.key = :session_key)
  AND (:assistants IS NULL OR s.assistant IN (SELECT value FROM json_each(:assistants)))
  AND (:authors IS NULL
       OR coalesce(o.author, m.author, p.author) IN (SELECT value FROM json_each(:authors)))
  AND (:session_key IS NOT NULL OR coalesce(o.inherited, m.inherited, p.inherited) = 0)
  AND (:since IS NULL OR coalesce(o.created_at, m.created_at, p.created_at) >= :since)
  AND (:until IS NULL OR coalesce(o.created_at, m.created_at, p.created_at) < :until)
  AND (:file IS NULL
       OR EXISTS (SELECT 1 FROM json_each(coalesce(o.files_read, m.files_read))
                  WHERE instr(lower(value), lower(:file)) > 0)
       OR EXISTS (SELECT 1 FROM json_each(coalesce(o.files_modified, m.files_edited))
                  WHERE instr(lower(value), lower(:file)) > 0))
ORDER BY f.rank
LIMIT :limit;

-- name: window_start
-- The rowid of the (:offset + 1)-th newest match between :rowid_low and :rowid_high, none
-- when there are fewer: a query that matches more records than that ranks only the newer
-- ones. FTS5 walks its matches newest first without scoring them.
SELECT rowid FROM memory_fts
WHERE memory_fts MATCH :query AND rowid BETWEEN :rowid_low AND :rowid_high
ORDER BY rowid DESC
LIMIT 1 OFFSET :offset;

-- name: session_span
-- The first and last message id with a record in the session (NULLs when none): six reads
-- from the ends of the indexes on (session_key, message_id).
SELECT min(low) AS low, max(high) AS high
FROM (SELECT (SELECT message_id FROM observations WHERE session_key = :session_key
              ORDER BY message_id LIMIT 1) AS low,
             (SELECT message_id FROM observations WHERE session_key = :session_key
              ORDER BY message_id DESC LIMIT 1) AS high
      UNION ALL
      SELECT (SELECT message_id FROM summaries WHERE session_key = :session_key
              ORDER BY message_id LIMIT 1),
             (SELECT message_id FROM summaries WHERE session_key = :session_key
              ORDER BY message_id DESC LIMIT 1)
      UNION ALL
      SELECT (SELECT message_id FROM prompts WHERE session_key = :session_key
              ORDER BY message_id LIMIT 1),
             (SELECT message_id FROM prompts WHERE session_key = :session_key
              ORDER BY message_id DESC LIMIT 1));

-- name: prompts_of_message
-- The timeline's anchor: what one message produced (each by its UNIQUE message_id index).
SELECT id, message_id, session_key, number, text, created_at, inherited, author, machine
FROM prompts
WHERE message_id = :message_id;

-- name: observations_of_message
SELECT id, message_id, session_key, kind, title, subtitle, narrative, facts, concepts,
       files_read, files_modified, tool_name, command, exit_code, excerpt, created_at,
       inherited, author, machine
FROM observations
WHERE message_id = :message_id;

-- name: summaries_of_message
SELECT id, message_id, session_key, request, investigated, learned, completed, next_steps,
       files_read, files_edited, notes, created_at, inherited, author, machine
FROM summaries
WHERE message_id = :message_id;

-- name: prompts_before
-- The session's records just before a message, newest first (index prompts_session: prompt
-- numbers follow message order only until a transfer merges sessions). Inherited records
-- come too, with their flag: the timeline drops them around a record of the session's own (memq.memory.search).
SELECT id, message_id, session_key, number, text, created_at, inherited, author, machine
FROM prompts
WHERE session_key = :session_key AND message_id < :message_id
ORDER BY message_id DESC
LIMIT :limit;

-- name: observations_before
-- Index observations_session.
SELECT id, message_id, session_key, kind, title, subtitle, narrative, facts, concepts,
       files_read, files_modified, tool_name, command, exit_code, excerpt, created_at,
       inherited, author, machine
FROM observations
WHERE session_key = :session_key AND message_id < :message_id
ORDER BY message_id DESC
LIMIT :limit;

-- name: summaries_before
-- Index summaries_session.
SELECT id, message_id, session_key, request, investigated, learned, completed, next_steps,
       files_read, files_edited, notes, created_at, inherited, author, machine
FROM summaries
WHERE session_key = :session_key AND message_id < :message_id
ORDER BY message_id DESC
LIMIT :limit;

-- name: prompts_after
-- The session's records just after a message, oldest first.
SELECT id, message_id, session_key, number, text, created_at, inherited, author, machine
FROM prompts
WHERE session_key = :session_key AND message_id > :message_id
ORDER BY message_id
LIMIT :limit;

-- name: observations_after
SELECT id, message_id, session_key, kind, title, subtitle, narrative, facts, concepts,
       files_read, files_modified, tool_name, command, exit_code, excerpt, created_at,
       inherited, author, machine
FROM observations
WHERE session_key = :session_key AND message_id > :message_id
ORDER BY message_id
LIMIT :limit;

-- name: summaries_after
SELECT id, message_id, session_key, request, investigated, learned, completed, next_steps,
       files_read, files_edited, notes, created_at, inherited, author, machine
FROM summaries
WHERE session_key = :session_key AND message_id > :message_id
ORDER BY message_id
LIMIT :limit;
