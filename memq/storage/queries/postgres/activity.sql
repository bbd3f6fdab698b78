-- PostgreSQL forms of activity.sql's statements that differ (memq.storage.sqlfile overlays
-- them by name). Each says what differs; the base file says what the statement is for.

-- name: upsert_last_access
-- GREATEST for SQLite's two-argument max(). Named parameters, :session_key and
-- :last_access_at, where the base has positional ones: an overlay cannot write psycopg's
-- positional %s (sqlfile doubles every %), so the caller binds a mapping per row here.
INSERT INTO session_activity (session_key, last_access_at)
VALUES (:session_key, :last_access_at)
ON CONFLICT (session_key) DO UPDATE
    SET last_access_at = GREATEST(session_activity.last_access_at, excluded.last_access_at)
