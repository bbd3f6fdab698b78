-- Forks and transfers (issue 10): each copy a fork made names the record it is a copy of, so
-- that a transfer between two sessions of one family keeps a record once, and a delete or a
-- revert of the original hands it on to one copy; and parent_key names only sessions that
-- exist, without cycles. Times are integer milliseconds since the Unix epoch (UTC).

-- origin_id: the message id of the session's own record this one is a copy of (its
-- original: a copy of a copy names the first original); NULL for a session's own record.
-- Only a copy (inherited = 1) has one. memq.memory.fork and memq.memory.store keep every
-- origin_id naming an existing record of the same table that is its session's own.
ALTER TABLE prompts ADD COLUMN origin_id INTEGER CHECK (origin_id IS NULL OR inherited = 1);
ALTER TABLE observations ADD COLUMN origin_id INTEGER CHECK (origin_id IS NULL OR inherited = 1);
ALTER TABLE summaries ADD COLUMN origin_id INTEGER CHECK (origin_id IS NULL OR inherited = 1);

-- The copies of an original: what a transfer, a delete and a revert look up.
CREATE INDEX prompts_origin ON prompts (origin_id) WHERE origin_id IS NOT NULL;
CREATE INDEX observations_origin ON observations (origin_id) WHERE origin_id IS NOT NULL;
CREATE INDEX summaries_origin ON summaries (origin_id) WHERE origin_id IS NOT NULL;

-- Copies made before this migration: a fork copies a record's time and every field, so the
-- original is the session's own record with the same time and content (the queue rows that
-- paired them, 'fork:<id>', are pruned with processed rows). A copy whose original is gone
-- (its parent reverted it) has none: of the copies of one such record, the one with the
-- lowest message id (the oldest fork's) becomes its session's own, and the others its
-- copies, as a revert does from now on. Temporary indexes on time keep this linear.
CREATE INDEX prompts_time_backfill ON prompts (created_at);
CREATE INDEX observations_time_backfill ON observations (created_at);
CREATE INDEX summaries_time_backfill ON summaries (created_at);

UPDATE prompts
SET origin_id = (SELECT min(o.message_id) FROM prompts AS o
                 WHERE o.created_at = prompts.created_at AND o.inherited = 0
                   AND o.text = prompts.text)
WHERE inherited = 1;

-- Only copies without an original are updated, and the test reads origin_id IS NULL on both
-- sides, which the update leaves alone: the result does not depend on the order of rows.
UPDATE prompts SET inherited = 0
WHERE inherited = 1 AND origin_id IS NULL
  AND NOT EXISTS (SELECT 1 FROM prompts AS o
                  WHERE o.created_at = prompts.created_at AND o.origin_id IS NULL
                    AND o.message_id < prompts.message_id AND o.text = prompts.text);

UPDATE prompts
SET origin_id = (SELECT min(o.message_id) FROM prompts AS o
                 WHERE o.created_at = prompts.created_at AND o.inherited = 0
                   AND o.text = prompts.text)
WHERE inherited = 1 AND origin_id IS NULL;

UPDATE observations
SET origin_id = (SELECT min(o.message_id) FROM observations AS o
                 WHERE o.created_at = observations.created_at AND o.inherited = 0
                   AND o.kind = observations.kind AND o.title = observations.title
                   AND o.subtitle = observations.subtitle
                   AND o.narrative = observations.narrative AND o.facts = observations.facts
                   AND o.concepts = observations.concepts
                   AND o.files_read = observations.files_read
                   AND o.files_modified = observations.files_modified
                   AND o.tool_name IS observations.tool_name
                   AND o.command IS observations.command
                   AND o.exit_code IS observations.exit_code
                   AND o.excerpt = observations.excerpt)
WHERE inherited = 1;

UPDATE observations SET inherited = 0
WHERE inherited = 1 AND origin_id IS NULL
  AND NOT EXISTS (SELECT 1 FROM observations AS o
                  WHERE o.created_at = observations.created_at AND o.origin_id IS NULL
                    AND o.message_id < observations.message_id
                    AND o.kind = observations.kind AND o.title = observations.title
                    AND o.subtitle = observations.subtitle
                    AND o.narrative = observations.narrative AND o.facts = observations.facts
                    AND o.concepts = observations.concepts
                    AND o.files_read = observations.files_read
                    AND o.files_modified = observations.files_modified
                    AND o.tool_name IS observations.tool_name
                    AND o.command IS observations.command
                    AND o.exit_code IS observations.exit_code
                    AND o.excerpt = observations.excerpt);

UPDATE observations
SET origin_id = (SELECT min(o.message_id) FROM observations AS o
                 WHERE o.created_at = observations.created_at AND o.inherited = 0
                   AND o.kind = observations.kind AND o.title = observations.title
                   AND o.subtitle = observations.subtitle
                   AND o.narrative = observations.narrative AND o.facts = observations.facts
                   AND o.concepts = observations.concepts
                   AND o.files_read = observations.files_read
                   AND o.files_modified = observations.files_modified
                   AND o.tool_name IS observations.tool_name
                   AND o.command IS observations.command
                   AND o.exit_code IS observations.exit_code
                   AND o.excerpt = observations.excerpt)
WHERE inherited = 1 AND origin_id IS NULL;

UPDATE summaries
SET origin_id = (SELECT min(o.message_id) FROM summaries AS o
                 WHERE o.created_at = summaries.created_at AND o.inherited = 0
                   AND o.request = summaries.request
                   AND o.investigated = summaries.investigated
                   AND o.learned = summaries.learned AND o.completed = summaries.completed
                   AND o.next_steps = summaries.next_steps
                   AND o.files_read = summaries.files_read
                   AND o.files_edited = summaries.files_edited AND o.notes = summaries.notes)
WHERE inherited = 1;

UPDATE summaries SET inherited = 0
WHERE inherited = 1 AND origin_id IS NULL
  AND NOT EXISTS (SELECT 1 FROM summaries AS o
                  WHERE o.created_at = summaries.created_at AND o.origin_id IS NULL
                    AND o.message_id < summaries.message_id
                    AND o.request = summaries.request
                    AND o.investigated = summaries.investigated
                    AND o.learned = summaries.learned AND o.completed = summaries.completed
                    AND o.next_steps = summaries.next_steps
                    AND o.files_read = summaries.files_read
                    AND o.files_edited = summaries.files_edited
                    AND o.notes = summaries.notes);

UPDATE summaries
SET origin_id = (SELECT min(o.message_id) FROM summaries AS o
                 WHERE o.created_at = summaries.created_at AND o.inherited = 0
                   AND o.request = summaries.request
                   AND o.investigated = summaries.investigated
                   AND o.learned = summaries.learned AND o.completed = summaries.completed
                   AND o.next_steps = summaries.next_steps
                   AND o.files_read = summaries.files_read
                   AND o.files_edited = summaries.files_edited AND o.notes = summaries.notes)
WHERE inherited = 1 AND origin_id IS NULL;

DROP INDEX prompts_time_backfill;
DROP INDEX observations_time_backfill;
DROP INDEX summaries_time_backfill;

-- parent_key: a transfer between a fork and its parent made sessions their own parents (or
-- each other's), and a delete left forks naming a parent that is gone. A session on a cycle,
-- or whose parent is gone, stands on its own. The walk from each session up its parents
-- stops at its start (a cycle) or after as many steps as there are sessions.
WITH RECURSIVE up (start, node, steps) AS (
    SELECT key, parent_key, 1 FROM sessions WHERE parent_key IS NOT NULL
    UNION ALL
    SELECT up.start, s.parent_key, up.steps + 1
    FROM up JOIN sessions AS s ON s.key = up.node
    WHERE s.parent_key IS NOT NULL AND up.node <> up.start
      AND up.steps <= (SELECT count(*) FROM sessions)
)
UPDATE sessions SET parent_key = NULL, forked_at = NULL
WHERE key IN (SELECT start FROM up WHERE node = start);

UPDATE sessions SET parent_key = NULL, forked_at = NULL
WHERE parent_key IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM sessions AS p WHERE p.key = sessions.parent_key);
