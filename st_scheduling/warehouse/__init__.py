"""The DuckDB warehouse's storage: connections, the raw tables and their atomic commits, the meta schema, the
published snapshots, erasure, and which Dagster instance keeps its history. No Dagster here."""
