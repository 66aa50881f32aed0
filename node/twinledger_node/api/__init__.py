"""HTTP API of the node: one router per resource."""
