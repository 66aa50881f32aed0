"""What the node does, independent of HTTP: snapshots, receipts, anchoring, relaying, audit."""
