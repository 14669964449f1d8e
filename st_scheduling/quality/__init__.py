"""What the asset checks ask of the data, as plain queries and decisions: the raw tables' keys and fields
(`checks.py`), their volume per scheduler (`volume.py`), and the marts against ServiceTitan's own figures
(`reconciliation.py`). No Dagster here."""
