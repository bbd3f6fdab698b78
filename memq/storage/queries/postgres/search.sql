-- PostgreSQL's forms of search.sql's statements (memq.storage.sqlfile overlays them by name).
-- The index is the generated tsvector column `search` of observations, summaries and prompts
-- (migration 0001_schema.sql of PostgreSQL), each with a GIN index. Rows are named as on
-- SQLite by rowid = message_id * 4 + 1, 2 or 3 (observation, summary, prompt): the same rank
-- window and session span, and the same order of ties (rowid ascending).
--
-- :query is the tsquery as a text[] of pieces (memq.memory.pg_search): odd positions (1, 3,
-- ..., counted from 1) are operators and parentheses, even positions terms, each passed through
-- memq_search_text as the indexed text was and single-quoted (memq_search_text leaves no
-- quote or backslash), then to_tsquery('english', ...) reads the whole: a quoted term of
-- several words is a phrase, stemmed and without stop words as the index is.

-- name: search
-- Each table's matches (its GIN index), the filters, ts_rank; the best :limit of them; then
-- the snippet of those only. Filters are as on SQLite: :types a JSON array of type codes,
-- :kinds a JSON array of observation kinds (other types pass), :file a part of a path read
-- or written (ASCII letters case folded), :assistants and :authors JSON arrays (the
-- sessions' assistants, the records' authors: migration 0007), :since inclusive,
-- :until exclusive, inherited records only in a search of one session.
--
-- Score: ts_rank with weights {D 0.1, C 0.2, B 0.4, A 1.0} (0001_schema.sql put SQLite's
-- column weights title 10, detail/facts/files/command/prompt 3-5, body 2, output and parts
-- 1 or below in these classes), normalization 32 (rank / (rank + 1): below 1, in the same
-- order as without), times 40. ts_rank knows no word rarity (BM25's IDF) and, without
-- normalization by length, ranks the recall corpus's answers best (recall@1 0.80, MRR 0.875;
-- by 1 + ln(length): 0.76, 0.843; SQLite 0.74, 0.85). Times 40: the share of the corpus's top
-- 10 hits scoring at least 8 (recall_min_score's default) is then about SQLite's (0.43 and
-- 0.48), so that a min_score means about the same on both; the scores of one record on the
-- two backends still differ (tests/postgres/test_pg_search.py).
-- Snippet: ts_headline over the record's fields (in the order of SQLite's columns), one
-- fragment of at most :snippet_tokens words, matches between :mark_open and :mark_close.
-- ts_headline reads the text as PostgreSQL's parser splits it, which keeps a path or a
-- dotted name whole (src/retry.py is one token to it): when it marks nothing, the snippet
-- is made again from the text as memq_search_text gave it to the index, which marks the
-- words of paths but shows their punctuation as spaces. A camelCase part (0011) is never
-- marked. No ellipsis marks where the fragment was cut (SQLite's snippet() has one).
WITH q AS (
    SELECT to_tsquery('english', string_agg(
               CASE WHEN n % 2 = 0 THEN '''' || memq_search_text(piece) || '''' ELSE piece END,
               '' ORDER BY n)) AS q
    FROM unnest(CAST(:query AS text[])) WITH ORDINALITY AS u (piece, n)
),
filters AS (
    SELECT CAST(:types AS text) AS types, CAST(:kinds AS text) AS kinds,
           CAST(:project AS text) AS project, CAST(:session_key AS text) AS session_key,
           CAST(:assistants AS text) AS assistants, CAST(:authors AS text) AS authors,
           CAST(:since AS bigint) AS since,
           CAST(:until AS bigint) AS until,
           translate(CAST(:file AS text), 'ABCDEFGHIJKLMNOPQRSTUVWXYZ',
                     'abcdefghijklmnopqrstuvwxyz') AS file,
           CAST(:rowid_low AS bigint) AS low, CAST(:rowid_high AS bigint) AS high
),
matches AS (
    SELECT o.message_id * 4 + 1 AS rowid, o.id, o.session_key, o.kind, o.title,
           o.created_at, o.inherited, o.author, o.machine, o.files_read,
           o.files_modified AS files_written,
           ts_rank('{0.1, 0.2, 0.4, 1.0}', o.search, q.q, 32) AS rank
    FROM observations AS o, q, filters AS f
    WHERE o.search @@ q.q
      AND o.message_id * 4 + 1 BETWEEN f.low AND f.high
      AND (f.types IS NULL OR 1 IN (SELECT CAST(value AS int)
                                   FROM json_array_elements_text(CAST(f.types AS json))))
      AND (f.kinds IS NULL OR o.kind IN (SELECT value
                                         FROM json_array_elements_text(CAST(f.kinds AS json))))
    UNION ALL
    SELECT m.message_id * 4 + 2, m.id, m.session_key, NULL, coalesce(nullif(m.request, ''),
           m.completed), m.created_at, m.inherited, m.author, m.machine, m.files_read,
           m.files_edited,
           ts_rank('{0.1, 0.2, 0.4, 1.0}', m.search, q.q, 32)
    FROM summaries AS m, q, filters AS f
    WHERE m.search @@ q.q
      AND m.message_id * 4 + 2 BETWEEN f.low AND f.high
      AND (f.types IS NULL OR 2 IN (SELECT CAST(value AS int)
                                   FROM json_array_elements_text(CAST(f.types AS json))))
    UNION ALL
    SELECT p.message_id * 4 + 3, p.id, p.session_key, NULL, p.text, p.created_at,
           p.inherited, p.author, p.machine, NULL, NULL, ts_rank('{0.1, 0.2, 0.4, 1.0}', p.search, q.q, 32)
    FROM prompts AS p, q, filters AS f
    WHERE p.search @@ q.q
      AND p.message_id * 4 + 3 BETWEEN f.low AND f.high
      AND (f.types IS NULL OR 3 IN (SELECT CAST(value AS int)
                                   FROM json_array_elements_text(CAST(f.types AS json))))
),
best AS (
    SELECT h.rowid, h.id, h.kind, h.title, h.created_at, h.inherited, h.author, h.machine,
           h.rank, s.key AS session_key, s.project
    FROM matches AS h
    JOIN sessions AS s ON s.key = h.session_key
    CROSS JOIN filters AS f
    WHERE (f.project IS NULL OR s.project = f.project)
      AND (f.session_key IS NULL OR s.key = f.session_key)
      AND (f.assistants IS NULL
           OR s.assistant IN (SELECT value
                              FROM json_array_elements_text(CAST(f.assistants AS json))))
      AND (f.authors IS NULL
           OR h.author IN (SELECT value
                           FROM json_array_elements_text(CAST(f.authors AS json))))
      AND (f.session_key IS NOT NULL OR h.inherited = 0)
      AND (f.since IS NULL OR h.created_at >= f.since)
      AND (f.until IS NULL OR h.created_at < f.until)
      AND (f.file IS NULL
           OR EXISTS (SELECT 1 FROM json_array_elements_text(CAST(h.files_read AS json)) AS r
                      WHERE strpos(translate(r.value, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ',
                                             'abcdefghijklmnopqrstuvwxyz'), f.file) > 0)
           OR EXISTS (SELECT 1 FROM json_array_elements_text(CAST(h.files_written AS json)) AS w
                      WHERE strpos(translate(w.value, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ',
                                             'abcdefghijklmnopqrstuvwxyz'), f.file) > 0))
    ORDER BY h.rank DESC, h.rowid
    LIMIT :limit
)
SELECT b.rowid & 3 AS type_code,
       b.id,
       b.rowid >> 2 AS message_id,
       b.session_key,
       b.project,
       b.kind,
       b.title,
       CASE WHEN strpos(h.marked, CAST(:mark_open AS text)) > 0 THEN h.marked
            ELSE ts_headline('english', memq_search_text(d.document), q.q, h.options)
       END AS snippet,
       b.rank * 40 AS score,
       b.created_at,
       b.inherited,
       b.author,
       b.machine
FROM best AS b
CROSS JOIN q
CROSS JOIN LATERAL (
    SELECT concat_ws(E'\n', o.title, o.subtitle, o.narrative,
                     memq_search_lines(o.facts), memq_search_lines(o.concepts),
                     memq_search_lines(o.files_read), memq_search_lines(o.files_modified),
                     o.command, o.excerpt, o.tool_name) AS document
    FROM observations AS o WHERE b.rowid & 3 = 1 AND o.message_id = b.rowid >> 2
    UNION ALL
    SELECT concat_ws(E'\n', m.request, m.completed, m.learned, m.investigated, m.next_steps,
                     memq_search_lines(m.files_read), memq_search_lines(m.files_edited),
                     m.notes)
    FROM summaries AS m WHERE b.rowid & 3 = 2 AND m.message_id = b.rowid >> 2
    UNION ALL
    SELECT p.text FROM prompts AS p WHERE b.rowid & 3 = 3 AND p.message_id = b.rowid >> 2
) AS d
CROSS JOIN LATERAL (
    SELECT ts_headline('english', d.document, q.q, o.options) AS marked, o.options
    FROM (SELECT 'MaxFragments=1, MinWords=' || CAST(:snippet_tokens AS int) / 2
                 || ', MaxWords=' || CAST(:snippet_tokens AS int)
                 || ', StartSel="' || CAST(:mark_open AS text)
                 || '", StopSel="' || CAST(:mark_close AS text)
                 || '", FragmentDelimiter="' || CAST(:ellipsis AS text) || '"' AS options) AS o
) AS h
ORDER BY b.rank DESC, b.rowid;

-- name: window_start
-- The rowid of the (:offset + 1)-th newest match between :rowid_low and :rowid_high, none
-- when there are fewer: the matches come from the GIN indexes unranked, and only their
-- rowids are sorted.
WITH q AS (
    SELECT to_tsquery('english', string_agg(
               CASE WHEN n % 2 = 0 THEN '''' || memq_search_text(piece) || '''' ELSE piece END,
               '' ORDER BY n)) AS q
    FROM unnest(CAST(:query AS text[])) WITH ORDINALITY AS u (piece, n)
)
SELECT rowid FROM (
    SELECT o.message_id * 4 + 1 AS rowid FROM observations AS o, q WHERE o.search @@ q.q
    UNION ALL
    SELECT m.message_id * 4 + 2 FROM summaries AS m, q WHERE m.search @@ q.q
    UNION ALL
    SELECT p.message_id * 4 + 3 FROM prompts AS p, q WHERE p.search @@ q.q
) AS found
WHERE rowid BETWEEN :rowid_low AND :rowid_high
ORDER BY rowid DESC
LIMIT 1 OFFSET :offset;

-- name: session_span
-- As on SQLite; PostgreSQL before 16 wants the subquery named.
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
              ORDER BY message_id DESC LIMIT 1)) AS spans;
