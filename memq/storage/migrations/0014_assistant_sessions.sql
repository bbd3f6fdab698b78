-- Issue 15: sessions of every assistant (keys '<assistant>:<id>'), listed and counted per
-- assistant (GET /api/sessions?assistant=, memq sessions --assistant). Without it, one
-- assistant's page walked sessions_updated past every other assistant's sessions, and its
-- count scanned the table: for 2,000 Codex sessions among 200,000, 12 ms for the first page,
-- 0.5 s at offset 5,000, 16 ms to count. With it, both are searches of this index.
CREATE INDEX sessions_assistant ON sessions (assistant, updated_at, key);
