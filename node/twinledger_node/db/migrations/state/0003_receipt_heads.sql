-- Each twin's newest receipt digest, written with the receipts in the group commit: the head a new receipt chains
-- to is one primary-key lookup, whatever the receipts stored (PostgreSQL's planner may otherwise find it by walking
-- the primary key of every twin's receipts back, filtering by twin: a scan that grows with the others' reads).
CREATE TABLE IF NOT EXISTS receipt_heads (twin_id INTEGER PRIMARY KEY, digest TEXT NOT NULL);
INSERT INTO receipt_heads (twin_id, digest)
    SELECT r.twin_id, r.digest FROM receipts r
    WHERE r.id = (SELECT MAX(l.id) FROM receipts l WHERE l.twin_id = r.twin_id)
    ON CONFLICT (twin_id) DO NOTHING;
