-- What the model-based processors cost (memq.memory.model_usage): one row per message a
-- processor that asks a model has processed, written in the message's ack transaction, so
-- a message counts once however often it was retried. Tokens are the API's own counts
-- (input without the cache's, output, cache reads, cache writes). A message processed by
-- `extract` because the daily token budget was spent has a row too: processor 'extract',
-- the model it would have asked, no tokens, fallback 'budget'. Pruned by age and by count
-- with the usage tables; times are epoch milliseconds.
CREATE TABLE model_usage (
    id                 INTEGER PRIMARY KEY,
    at                 INTEGER NOT NULL,
    message_id         INTEGER NOT NULL,
    session_key        TEXT    NOT NULL,
    project            TEXT,
    processor          TEXT    NOT NULL,
    model              TEXT    NOT NULL,
    calls              INTEGER NOT NULL CHECK (calls >= 0),
    input_tokens       INTEGER NOT NULL CHECK (input_tokens >= 0),
    output_tokens      INTEGER NOT NULL CHECK (output_tokens >= 0),
    cache_read_tokens  INTEGER NOT NULL CHECK (cache_read_tokens >= 0),
    cache_write_tokens INTEGER NOT NULL CHECK (cache_write_tokens >= 0),
    fallback           TEXT    CHECK (fallback IS NULL OR fallback = 'budget')
) STRICT;

CREATE INDEX model_usage_at ON model_usage (at);  -- the day's spend, pruning by age
CREATE INDEX model_usage_message ON model_usage (message_id);
