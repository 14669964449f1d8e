"""Ingestion: fetch -> validate -> stage (on-disk Parquet) -> commit, with a load report per owner-window.

The one layer that holds both an API client and a warehouse connection. No Dagster here.
"""

from st_scheduling.ingest.pipeline import LoadOptions, LoadResult, Source, TenantLoad, load
from st_scheduling.ingest.staging import OwnerLoad

__all__ = ["LoadOptions", "LoadResult", "OwnerLoad", "Source", "TenantLoad", "load"]
