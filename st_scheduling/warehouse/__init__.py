"""The DuckDB warehouse: raw tables, atomic writes, and the SQL marts. No Dagster here."""
