-- The live feed (issue 14, memq.memory.feed): what memory gained, in the order it was stored.
-- The store appends one row per record a processed message adds, in the transaction that
-- acks the message, so a row exists exactly when its record was committed. Copies a fork
-- made and records an import brought are no news: they have no rows. Times are epoch ms.

-- AUTOINCREMENT: a seq is never given twice, even after the newest rows are pruned, so a
-- client resuming after seq N (Last-Event-ID) never takes a new row for one it has seen.
-- session_key and project are the record's at the time it was stored (a reader shows the
-- record's current ones); a record deleted since is left out by the reader.
CREATE TABLE feed (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    at          INTEGER NOT NULL,
    session_key TEXT    NOT NULL,
    project     TEXT,
    record_type TEXT    NOT NULL CHECK (record_type IN ('prompt', 'observation', 'summary')),
    record_id   INTEGER NOT NULL
) STRICT;

CREATE INDEX feed_at ON feed (at);  -- pruning by age
