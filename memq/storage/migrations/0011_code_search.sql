-- Code-aware search: the index also holds each record's camelCase words split into their
-- parts, so that `policy`, "retry policy", retry_policy and retry-policy all find RetryPolicy.
--
-- What the tokenizer already does (migration 0003, 'porter unicode61 remove_diacritics 2'):
-- every character that is not a letter or digit separates tokens, so retry_policy,
-- retry-policy, src/net/retry.py and "retry policy" are the tokens retry, policy (and src,
-- net, py), and porter folds retries / retried / retrying onto one stem. Paths therefore match
-- by file name (retry.py, retry) and by directory (src/net) as quoted phrases. What it cannot
-- do: a camelCase or PascalCase word (retryPolicy, RetryPolicy, parseRetryAfter) is one token,
-- which no search for one of its parts found.
--
-- The new column `parts` holds, for each field of the record that has a camelCase boundary (a
-- lowercase letter or digit followed by an uppercase one), the field again with a space put at
-- every such boundary: "class RetryPolicy:" is indexed as the token retrypolicy in its own
-- column and as retry, policy in parts. The whole identifier stays in its column, so a search
-- for RetryPolicy (memq.memory.search looks for the word and its parts as a phrase) scores a
-- record that has that very identifier above one that only has its parts (RetryPolicyFactory).
-- Fields without a boundary (most prose, most titles) add nothing: the index grows by the
-- code-bearing fields only. Acronym runs are left whole (HTTPClient stays httpclient): only
-- lower-to-upper boundaries split.
--
-- The split is plain SQL (SQLite has no regular expressions): mark every uppercase letter with
-- char(1) before it, turn the marks that follow a lowercase letter or digit into spaces, drop
-- the rest. Plain SQL keeps what 0003 promised: the view is the one definition of what is
-- indexed, the triggers keep the index in step whoever writes (a hand-run statement too: no
-- application function is needed), and this migration needs nothing but SQL to run.
--
-- Everything else is as in 0003 (see its comments): external content through the view, the
-- rowid scheme, the triggers. The index is rebuilt from the memory tables at the end: about
-- 5 s for 100,000 observations with their prompts and summaries, half of them with code, on a
-- small machine (scripts/bench_recall.py --migration 100000); 0003's index alone took 1.3 s.

DROP TRIGGER observations_fts_insert;
DROP TRIGGER observations_fts_delete;
DROP TRIGGER observations_fts_unindex;
DROP TRIGGER observations_fts_reindex;
DROP TRIGGER summaries_fts_insert;
DROP TRIGGER summaries_fts_delete;
DROP TRIGGER summaries_fts_unindex;
DROP TRIGGER summaries_fts_reindex;
DROP TRIGGER prompts_fts_insert;
DROP TRIGGER prompts_fts_delete;
DROP TRIGGER prompts_fts_unindex;
DROP TRIGGER prompts_fts_reindex;
DROP TABLE memory_fts;
DROP VIEW memory_fts_content;

-- The index's content: the columns of 0003 plus parts, in three views (SQLite's parser takes
-- some 30 nested calls in one statement at most). SQLite pushes rid = ? down through them into
-- each arm of the UNION ALL, so one record is still one probe of 0003's expression indexes.

-- The fields of each record type as 0003 indexed them, and `camel`: those of its fields that
-- have a camelCase boundary; `marked`: camel with a mark, char(1), before every uppercase letter.
CREATE VIEW memory_fts_marked AS
SELECT rid, title, detail, body, facts, files, command, output, prompt,
       replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(
       replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(
       replace(replace(replace(replace(replace(replace(
       camel,
       'A', char(1) || 'A'), 'B', char(1) || 'B'), 'C', char(1) || 'C'),
       'D', char(1) || 'D'), 'E', char(1) || 'E'), 'F', char(1) || 'F'),
       'G', char(1) || 'G'), 'H', char(1) || 'H'), 'I', char(1) || 'I'),
       'J', char(1) || 'J'), 'K', char(1) || 'K'), 'L', char(1) || 'L'),
       'M', char(1) || 'M'), 'N', char(1) || 'N'), 'O', char(1) || 'O'),
       'P', char(1) || 'P'), 'Q', char(1) || 'Q'), 'R', char(1) || 'R'),
       'S', char(1) || 'S'), 'T', char(1) || 'T'), 'U', char(1) || 'U'),
       'V', char(1) || 'V'), 'W', char(1) || 'W'), 'X', char(1) || 'X'),
       'Y', char(1) || 'Y'), 'Z', char(1) || 'Z') AS marked
FROM (
    SELECT message_id * 4 + 1 AS rid, title, subtitle AS detail, narrative AS body,
           replace(replace(replace(replace(replace(facts || char(10) || concepts,
                   '[]', ''), '", "', char(10)), '","', char(10)), '["', ''), '"]', '')
               AS facts,
           replace(replace(replace(replace(replace(files_read || char(10) || files_modified,
                   '[]', ''), '", "', char(10)), '","', char(10)), '["', ''), '"]', '')
               AS files,
           command,
           excerpt || char(10) || coalesce(tool_name, '') AS output,
           NULL AS prompt,
           iif(title GLOB '*[a-z0-9][A-Z]*', title || char(10), '') ||
           iif(subtitle GLOB '*[a-z0-9][A-Z]*', subtitle || char(10), '') ||
           iif(narrative GLOB '*[a-z0-9][A-Z]*', narrative || char(10), '') ||
           iif(facts GLOB '*[a-z0-9][A-Z]*', facts || char(10), '') ||
           iif(concepts GLOB '*[a-z0-9][A-Z]*', concepts || char(10), '') ||
           iif(files_read GLOB '*[a-z0-9][A-Z]*', files_read || char(10), '') ||
           iif(files_modified GLOB '*[a-z0-9][A-Z]*', files_modified || char(10), '') ||
           iif(command GLOB '*[a-z0-9][A-Z]*', command || char(10), '') ||
           iif(excerpt GLOB '*[a-z0-9][A-Z]*', excerpt || char(10), '') AS camel
    FROM observations
    UNION ALL
    SELECT message_id * 4 + 2, request, completed || char(10) || learned,
           investigated || char(10) || next_steps, NULL,
           replace(replace(replace(replace(replace(files_read || char(10) || files_edited,
                   '[]', ''), '", "', char(10)), '","', char(10)), '["', ''), '"]', ''),
           NULL, notes, NULL,
           iif(request GLOB '*[a-z0-9][A-Z]*', request || char(10), '') ||
           iif(investigated GLOB '*[a-z0-9][A-Z]*', investigated || char(10), '') ||
           iif(learned GLOB '*[a-z0-9][A-Z]*', learned || char(10), '') ||
           iif(completed GLOB '*[a-z0-9][A-Z]*', completed || char(10), '') ||
           iif(next_steps GLOB '*[a-z0-9][A-Z]*', next_steps || char(10), '') ||
           iif(files_read GLOB '*[a-z0-9][A-Z]*', files_read || char(10), '') ||
           iif(files_edited GLOB '*[a-z0-9][A-Z]*', files_edited || char(10), '') ||
           iif(notes GLOB '*[a-z0-9][A-Z]*', notes || char(10), '')
    FROM summaries
    UNION ALL
    SELECT message_id * 4 + 3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, text,
           iif(text GLOB '*[a-z0-9][A-Z]*', text || char(10), '')
    FROM prompts
);

-- The marks that follow a lowercase letter or digit become spaces (here and in the content
-- view), the others go: "RetryPolicy" is "Retry Policy".
CREATE VIEW memory_fts_split AS
SELECT rid, title, detail, body, facts, files, command, output, prompt,
       replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(
       replace(replace(replace(replace(replace(replace(replace(
       marked,
       'a' || char(1), 'a '), 'b' || char(1), 'b '), 'c' || char(1), 'c '),
       'd' || char(1), 'd '), 'e' || char(1), 'e '), 'f' || char(1), 'f '),
       'g' || char(1), 'g '), 'h' || char(1), 'h '), 'i' || char(1), 'i '),
       'j' || char(1), 'j '), 'k' || char(1), 'k '), 'l' || char(1), 'l '),
       'm' || char(1), 'm '), 'n' || char(1), 'n '), 'o' || char(1), 'o '),
       'p' || char(1), 'p '), 'q' || char(1), 'q '), 'r' || char(1), 'r ') AS split
FROM memory_fts_marked;

CREATE VIEW memory_fts_content
    (rid, title, detail, body, facts, files, command, output, prompt, parts) AS
SELECT rid, title, detail, body, facts, files, command, output, prompt,
       replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(
       replace(replace(replace(replace(replace(replace(replace(replace(
       split,
       's' || char(1), 's '), 't' || char(1), 't '), 'u' || char(1), 'u '), 'v' || char(1), 'v '),
       'w' || char(1), 'w '), 'x' || char(1), 'x '), 'y' || char(1), 'y '), 'z' || char(1), 'z '),
       '0' || char(1), '0 '), '1' || char(1), '1 '), '2' || char(1), '2 '), '3' || char(1), '3 '),
       '4' || char(1), '4 '), '5' || char(1), '5 '), '6' || char(1), '6 '), '7' || char(1), '7 '),
       '8' || char(1), '8 '), '9' || char(1), '9 '), char(1), '') AS parts
FROM memory_fts_split;

CREATE VIRTUAL TABLE memory_fts USING fts5 (
    title, detail, body, facts, files, command, output, prompt, parts,
    content = 'memory_fts_content', content_rowid = 'rid',
    tokenize = 'porter unicode61 remove_diacritics 2'
);

-- Observations

CREATE TRIGGER observations_fts_insert AFTER INSERT ON observations BEGIN
    INSERT INTO memory_fts (rowid, title, detail, body, facts, files, command, output, prompt,
                            parts)
    SELECT rid, title, detail, body, facts, files, command, output, prompt, parts
    FROM memory_fts_content WHERE rid = new.message_id * 4 + 1;
END;

CREATE TRIGGER observations_fts_delete BEFORE DELETE ON observations BEGIN
    INSERT INTO memory_fts (memory_fts, rowid, title, detail, body, facts, files, command,
                            output, prompt, parts)
    SELECT 'delete', rid, title, detail, body, facts, files, command, output, prompt, parts
    FROM memory_fts_content WHERE rid = old.message_id * 4 + 1;
END;

CREATE TRIGGER observations_fts_unindex
BEFORE UPDATE OF message_id, title, subtitle, narrative, facts, concepts, files_read,
                 files_modified, command, excerpt, tool_name
ON observations BEGIN
    INSERT INTO memory_fts (memory_fts, rowid, title, detail, body, facts, files, command,
                            output, prompt, parts)
    SELECT 'delete', rid, title, detail, body, facts, files, command, output, prompt, parts
    FROM memory_fts_content WHERE rid = old.message_id * 4 + 1;
END;

CREATE TRIGGER observations_fts_reindex
AFTER UPDATE OF message_id, title, subtitle, narrative, facts, concepts, files_read,
                 files_modified, command, excerpt, tool_name
ON observations BEGIN
    INSERT INTO memory_fts (rowid, title, detail, body, facts, files, command, output, prompt,
                            parts)
    SELECT rid, title, detail, body, facts, files, command, output, prompt, parts
    FROM memory_fts_content WHERE rid = new.message_id * 4 + 1;
END;

-- Summaries

CREATE TRIGGER summaries_fts_insert AFTER INSERT ON summaries BEGIN
    INSERT INTO memory_fts (rowid, title, detail, body, facts, files, command, output, prompt,
                            parts)
    SELECT rid, title, detail, body, facts, files, command, output, prompt, parts
    FROM memory_fts_content WHERE rid = new.message_id * 4 + 2;
END;

CREATE TRIGGER summaries_fts_delete BEFORE DELETE ON summaries BEGIN
    INSERT INTO memory_fts (memory_fts, rowid, title, detail, body, facts, files, command,
                            output, prompt, parts)
    SELECT 'delete', rid, title, detail, body, facts, files, command, output, prompt, parts
    FROM memory_fts_content WHERE rid = old.message_id * 4 + 2;
END;

CREATE TRIGGER summaries_fts_unindex
BEFORE UPDATE OF message_id, request, investigated, learned, completed, next_steps, notes,
                 files_read, files_edited
ON summaries BEGIN
    INSERT INTO memory_fts (memory_fts, rowid, title, detail, body, facts, files, command,
                            output, prompt, parts)
    SELECT 'delete', rid, title, detail, body, facts, files, command, output, prompt, parts
    FROM memory_fts_content WHERE rid = old.message_id * 4 + 2;
END;

CREATE TRIGGER summaries_fts_reindex
AFTER UPDATE OF message_id, request, investigated, learned, completed, next_steps, notes,
                 files_read, files_edited
ON summaries BEGIN
    INSERT INTO memory_fts (rowid, title, detail, body, facts, files, command, output, prompt,
                            parts)
    SELECT rid, title, detail, body, facts, files, command, output, prompt, parts
    FROM memory_fts_content WHERE rid = new.message_id * 4 + 2;
END;

-- Prompts

CREATE TRIGGER prompts_fts_insert AFTER INSERT ON prompts BEGIN
    INSERT INTO memory_fts (rowid, title, detail, body, facts, files, command, output, prompt,
                            parts)
    SELECT rid, title, detail, body, facts, files, command, output, prompt, parts
    FROM memory_fts_content WHERE rid = new.message_id * 4 + 3;
END;

CREATE TRIGGER prompts_fts_delete BEFORE DELETE ON prompts BEGIN
    INSERT INTO memory_fts (memory_fts, rowid, title, detail, body, facts, files, command,
                            output, prompt, parts)
    SELECT 'delete', rid, title, detail, body, facts, files, command, output, prompt, parts
    FROM memory_fts_content WHERE rid = old.message_id * 4 + 3;
END;

CREATE TRIGGER prompts_fts_unindex
BEFORE UPDATE OF message_id, text
ON prompts BEGIN
    INSERT INTO memory_fts (memory_fts, rowid, title, detail, body, facts, files, command,
                            output, prompt, parts)
    SELECT 'delete', rid, title, detail, body, facts, files, command, output, prompt, parts
    FROM memory_fts_content WHERE rid = old.message_id * 4 + 3;
END;

CREATE TRIGGER prompts_fts_reindex
AFTER UPDATE OF message_id, text
ON prompts BEGIN
    INSERT INTO memory_fts (rowid, title, detail, body, facts, files, command, output, prompt,
                            parts)
    SELECT rid, title, detail, body, facts, files, command, output, prompt, parts
    FROM memory_fts_content WHERE rid = new.message_id * 4 + 3;
END;

-- Records written before this migration.
INSERT INTO memory_fts (memory_fts) VALUES ('rebuild');
