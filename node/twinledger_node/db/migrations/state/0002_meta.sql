-- Facts about the node itself that every replica must agree on (the identity that signs its records, the account
-- that anchors them), checked at each start: a replica with another key would sign what the others cannot verify.
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
