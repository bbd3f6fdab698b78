-- A session's prompts in message order, for its history (memq.memory.history: the newest
-- prompts after its last summary, read backwards with a LIMIT). UNIQUE (session_key, number)
-- cannot serve it: a transfer into an existing session numbers the moved prompts after the
-- target's own, whatever their message ids, so number order is not message order.
CREATE INDEX prompts_session ON prompts (session_key, message_id);
