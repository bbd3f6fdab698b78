-- Full-text search over memory: one FTS5 index, memory_fts, of observations, summaries and
-- prompts together.
--
-- One index for the three record types, so that BM25 weighs a word by how rare it is in all
-- of memory and the scores of an observation, a summary and a prompt can be compared (three
-- indexes would each count words in their own table: a word in every summary of a young
-- memory would score nothing there). Its rowid names the record by the message it came from
-- (UNIQUE in each table): message_id * 4 + 1 for an observation, + 2 for a summary, + 3 for
-- a prompt. Message ids ascend in the order the queue accepted the events, so rowid order is
-- time order: a search can rank only the newest matches of a word found everywhere, or only
-- the message-id span of one session, as rowid ranges that FTS5 seeks to.
--
-- External content: memory_fts stores only the index; the text stays in the memory tables
-- once, and snippet() reads it through the view memory_fts_content, which maps each record
-- type's fields onto the index's columns. The view finds one record by rid through the
-- expression indexes below (SQLite pushes rid = ? into each arm of the UNION ALL), so a
-- snippet costs one index probe per table. A contentless index (content = '') cannot make
-- snippets and needs the old values to delete on this SQLite (contentless_delete is 3.43);
-- an FTS5 table with its own content would store every text twice.
--
-- Triggers keep the index in step inside the writing transaction, whoever writes (the queue's
-- writer, a forget, a hand-run statement): a record and its index entry commit together or not
-- at all. An external-content index must be given exactly the values it indexed to remove
-- them ('delete' command), so every trigger reads them from the view, the one definition of
-- what is indexed: AFTER INSERT adds the new row, BEFORE DELETE removes the row while it is
-- still there, and an UPDATE of an indexed column removes before and adds after.
--
-- Columns and what fills them (weights are in queries/search.sql):
--   title    observation title, summary request
--   detail   observation subtitle, summary completed + learned
--   body     observation narrative, summary investigated + next_steps
--   facts    observation facts + concepts
--   files    files read and modified (observations) or read and edited (summaries)
--   command  observation command
--   output   observation excerpt + tool name, summary notes
--   prompt   prompt text (its own column: what was asked weighs less than what was done)
-- JSON lists are indexed as their items one per line: a pure string rewrite of the stored
-- text (no aggregate whose order could change), so the view gives the same value every time.
--
-- Tokenizer: 'porter unicode61 remove_diacritics 2'.
-- * unicode61 splits on everything but letters and digits, so src/retry_policy.py is the
--   tokens src, retry, policy, py: a search for "policy" finds the path, and a quoted phrase
--   "retry_policy.py" still matches it exactly (FTS5 phrases need adjacent tokens). Making
--   '_' a token character would turn retry_policy into one token that "retry" never finds.
-- * porter folds English word forms (retry, retries, retrying -> retri; change, changed ->
--   chang), which is what questions typed by a person need. It stems the index and the query
--   alike, identifiers included, so exact words still match.
-- * A camelCase identifier (retryWithBackoff) stays one token; memq.memory.search also looks
--   for its words as a phrase ("retry with backoff"), which finds the snake_case spelling and
--   prose. A prefix query such as retry* does not reach it under porter: the cost of stemming.
-- * remove_diacritics 2 lets "cafe" find "café".

-- Fail with a clear message, before anything else, when this SQLite has no FTS5.
CREATE TEMP TABLE memq_needs_fts5 (
    available INTEGER
        CONSTRAINT "memq needs SQLite built with FTS5 (ENABLE_FTS5); this one is not"
        CHECK (available)
);
INSERT INTO memq_needs_fts5 (available)
SELECT count(*) FROM pragma_compile_options WHERE compile_options = 'ENABLE_FTS5';
DROP TABLE memq_needs_fts5;

-- One record by rid, for the view (see above).
CREATE INDEX observations_fts_rid ON observations (message_id * 4 + 1);
CREATE INDEX summaries_fts_rid ON summaries (message_id * 4 + 2);
CREATE INDEX prompts_fts_rid ON prompts (message_id * 4 + 3);

CREATE VIEW memory_fts_content
    (rid, title, detail, body, facts, files, command, output, prompt) AS
SELECT message_id * 4 + 1, title, subtitle, narrative,
       replace(replace(replace(replace(replace(facts || char(10) || concepts,
           '[]', ''), '", "', char(10)), '","', char(10)), '["', ''), '"]', ''),
       replace(replace(replace(replace(replace(files_read || char(10) || files_modified,
           '[]', ''), '", "', char(10)), '","', char(10)), '["', ''), '"]', ''),
       command,
       excerpt || char(10) || coalesce(tool_name, ''),
       NULL
FROM observations
UNION ALL
SELECT message_id * 4 + 2, request, completed || char(10) || learned,
       investigated || char(10) || next_steps, NULL,
       replace(replace(replace(replace(replace(files_read || char(10) || files_edited,
           '[]', ''), '", "', char(10)), '","', char(10)), '["', ''), '"]', ''),
       NULL, notes, NULL
FROM summaries
UNION ALL
SELECT message_id * 4 + 3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, text
FROM prompts;

CREATE VIRTUAL TABLE memory_fts USING fts5 (
    title, detail, body, facts, files, command, output, prompt,
    content = 'memory_fts_content', content_rowid = 'rid',
    tokenize = 'porter unicode61 remove_diacritics 2'
);

-- Observations

CREATE TRIGGER observations_fts_insert AFTER INSERT ON observations BEGIN
    INSERT INTO memory_fts (rowid, title, detail, body, facts, files, command, output, prompt)
    SELECT rid, title, detail, body, facts, files, command, output, prompt
    FROM memory_fts_content WHERE rid = new.message_id * 4 + 1;
END;

CREATE TRIGGER observations_fts_delete BEFORE DELETE ON observations BEGIN
    INSERT INTO memory_fts (memory_fts, rowid, title, detail, body, facts, files, command,
                            output, prompt)
    SELECT 'delete', rid, title, detail, body, facts, files, command, output, prompt
    FROM memory_fts_content WHERE rid = old.message_id * 4 + 1;
END;

CREATE TRIGGER observations_fts_unindex
BEFORE UPDATE OF message_id, title, subtitle, narrative, facts, concepts, files_read,
                 files_modified, command, excerpt, tool_name
ON observations BEGIN
    INSERT INTO memory_fts (memory_fts, rowid, title, detail, body, facts, files, command,
                            output, prompt)
    SELECT 'delete', rid, title, detail, body, facts, files, command, output, prompt
    FROM memory_fts_content WHERE rid = old.message_id * 4 + 1;
END;

CREATE TRIGGER observations_fts_reindex
AFTER UPDATE OF message_id, title, subtitle, narrative, facts, concepts, files_read,
                files_modified, command, excerpt, tool_name
ON observations BEGIN
    INSERT INTO memory_fts (rowid, title, detail, body, facts, files, command, output, prompt)
    SELECT rid, title, detail, body, facts, files, command, output, prompt
    FROM memory_fts_content WHERE rid = new.message_id * 4 + 1;
END;

-- Summaries

CREATE TRIGGER summaries_fts_insert AFTER INSERT ON summaries BEGIN
    INSERT INTO memory_fts (rowid, title, detail, body, facts, files, command, output, prompt)
    SELECT rid, title, detail, body, facts, files, command, output, prompt
    FROM memory_fts_content WHERE rid = new.message_id * 4 + 2;
END;

CREATE TRIGGER summaries_fts_delete BEFORE DELETE ON summaries BEGIN
    INSERT INTO memory_fts (memory_fts, rowid, title, detail, body, facts, files, command,
                            output, prompt)
    SELECT 'delete', rid, title, detail, body, facts, files, command, output, prompt
    FROM memory_fts_content WHERE rid = old.message_id * 4 + 2;
END;

CREATE TRIGGER summaries_fts_unindex
BEFORE UPDATE OF message_id, request, investigated, learned, completed, next_steps, notes,
                 files_read, files_edited
ON summaries BEGIN
    INSERT INTO memory_fts (memory_fts, rowid, title, detail, body, facts, files, command,
                            output, prompt)
    SELECT 'delete', rid, title, detail, body, facts, files, command, output, prompt
    FROM memory_fts_content WHERE rid = old.message_id * 4 + 2;
END;

CREATE TRIGGER summaries_fts_reindex
AFTER UPDATE OF message_id, request, investigated, learned, completed, next_steps, notes,
                files_read, files_edited
ON summaries BEGIN
    INSERT INTO memory_fts (rowid, title, detail, body, facts, files, command, output, prompt)
    SELECT rid, title, detail, body, facts, files, command, output, prompt
    FROM memory_fts_content WHERE rid = new.message_id * 4 + 2;
END;

-- Prompts

CREATE TRIGGER prompts_fts_insert AFTER INSERT ON prompts BEGIN
    INSERT INTO memory_fts (rowid, title, detail, body, facts, files, command, output, prompt)
    SELECT rid, title, detail, body, facts, files, command, output, prompt
    FROM memory_fts_content WHERE rid = new.message_id * 4 + 3;
END;

CREATE TRIGGER prompts_fts_delete BEFORE DELETE ON prompts BEGIN
    INSERT INTO memory_fts (memory_fts, rowid, title, detail, body, facts, files, command,
                            output, prompt)
    SELECT 'delete', rid, title, detail, body, facts, files, command, output, prompt
    FROM memory_fts_content WHERE rid = old.message_id * 4 + 3;
END;

CREATE TRIGGER prompts_fts_unindex
BEFORE UPDATE OF message_id, text ON prompts BEGIN
    INSERT INTO memory_fts (memory_fts, rowid, title, detail, body, facts, files, command,
                            output, prompt)
    SELECT 'delete', rid, title, detail, body, facts, files, command, output, prompt
    FROM memory_fts_content WHERE rid = old.message_id * 4 + 3;
END;

CREATE TRIGGER prompts_fts_reindex
AFTER UPDATE OF message_id, text ON prompts BEGIN
    INSERT INTO memory_fts (rowid, title, detail, body, facts, files, command, output, prompt)
    SELECT rid, title, detail, body, facts, files, command, output, prompt
    FROM memory_fts_content WHERE rid = new.message_id * 4 + 3;
END;

-- Records written before this migration.
INSERT INTO memory_fts (memory_fts) VALUES ('rebuild');
