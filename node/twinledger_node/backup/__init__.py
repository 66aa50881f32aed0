"""`twinledger node backup` / `restore`: one tar archive of a node's databases, keys and embedded block store."""
