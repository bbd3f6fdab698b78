-- PostgreSQL forms of lookup.sql's statements that differ (memq.storage.sqlfile overlays
-- them by name). :ids stays JSON text, as memq binds it on both backends.

-- name: observations_by_id
-- The ids from jsonb_array_elements_text, cast, for SQLite's json_each.
SELECT o.id, o.message_id, o.session_key, o.kind, o.title, o.subtitle, o.narrative, o.facts,
       o.concepts, o.files_read, o.files_modified, o.tool_name, o.command, o.exit_code,
       o.excerpt, o.created_at, o.inherited, o.author, o.machine, s.project
FROM observations AS o
JOIN sessions AS s ON s.key = o.session_key
WHERE o.id IN (SELECT jsonb_array_elements_text(:ids::jsonb)::bigint);

-- name: summaries_by_id
-- The ids from jsonb_array_elements_text, cast, for SQLite's json_each.
SELECT m.id, m.message_id, m.session_key, m.request, m.investigated, m.learned, m.completed,
       m.next_steps, m.files_read, m.files_edited, m.notes, m.created_at, m.inherited,
       m.author, m.machine, s.project
FROM summaries AS m
JOIN sessions AS s ON s.key = m.session_key
WHERE m.id IN (SELECT jsonb_array_elements_text(:ids::jsonb)::bigint);

-- name: prompts_by_id
-- The ids from jsonb_array_elements_text, cast, for SQLite's json_each.
SELECT p.id, p.message_id, p.session_key, p.number, p.text, p.created_at, p.inherited,
       p.author, p.machine, s.project
FROM prompts AS p
JOIN sessions AS s ON s.key = p.session_key
WHERE p.id IN (SELECT jsonb_array_elements_text(:ids::jsonb)::bigint);
