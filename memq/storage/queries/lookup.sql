-- Records read by reference (memq.memory.lookup): `#12` is observation 12, `#S3` summary 3,
-- `#P7` prompt 7. Each statement reads one record type by primary key, for the ids in :ids
-- (a JSON array), with its session's project; a reference nothing answers is simply absent.
-- Times are integer milliseconds since the Unix epoch; lists are JSON text.

-- name: observations_by_id
SELECT o.id, o.message_id, o.session_key, o.kind, o.title, o.subtitle, o.narrative, o.facts,
       o.concepts, o.files_read, o.files_modified, o.tool_name, o.command, o.exit_code,
       o.excerpt, o.created_at, o.inherited, o.author, o.machine, s.project
FROM observations AS o
JOIN sessions AS s ON s.key = o.session_key
WHERE o.id IN (SELECT value FROM json_each(:ids));

-- name: summaries_by_id
SELECT m.id, m.message_id, m.session_key, m.request, m.investigated, m.learned, m.completed,
       m.next_steps, m.files_read, m.files_edited, m.notes, m.created_at, m.inherited,
       m.author, m.machine, s.project
FROM summaries AS m
JOIN sessions AS s ON s.key = m.session_key
WHERE m.id IN (SELECT value FROM json_each(:ids));

-- name: prompts_by_id
SELECT p.id, p.message_id, p.session_key, p.number, p.text, p.created_at, p.inherited,
       p.author, p.machine, s.project
FROM prompts AS p
JOIN sessions AS s ON s.key = p.session_key
WHERE p.id IN (SELECT value FROM json_each(:ids));
