-- Earlier versions made a session row for every processed event, so throwaway ids of events
-- memq does not subscribe to (InstructionsLoaded from another plugin) and an assistant's setup
-- runs (SessionStart then SessionEnd, nothing else) cluttered the session list. memq now makes
-- a session only for a prompt, a tool call or a summary; this removes the rows made before.
-- A session is kept when it has any memory, a title someone set, settings, or forks. Queue
-- rows are not touched: a session that gets real activity later is made then.
DELETE FROM sessions
WHERE prompt_count = 0
  AND title_edited = 0
  AND NOT EXISTS (SELECT 1 FROM prompts WHERE prompts.session_key = sessions.key)
  AND NOT EXISTS (SELECT 1 FROM observations WHERE observations.session_key = sessions.key)
  AND NOT EXISTS (SELECT 1 FROM summaries WHERE summaries.session_key = sessions.key)
  AND NOT EXISTS (SELECT 1 FROM session_config WHERE session_config.session_key = sessions.key)
  AND NOT EXISTS (SELECT 1 FROM sessions AS fork WHERE fork.parent_key = sessions.key);
