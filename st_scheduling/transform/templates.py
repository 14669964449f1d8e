"""SQL in files, rendered by one function: `render("build/merge:changed_sessions", alias="s")`.

A file under `sql/` holds one model (`sql/sessions.sql`), or several statements each opened by a `-- name: <name>`
line (`sql/build/merge.sql`). Placeholders are `{{ name }}`. What fills them is never a value — values stay bound
parameters (`?`) — but the name of a table, column or alias (checked to be one), or SQL that `render` itself
produced (`Fragment`). A placeholder left unfilled, or a parameter no placeholder takes, is an error.
"""

from __future__ import annotations

import functools
import re
from importlib import resources

PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")
IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?")
STATEMENT = re.compile(r"^-- name: ([a-z_]+)\s*$", re.M)


class TemplateError(ValueError):
    """A template rendered with a parameter missing, unused or not a plain name."""


class Fragment(str):
    """SQL rendered from a template, fit to fill another template's placeholder."""


def path(name: str) -> str:
    """Where a model's file is, for the links in the UI."""
    return str(resources.files("st_scheduling.transform").joinpath(f"sql/{name}.sql"))


@functools.cache
def text(name: str) -> str:
    """The SQL of `sql/<file>.sql`, or of the statement `<file>:<statement>` in it, as written."""
    file, _, statement = name.partition(":")
    source = resources.files("st_scheduling.transform").joinpath(f"sql/{file}.sql").read_text()
    if not statement:
        return source
    parts = STATEMENT.split(source)
    statements = dict(zip(parts[1::2], parts[2::2], strict=True))
    if statement not in statements:
        raise TemplateError(f"sql/{file}.sql has no statement named {statement!r}")
    return statements[statement].strip()


def render(name: str, /, **parameters: str) -> Fragment:
    """The SQL of `name` (see `text`) with its placeholders filled by `parameters`: names, or fragments."""
    for key, value in parameters.items():
        if not isinstance(value, Fragment) and not IDENTIFIER.fullmatch(value):
            raise TemplateError(f"{name}: {key}={value!r} is neither a plain name nor a rendered fragment")
    template = text(name)
    wanted = set(PLACEHOLDER.findall(template))
    if missing := wanted - parameters.keys():
        raise TemplateError(f"{name}: no value for {', '.join(sorted(missing))}")
    if unused := parameters.keys() - wanted:
        raise TemplateError(f"{name}: no placeholder for {', '.join(sorted(unused))}")
    return Fragment(PLACEHOLDER.sub(lambda m: parameters[m.group(1)], template))
