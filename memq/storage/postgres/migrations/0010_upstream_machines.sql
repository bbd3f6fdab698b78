-- SQLite's 0020_upstream_machines (memq.team.outbox): every name this database went by
-- upstream. Forwarding runs only from a SQLite daemon, but the schemas stay twins.
CREATE TABLE upstream_machines (
    name TEXT PRIMARY KEY
);

INSERT INTO upstream_machines (name)
SELECT machine FROM upstream_config WHERE id = 1 AND machine IS NOT NULL;
