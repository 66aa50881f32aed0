-- What only this node knows (never rebuilt from the chain): snapshots stored, reads served, batches anchored,
-- owners' recovery keys, federated tasks opened here, gas spent per DID, replay nonces, the block store's pins.
CREATE TABLE IF NOT EXISTS snapshots (
    twin_id INTEGER NOT NULL, seq INTEGER NOT NULL, manifest_cid TEXT NOT NULL UNIQUE, content_cid TEXT NOT NULL,
    manifest_digest TEXT NOT NULL, size INTEGER NOT NULL, sha256 TEXT NOT NULL, producer TEXT NOT NULL,
    created INTEGER NOT NULL, batch_root TEXT, proof TEXT, anchor_tx TEXT, anchor_block INTEGER,
    period INTEGER NOT NULL, PRIMARY KEY (twin_id, seq)
);
CREATE INDEX IF NOT EXISTS snapshots_pending ON snapshots (batch_root) WHERE batch_root IS NULL;
-- rows in a batch not yet anchored: how an anchored batch finds its rows without scanning every snapshot stored
CREATE INDEX IF NOT EXISTS snapshots_unanchored ON snapshots (batch_root) WHERE anchor_tx IS NULL;
CREATE TABLE IF NOT EXISTS receipts (
    id INTEGER PRIMARY KEY, twin_id INTEGER NOT NULL, seq INTEGER NOT NULL, reader TEXT NOT NULL,
    purpose TEXT NOT NULL, digest TEXT NOT NULL UNIQUE, body TEXT NOT NULL, created INTEGER NOT NULL,
    batch_root TEXT, proof TEXT, anchor_tx TEXT, anchor_block INTEGER
);
CREATE INDEX IF NOT EXISTS receipts_by_twin ON receipts (twin_id, id);
CREATE INDEX IF NOT EXISTS receipts_pending ON receipts (batch_root) WHERE batch_root IS NULL;
CREATE INDEX IF NOT EXISTS receipts_unanchored ON receipts (batch_root) WHERE anchor_tx IS NULL;
CREATE TABLE IF NOT EXISTS batches (
    root TEXT PRIMARY KEY, kind INTEGER NOT NULL, count INTEGER NOT NULL, leaves_cid TEXT NOT NULL,
    status TEXT NOT NULL, tx_hash TEXT, block_number INTEGER, attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT, created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS batches_sending ON batches (status) WHERE status = 'sending';
CREATE TABLE IF NOT EXISTS recovery_keys (
    owner TEXT PRIMARY KEY, did TEXT NOT NULL, proof TEXT NOT NULL, issued INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS recovery_keys_by_did ON recovery_keys (did);
CREATE TABLE IF NOT EXISTS fl_tasks (task_id INTEGER PRIMARY KEY, creator TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS gas_spent (did TEXT PRIMARY KEY, window_start REAL NOT NULL, gas INTEGER NOT NULL);
-- replay nonces of served requests, written in the same group commit as what the request wrote (its receipt,
-- its snapshot): the key is the durable replay check, across restarts and processes (services/commit.py)
CREATE TABLE IF NOT EXISTS nonces (id BLOB PRIMARY KEY, expires_at INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS nonces_expiry ON nonces (expires_at);
-- the block store's recursive pins (twinledger.ipfs.pins.PinIndex): here, so a snapshot's pins commit with its row
CREATE TABLE IF NOT EXISTS pins (cid TEXT PRIMARY KEY) WITHOUT ROWID;
