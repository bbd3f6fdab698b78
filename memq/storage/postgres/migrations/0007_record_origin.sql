-- SQLite's 0018_record_origin (memq/storage/migrations), whose comments say what it is for:
-- who produced each record (the API key's name) and on which machine; NULL for a record made
-- on this machine by its own user; partial indexes for a person filter. Statements filter with
-- `author = ANY (ARRAY(...))`, a restriction PostgreSQL proves implies `author IS NOT NULL`.
ALTER TABLE prompts ADD COLUMN author TEXT, ADD COLUMN machine TEXT;
ALTER TABLE observations ADD COLUMN author TEXT, ADD COLUMN machine TEXT;
ALTER TABLE summaries ADD COLUMN author TEXT, ADD COLUMN machine TEXT;

CREATE INDEX prompts_author ON prompts (author, session_key) WHERE author IS NOT NULL;
CREATE INDEX observations_author ON observations (author, session_key) WHERE author IS NOT NULL;
CREATE INDEX summaries_author ON summaries (author, session_key) WHERE author IS NOT NULL;
