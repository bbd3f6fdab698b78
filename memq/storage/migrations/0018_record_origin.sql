-- Issue 17: who produced each record and on which machine. The team server's intake stamps
-- every event it takes in with `memq_origin` (the API key's name, the laptop's machine name;
-- memq.team.intake); the store copies those two onto the records the event produced
-- (memq.memory.origin). NULL in both: recorded on this machine by its own user, which is every
-- record of a laptop's local memory. Fork copies, transfers and imports keep them.
ALTER TABLE prompts ADD COLUMN author TEXT;
ALTER TABLE prompts ADD COLUMN machine TEXT;
ALTER TABLE observations ADD COLUMN author TEXT;
ALTER TABLE observations ADD COLUMN machine TEXT;
ALTER TABLE summaries ADD COLUMN author TEXT;
ALTER TABLE summaries ADD COLUMN machine TEXT;

-- A person filter (?author=, --author): the sessions holding a person's records (the session
-- list, the context's probe of each session) are a search of these indexes, as 0014's
-- sessions_assistant makes an assistant's. Partial: a laptop's local records (author NULL)
-- cost no index entry, and `author IN (...)` implies `author IS NOT NULL`, so the filter can
-- use them. Search and the feed filter rows they read already and need no index.
CREATE INDEX prompts_author ON prompts (author, session_key) WHERE author IS NOT NULL;
CREATE INDEX observations_author ON observations (author, session_key) WHERE author IS NOT NULL;
CREATE INDEX summaries_author ON summaries (author, session_key) WHERE author IS NOT NULL;
