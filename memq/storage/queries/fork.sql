-- Every statement of a fork (memq.memory.fork): a new session that starts with a copy of
-- its parent's memory, explicitly or linked automatically. All of them run inside one
-- transaction of the queue's writer. Times are integer milliseconds since the Unix epoch.

-- name: fork_parent_exists
SELECT 1 FROM sessions WHERE key = :parent;

-- name: fork_child_known
-- Whether memq knows the session: a memory row, or any queue row of an event memq's hooks
-- subscribe to. (Rows of kind 'unsubscribed' do not count: Claude Code sends InstructionsLoaded
-- with a fork's own id before its first prompt.) There is no index on the queue's session_id
-- alone, so the queue is asked through its partial indexes: rows with a dedupe key (every
-- event memq's hook sends has one), and pending, processing and failed rows. A processed row
-- without a dedupe key (an event posted without the hook's id) is the one left out: a prompt,
-- tool call or summary made its session's memory row when it was processed; a SessionStart or
-- session end alone makes none (memq.memory.store).
SELECT EXISTS (SELECT 1 FROM sessions WHERE key = :child)
    OR EXISTS (SELECT 1 FROM pending_messages
               WHERE session_id = :child AND dedupe_key IS NOT NULL
                 AND kind <> 'unsubscribed')
    OR EXISTS (SELECT 1 FROM pending_messages
               WHERE session_id = :child AND status = 'pending' AND kind <> 'unsubscribed')
    OR EXISTS (SELECT 1 FROM pending_messages
               WHERE status = 'processing' AND session_id = :child
                 AND kind <> 'unsubscribed')
    OR EXISTS (SELECT 1 FROM pending_messages
               WHERE status = 'failed' AND session_id = :child AND kind <> 'unsubscribed')
    AS known;

-- name: fork_recent_resume
-- Whether any session other than :child was resumed in :cwd since :since: the read, on the
-- queue's reader, that spares the writer a look-up for nearly every new session (most are not
-- forks). Through session_resumes_cwd.
-- A parent is a session of the child's assistant (the part of the key before its ':').
SELECT EXISTS (SELECT 1 FROM session_resumes
               WHERE cwd = :cwd AND resumed_at >= :since AND session_key <> :child
                 AND substr(session_key, 1, instr(session_key, ':'))
                     = substr(:child, 1, instr(:child, ':'))) AS found;

-- name: fork_find_parent
-- The session an unknown session was forked from: the newest session resumed (migration
-- 0006's session_resumes) in :cwd since :since whose resuming SessionStart is still its
-- latest queue row (of an event memq's hooks subscribe to), and that memory knows. The check
-- for a later row walks the queue's ids after that SessionStart: only rows accepted since,
-- within the window.
SELECT r.session_key
FROM session_resumes AS r
WHERE r.cwd = :cwd
  AND r.resumed_at >= :since
  AND r.session_key <> :child
  AND substr(r.session_key, 1, instr(r.session_key, ':')) = substr(:child, 1, instr(:child, ':'))
  AND EXISTS (SELECT 1 FROM sessions WHERE key = r.session_key)
  AND NOT EXISTS (SELECT 1 FROM pending_messages AS later
                  WHERE later.id > r.message_id AND later.session_id = r.session_key
                    AND later.kind <> 'unsubscribed')
ORDER BY r.resumed_at DESC, r.message_id DESC
LIMIT 1;

-- name: fork_insert_session
-- The child: the parent's project and directory, open, started now. No row when the parent
-- has none. Its title is the parent's marked as a fork's ('[fork] ', once however deep the
-- fork: memq.memory.store.fork_title), a title of its own making (title_edited 0): a list
-- shows the two apart, and a revert of the child keeps it while the child holds the parent's
-- prompts. A parent with no title yet leaves it to the child's first prompt.
INSERT INTO sessions (key, assistant, external_id, project, cwd, title, title_edited,
                      prompt_count, started_at, ended_at, updated_at, created_at,
                      parent_key, forked_at)
SELECT :child, :assistant, :external_id, project, cwd,
       CASE WHEN substr(title, 1, 7) = '[fork] ' THEN title ELSE '[fork] ' || title END,
       0,
       (SELECT count(*) FROM prompts WHERE session_key = :parent),
       :now, NULL, :now, :now, :parent, :now
FROM sessions
WHERE key = :parent;

-- name: fork_reserve_ids
-- A new message id for each message of the parent that left memory: a settled queue row of
-- the child with no payload (as an import reserves them), so that the queue's AUTOINCREMENT
-- never hands the id out again and memory's UNIQUE message_id holds. Rows go in in message
-- order, so the copies keep the parent's order. The dedupe key 'fork:<original id>' pairs
-- each copy with its original below.
INSERT INTO pending_messages (session_id, kind, payload, dedupe_key, status, attempts,
                              available_at, created_at, finished_at)
SELECT :child, 'event', NULL, 'fork:' || message_id, 'processed', 0, created_at, created_at,
       :now
FROM (SELECT message_id, min(created_at) AS created_at
      FROM (SELECT message_id, created_at FROM prompts WHERE session_key = :parent
            UNION ALL
            SELECT message_id, created_at FROM observations WHERE session_key = :parent
            UNION ALL
            SELECT message_id, created_at FROM summaries WHERE session_key = :parent)
      GROUP BY message_id)
ORDER BY message_id;

-- name: fork_copy_prompts
-- Numbers are kept: the child's own prompts are numbered after them. Each copy names its
-- original (origin_id, the copy_origins migration): the parent's own record, or the one the
-- parent's copy names. A copy keeps who made the record, on which machine (0018).
INSERT INTO prompts (message_id, session_key, number, text, created_at, inherited, origin_id,
                     author, machine)
SELECT reserved.id, :child, p.number, p.text, p.created_at, 1,
       coalesce(p.origin_id, p.message_id), p.author, p.machine
FROM prompts AS p
JOIN pending_messages AS reserved
  ON reserved.session_id = :child AND reserved.dedupe_key = 'fork:' || p.message_id
WHERE p.session_key = :parent
ORDER BY p.message_id;

-- name: fork_copy_observations
INSERT INTO observations (message_id, session_key, kind, title, subtitle, narrative, facts,
                          concepts, files_read, files_modified, tool_name, command, exit_code,
                          excerpt, created_at, inherited, origin_id, author, machine)
SELECT reserved.id, :child, o.kind, o.title, o.subtitle, o.narrative, o.facts, o.concepts,
       o.files_read, o.files_modified, o.tool_name, o.command, o.exit_code, o.excerpt,
       o.created_at, 1, coalesce(o.origin_id, o.message_id), o.author, o.machine
FROM observations AS o
JOIN pending_messages AS reserved
  ON reserved.session_id = :child AND reserved.dedupe_key = 'fork:' || o.message_id
WHERE o.session_key = :parent
ORDER BY o.message_id;

-- name: fork_copy_summaries
INSERT INTO summaries (message_id, session_key, request, investigated, learned, completed,
                       next_steps, files_read, files_edited, notes, created_at, inherited,
                       origin_id, author, machine)
SELECT reserved.id, :child, m.request, m.investigated, m.learned, m.completed, m.next_steps,
       m.files_read, m.files_edited, m.notes, m.created_at, 1,
       coalesce(m.origin_id, m.message_id), m.author, m.machine
FROM summaries AS m
JOIN pending_messages AS reserved
  ON reserved.session_id = :child AND reserved.dedupe_key = 'fork:' || m.message_id
WHERE m.session_key = :parent
ORDER BY m.message_id;
