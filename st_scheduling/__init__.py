"""st_scheduling: a Dagster data platform for ServiceTitan Scheduling Pro."""
