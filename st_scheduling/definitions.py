from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions.merge(
        dg.load_from_defs_folder(path_within_project=Path(__file__).parent),
        # Every step writes or reads one DuckDB file, which one process may write at a time: steps in
        # separate processes would only queue on the file lock, so runs execute in one process.
        dg.Definitions(executor=dg.in_process_executor),
    )
