-- What the model-based processors cost (memq.memory.model_usage): one row per message, its
-- pruning, the day's spend against the budget, and the figures. Times are epoch milliseconds.

-- name: insert_model_usage
INSERT INTO model_usage (
    at, message_id, session_key, project, processor, model, calls,
    input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, fallback
) VALUES (
    :at, :message_id, :session_key, :project, :processor, :model, :calls,
    :input_tokens, :output_tokens, :cache_read_tokens, :cache_write_tokens, :fallback
)

-- name: tokens_since
-- Every token spent from :since on: what the daily budget counts.
SELECT coalesce(sum(input_tokens + output_tokens + cache_read_tokens + cache_write_tokens), 0)
       AS tokens,
       coalesce(sum(fallback IS NOT NULL), 0) AS fallbacks
FROM model_usage
WHERE at >= :since

-- name: model_usage_groups
-- From :since on (only :project's rows, unless it is NULL), by UTC day, project, processor
-- and model: the figures per day and per project add these up, the cost is per model.
SELECT date(at / 1000, 'unixepoch') AS day,
       project, processor, model,
       count(*) AS messages,
       sum(calls) AS calls,
       sum(input_tokens) AS input_tokens,
       sum(output_tokens) AS output_tokens,
       sum(cache_read_tokens) AS cache_read_tokens,
       sum(cache_write_tokens) AS cache_write_tokens,
       sum(fallback IS NOT NULL) AS fallbacks
FROM model_usage
WHERE at >= :since AND (:project IS NULL OR project IS :project)
GROUP BY day, project, processor, model
ORDER BY day DESC

-- name: prune_model_usage_before
-- One chunk at a time, as the usage tables are pruned.
DELETE FROM model_usage
WHERE id IN (SELECT id FROM model_usage WHERE at < :before ORDER BY at LIMIT :chunk)

-- name: prune_model_usage_over
DELETE FROM model_usage
WHERE id IN (SELECT id FROM model_usage ORDER BY at DESC, id DESC LIMIT :chunk OFFSET :keep)
