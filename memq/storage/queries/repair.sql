-- Statements of memq repair (memq.repair): rows read from a damaged database, table
-- by table, into a new one. {table}, {columns}, {keys}, ... are names read from the databases'
-- own schema (quoted by the caller), never text a user typed.

-- name: schema_version
SELECT max(version) FROM schema_version;

-- name: tables
-- Every table of a database: its name, kind (table, virtual, shadow, view) and whether it is
-- WITHOUT ROWID.
SELECT name, type, wr FROM pragma_table_list WHERE schema = 'main' AND name NOT LIKE 'sqlite_%';

-- name: columns
SELECT name, pk FROM pragma_table_info(:table) ORDER BY cid;

-- name: indexes
-- A table's indexes, whether each is partial, and the statement that made it (its WHERE).
SELECT il.name, il.partial, m.sql
FROM pragma_index_list(:table) AS il
LEFT JOIN sqlite_schema AS m ON m.type = 'index' AND m.name = il.name;

-- name: rows_from
-- A rowid table's rows from rowid :start on, in rowid order (the table's own b-tree, never an
-- index: a damaged index costs no row).
SELECT rowid, {columns} FROM "{table}" WHERE rowid >= :start ORDER BY rowid;

-- name: first_row_from
SELECT rowid, {columns} FROM "{table}" WHERE rowid >= :start ORDER BY rowid LIMIT 1;

-- name: first_rowid_from
SELECT rowid FROM "{table}" WHERE rowid >= :start ORDER BY rowid LIMIT 1;

-- name: indexed_rowids
-- The rowids an index holds in [:low, :high): the rows it knows of where the table could not
-- be read.
SELECT rowid FROM "{table}" INDEXED BY "{index}"
WHERE ({where}) AND rowid >= :low AND rowid < :high;

-- name: keyed_rows
-- A WITHOUT ROWID table's rows in key order.
SELECT {columns} FROM "{table}" ORDER BY {keys};

-- name: keyed_rows_back_to
-- The same table's rows from the end back to (not including) the key :marks.
SELECT {columns} FROM "{table}" WHERE ({keys}) > ({marks}) ORDER BY {keys_descending};

-- name: keyed_rows_back
SELECT {columns} FROM "{table}" ORDER BY {keys_descending};

-- name: count_rows
SELECT count(*) FROM "{table}";

-- name: insert_row
INSERT INTO "{table}" ({columns}) VALUES ({marks});

-- name: replace_row
-- WITHOUT ROWID tables hold state derived as rows are copied (session_resumes is kept by a
-- trigger on pending_messages): the damaged database's own row wins.
INSERT OR REPLACE INTO "{table}" ({columns}) VALUES ({marks});

-- name: sequences
SELECT name, seq FROM sqlite_sequence;

-- name: raise_sequence
-- Ids are never reused: a rebuilt table's next id is past every id the old one gave out.
UPDATE sqlite_sequence SET seq = max(seq, :seq) WHERE name = :name;

-- name: add_sequence
INSERT INTO sqlite_sequence (name, seq)
SELECT :name, :seq WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = :name);

-- name: referenced_message_ids
-- The largest queue message id memory refers to: the queue's next id must be past it even
-- when the message itself was lost.
SELECT max(id) FROM (
    SELECT max(message_id) AS id FROM prompts
    UNION ALL SELECT max(message_id) FROM observations
    UNION ALL SELECT max(message_id) FROM summaries
    UNION ALL SELECT max(message_id) FROM session_resumes
);

-- name: fts_tables
SELECT name FROM sqlite_schema
WHERE type = 'table' AND sql LIKE 'CREATE VIRTUAL TABLE%USING fts5%';

-- name: rebuild_fts
INSERT INTO "{table}" ("{table}") VALUES ('rebuild');
