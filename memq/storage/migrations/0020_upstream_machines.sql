-- Issue 17: every name this database went by upstream (memq.team.outbox). MEMQ_MACHINE_NAME
-- may change; the server files a laptop's records under the name they were sent with, so a
-- laptop asks it to leave out all of its names (exclude_machine, repeatable), not only the
-- current one: else its records made before a rename would show twice (local and team).
CREATE TABLE upstream_machines (
    name TEXT PRIMARY KEY
) STRICT;

-- The name stored before this table existed was used upstream too.
INSERT INTO upstream_machines (name)
SELECT machine FROM upstream_config WHERE id = 1 AND machine IS NOT NULL;
