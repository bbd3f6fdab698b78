-- PostgreSQL forms of recap.sql's statements that differ (memq.storage.sqlfile overlays
-- them by name).

-- name: recap_files
-- jsonb_array_elements for json_each: the string items (json_each's type 'text'), as text
-- (#>> '{}').
SELECT f.item #>> '{}' AS path, max(o.message_id) AS last_change
FROM (SELECT message_id, files_modified
      FROM observations
      WHERE session_key = :session_key
      ORDER BY message_id DESC
      LIMIT :scan) AS o,
     jsonb_array_elements(o.files_modified::jsonb) AS f (item)
WHERE jsonb_typeof(f.item) = 'string' AND f.item #>> '{}' <> ''
GROUP BY f.item #>> '{}'
ORDER BY last_change DESC
LIMIT :limit;
