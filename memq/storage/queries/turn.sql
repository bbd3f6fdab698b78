-- A tool call's turn, as a processor sees it (MemoryStore.turn_for): the session's last
-- prompt and the newest observations after it. Each read walks an index backwards from the
-- newest record and stops at its limit, so a long session costs no more than a short one.

-- name: turn_prompt
-- The session's newest prompt; through prompts_session (migration 0007).
SELECT id, message_id, session_key, number, text, created_at
FROM prompts
WHERE session_key = :session_key
ORDER BY message_id DESC
LIMIT 1;

-- name: turn_observations
-- Newest first; through observations_session.
SELECT id, message_id, session_key, kind, title, subtitle, narrative, facts, concepts,
       files_read, files_modified, tool_name, command, exit_code, excerpt, created_at
FROM observations
WHERE session_key = :session_key AND message_id > :after
ORDER BY message_id DESC
LIMIT :limit;

-- name: turn_left_out
-- The session's tool calls after message :after that were processed into no record (a
-- processor found them not worth one: a repeated read, a no-op command). Queue rows are
-- walked by id from :after on (the turn's span, every session's), and each is looked up in
-- observations by its unique message_id.
SELECT count(*) AS left_out
FROM pending_messages AS m
WHERE m.id > :after AND m.session_id = :session_key
  AND m.kind = 'observation' AND m.status = 'processed'
  AND NOT EXISTS (SELECT 1 FROM observations AS o WHERE o.message_id = m.id);
