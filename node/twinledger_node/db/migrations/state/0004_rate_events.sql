-- The relayer's rate limits (grants and revocations per owner, refused consents per client) counted here, so that
-- every process of the node and every replica spend one budget: kept in each process, N processes gave N budgets.
-- At most `limit` rows per key live in a window; older ones are pruned by time.
CREATE TABLE IF NOT EXISTS rate_events (key TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS rate_events_by_key ON rate_events (key, at);
CREATE INDEX IF NOT EXISTS rate_events_by_time ON rate_events (at);
