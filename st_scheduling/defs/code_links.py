"""Links from every asset in the UI to the code that makes it: its Python and, for marts, its SQL model.

Local file paths by default; with ST_CODE_URL (a repository's web URL) and ST_CODE_BRANCH (default main), links
into the repository instead, so a data team's UI opens the code in their browser.
"""

import os
from collections.abc import Sequence
from pathlib import Path

import dagster as dg

PACKAGE = Path(__file__).resolve().parents[1]  # st_scheduling/


def linked(assets: Sequence[dg.AssetsDefinition]) -> list[dg.AssetsDefinition]:
    with_sources = dg.with_source_code_references(list(assets))
    url = os.getenv("ST_CODE_URL")
    if not url:
        return list(with_sources)
    return list(
        dg.link_code_references_to_git(
            with_sources,
            git_url=url,
            git_branch=os.getenv("ST_CODE_BRANCH") or "main",
            file_path_mapping=dg.AnchorBasedFilePathMapping(
                local_file_anchor=PACKAGE, file_anchor_path_in_repository="st_scheduling/"
            ),
        )
    )


def sql_reference(path: str) -> dg.CodeReferencesMetadataValue:
    return dg.CodeReferencesMetadataValue(
        code_references=[dg.LocalFileCodeReference(file_path=path, line_number=1, label="SQL model")]
    )
