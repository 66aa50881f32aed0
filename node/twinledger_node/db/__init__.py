"""The node's databases: versioned schemas (`migrations`, SQL files under `migrations/`) and, for tests and
benchmarks, a real local PostgreSQL server (`local_postgres`)."""
