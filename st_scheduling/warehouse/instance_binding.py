"""One Dagster instance, one warehouse: the run history, materializations and check results an instance shows
describe the warehouse its first run wrote, so a run refuses an instance claimed by another warehouse."""

from __future__ import annotations

import os
from pathlib import Path

CLAIM_FILE = "st_scheduling_warehouse"


class InstanceOfAnotherWarehouse(RuntimeError):
    """The Dagster instance holds another warehouse's history; the message names both and how to choose."""


def warehouse_identity(path: str) -> str:
    """The warehouse as the claim records it: an absolute file path, or an `md:` database as given."""
    return path if path.startswith("md:") else os.path.abspath(path)


def claim(instance_dir: Path, warehouse_path: str) -> None:
    """Claims the instance for the warehouse on its first run; refuses one claimed by another warehouse."""
    wanted = warehouse_identity(warehouse_path)
    marker = instance_dir / CLAIM_FILE
    try:
        with marker.open("x") as new:  # exclusive create: two first runs cannot both claim it
            new.write(wanted + "\n")
        return
    except FileExistsError:
        owner = marker.read_text().strip()
    if owner != wanted:
        raise InstanceOfAnotherWarehouse(
            f"this Dagster instance ({instance_dir}) holds the history of the warehouse {owner}, and this run writes "
            f"{wanted}: run with that warehouse's own DAGSTER_HOME (the make targets choose "
            f".dagster_home/<warehouse name>), or remove {marker} if the other warehouse's history is no longer wanted"
        )
