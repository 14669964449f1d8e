"""The marts and how they are built: the catalogue (`catalogue.py`, the models in `sql/`), what the models read
besides the tables (`session.py`), and the builds (`build.py`: in full, or only what changed, `scopes.py`). Reads
and writes the warehouse through a connection it is given; no Dagster here."""

from st_scheduling.transform.build import Build, build, build_above, build_sessions
from st_scheduling.transform.session import (
    CAMPAIGN_IDENTITY,
    CampaignIdentityRule,
    ModelSettings,
    campaign_identity,
    full_views,
    prepare,
    set_switches,
)

__all__ = [
    "CAMPAIGN_IDENTITY",
    "Build",
    "CampaignIdentityRule",
    "ModelSettings",
    "build",
    "build_above",
    "build_sessions",
    "campaign_identity",
    "full_views",
    "prepare",
    "set_switches",
]
