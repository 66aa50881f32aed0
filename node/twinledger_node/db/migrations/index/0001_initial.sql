-- The chain index: `events` is what the chain said; every other table is derived from it (indexer/apply.py) and
-- rebuilt from it after a reorg or on `twinledger node reindex`.
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (number INTEGER PRIMARY KEY, hash TEXT NOT NULL, timestamp INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    block_number INTEGER NOT NULL, log_index INTEGER NOT NULL, block_hash TEXT NOT NULL, tx_hash TEXT NOT NULL,
    address TEXT NOT NULL, name TEXT NOT NULL, twin_id INTEGER, args TEXT NOT NULL,
    PRIMARY KEY (block_number, log_index)
);
CREATE INDEX IF NOT EXISTS events_by_twin ON events (twin_id, block_number, log_index);
CREATE TABLE IF NOT EXISTS twins (
    twin_id INTEGER PRIMARY KEY, owner TEXT NOT NULL, parent_id INTEGER NOT NULL, kind INTEGER NOT NULL,
    metadata_digest TEXT NOT NULL, device_did TEXT NOT NULL, device_did_hash TEXT NOT NULL,
    head_seq INTEGER NOT NULL, registered_block INTEGER NOT NULL, period INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS twins_by_owner ON twins (owner);
CREATE INDEX IF NOT EXISTS twins_by_device ON twins (device_did_hash);
CREATE TABLE IF NOT EXISTS grants (
    twin_id INTEGER NOT NULL, did_hash TEXT NOT NULL, purpose TEXT NOT NULL, grantor TEXT NOT NULL,
    scopes INTEGER NOT NULL, expiry INTEGER NOT NULL, granted_at INTEGER NOT NULL, did TEXT NOT NULL,
    block_number INTEGER NOT NULL, tx_hash TEXT NOT NULL, revoked_block INTEGER, revoked_tx TEXT,
    period INTEGER NOT NULL, PRIMARY KEY (twin_id, did_hash, purpose)
);
CREATE INDEX IF NOT EXISTS grants_by_did ON grants (did_hash);
CREATE TABLE IF NOT EXISTS operators (owner TEXT NOT NULL, operator TEXT NOT NULL, PRIMARY KEY (owner, operator));
CREATE TABLE IF NOT EXISTS token_approvals (twin_id INTEGER PRIMARY KEY, approved TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS nonces (owner TEXT PRIMARY KEY, next INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS batches (
    root TEXT NOT NULL, kind INTEGER NOT NULL, anchorer TEXT NOT NULL, count INTEGER NOT NULL,
    leaves_cid TEXT NOT NULL, block_number INTEGER NOT NULL, tx_hash TEXT NOT NULL,
    PRIMARY KEY (anchorer, root)
);
CREATE TABLE IF NOT EXISTS snapshot_anchors (
    twin_id INTEGER NOT NULL, seq INTEGER NOT NULL, manifest_digest TEXT NOT NULL, anchorer TEXT NOT NULL,
    block_number INTEGER NOT NULL, tx_hash TEXT NOT NULL, log_index INTEGER NOT NULL, PRIMARY KEY (twin_id, seq)
);
CREATE TABLE IF NOT EXISTS tasks (
    task_id INTEGER PRIMARY KEY, aggregator TEXT NOT NULL, aggregator_did TEXT NOT NULL, purpose TEXT NOT NULL,
    initial_model_digest TEXT NOT NULL, open_round INTEGER NOT NULL, closed INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS model_updates (
    task_id INTEGER NOT NULL, round INTEGER NOT NULL, twin_id INTEGER NOT NULL, committer TEXT NOT NULL,
    update_digest TEXT NOT NULL, num_samples INTEGER NOT NULL, block_number INTEGER NOT NULL,
    tx_hash TEXT NOT NULL, log_index INTEGER NOT NULL, PRIMARY KEY (task_id, round, twin_id)
);
CREATE TABLE IF NOT EXISTS checkpoints (
    task_id INTEGER NOT NULL, round INTEGER NOT NULL, model_digest TEXT NOT NULL, updates_root TEXT NOT NULL,
    count INTEGER NOT NULL, total_samples INTEGER NOT NULL, block_number INTEGER NOT NULL, tx_hash TEXT NOT NULL,
    PRIMARY KEY (task_id, round)
);
