"""Every package the code imports is declared in pyproject.toml, so a fresh install runs what the tests run."""

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OURS = {"st_scheduling", "st_scheduling_tests", "bench"}


def imported_top_levels() -> set[str]:
    names = set()
    for path in [*ROOT.glob("st_scheduling*/**/*.py"), *ROOT.glob("bench/**/*.py")]:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - OURS - set(sys.stdlib_module_names)


def declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = [
        *project["dependencies"],
        *(r for extra in project["optional-dependencies"].values() for r in extra),
    ]
    return {re.split(r"[\[<>=!~; ]", r, maxsplit=1)[0].lower().replace("_", "-") for r in requirements}


def test_every_imported_package_is_declared():
    distributions = importlib.metadata.packages_distributions()
    undeclared = {
        name: distributions.get(name)
        for name in imported_top_levels()
        if not {d.lower().replace("_", "-") for d in distributions.get(name, [name])} & declared()
    }
    assert undeclared == {}, "imported but not declared in pyproject.toml (module: its distributions)"


# Which of the package's rooms may import which: read top-down, with no cycles. Entry points (`__main__.py`)
# may import anything, being the top of their own command.
MAY_IMPORT = {
    "servicetitan": set(),
    "simulator": set(),
    "vocabulary": set(),
    "config": {"vocabulary"},
    "warehouse": {"servicetitan"},
    "ingest": {"servicetitan", "warehouse"},
    "transform": {"vocabulary", "warehouse"},
    "quality": {"transform", "vocabulary", "warehouse"},
    "webhooks": {"config"},
    "sql": {"config", "warehouse"},
    "reports": set(),
    "defs": {
        "config",
        "ingest",
        "quality",
        "reports",
        "servicetitan",
        "simulator",
        "transform",
        "vocabulary",
        "warehouse",
        "webhooks",
    },
    "demo": {"config", "defs", "reports"},
    "definitions": {"defs"},
    "__init__": set(),
}


def rooms_imported(node: ast.AST) -> set[str]:
    """The rooms of st_scheduling an import statement reaches (`from st_scheduling import transform` included)."""
    if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "st_scheduling":
        parts = (node.module or "").split(".")
        return {parts[1]} if len(parts) > 1 else {alias.name for alias in node.names}
    if isinstance(node, ast.Import):
        return {alias.name.split(".")[1] for alias in node.names if alias.name.startswith("st_scheduling.")}
    return set()


def test_each_room_imports_only_the_rooms_below_it():
    package = ROOT / "st_scheduling"
    upward: dict[str, set[str]] = {}
    for path in package.rglob("*.py"):
        if path.name == "__main__.py":
            continue
        room = path.relative_to(package).parts[0].removesuffix(".py")
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if outside := rooms_imported(node) - {room} - MAY_IMPORT[room]:
                upward.setdefault(f"{path.relative_to(package)}", set()).update(outside)
    assert upward == {}
