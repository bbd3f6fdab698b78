-- Statements of the rescue (memq.queue._files): when a database file was swapped or deleted
-- under the daemon, a file found at the path is kept aside and its queue rows taken in.

-- name: aside_has_queue
SELECT count(*) FROM aside.sqlite_master WHERE type = 'table' AND name = 'pending_messages';

-- name: take_in_pending
-- The aside file's unfinished events, as new pending rows of the installed database. A row
-- whose (session_id, dedupe_key) is there already is the same event (ON CONFLICT); a row
-- without a dedupe key is the same event when one of the same session, kind and time holds
-- the same payload (or none any more: it was processed).
INSERT INTO main.pending_messages
    (session_id, kind, payload, dedupe_key, available_at, created_at)
SELECT a.session_id, a.kind, a.payload, a.dedupe_key, :now, a.created_at
FROM aside.pending_messages AS a
WHERE a.status IN ('pending', 'processing')
  AND a.payload IS NOT NULL
  AND (
      a.dedupe_key IS NOT NULL
      OR NOT EXISTS (
          SELECT 1 FROM main.pending_messages AS m
          WHERE m.session_id = a.session_id
            AND m.kind = a.kind
            AND m.created_at = a.created_at
            AND m.dedupe_key IS NULL
            AND (m.payload = a.payload OR m.payload IS NULL)
      )
  )
ORDER BY a.id
ON CONFLICT (session_id, dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING;
