-- The projects memory knows, for the viewer's project pickers (GET /api/projects).

-- name: list_projects
-- Each project with its number of sessions and its latest activity (ms), newest first.
SELECT project, count(*) AS session_count, max(updated_at) AS last_activity_at
FROM sessions
WHERE project IS NOT NULL AND project != ''
GROUP BY project
ORDER BY last_activity_at DESC, project
LIMIT :limit OFFSET :offset;

-- name: count_projects
SELECT count(DISTINCT project) AS total
FROM sessions
WHERE project IS NOT NULL AND project != '';
