-- Observations a model rewrote when it summarized their turn (memq.memory.rewrites): the
-- descriptive fields only; the files, command, exit code and excerpt are the payload's.

-- name: rewrite_observation
UPDATE observations
SET kind = :kind, title = :title, subtitle = :subtitle, narrative = :narrative,
    facts = :facts, concepts = :concepts
WHERE id = :id AND session_key = :session_key
