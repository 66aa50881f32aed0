"""Consent decisions from the index, and the guard that refuses to decide on a stale index."""
