"""The platform's reading of Scheduling Pro's unpublished vocabulary, from one TOML file.

ServiceTitan publishes no values for `lastStep` or `sessionOutcome`, nor how `/performance` defines its
milestones. The vocabulary file (`ST_VOCABULARY`; `default.toml` beside this module when unset) maps each
`lastStep` value to the furthest milestone it means and each `sessionOutcome` value to an outcome class,
and holds the definition switches ServiceTitan may apply differently from us. It is validated on load;
every error names the file and line. `python -m st_scheduling.vocabulary calibrate` proposes one.
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
from dataclasses import dataclass, field
from importlib import resources

# Milestones by name; the order is fixed except that zipcode and interacted may swap.
MILESTONES = ("opened", "zipcode", "interacted", "issue", "schedule", "customer", "details", "booked")
OUTCOME_CLASSES = ("booked", "abandoned", "sent_to_booking", "sent_to_lead", "in_progress")
ABANDONMENTS = frozenset({"abandoned", "sent_to_booking", "sent_to_lead"})
RATES = ("scheduler_completion_rate", "opened_completion_rate")  # /performance fields, in snake case
# ServiceTitan's wording: the scheduler ("engaged") completion rate is booked ÷ the sessions where the customer
# provided any information, the first information milestone (zipcode in the shipped flow); the opened completion
# rate is booked ÷ every session opened.
DEFAULT_RATES = {"scheduler_completion_rate": "zipcode", "opened_completion_rate": "opened"}
# How ServiceTitan may count what it calls contacts captured: distinct customer names (its docs' wording), or the
# sessions that reached the customer step.
CONTACT_DEFINITIONS = ("distinct_names", "customer_step")
# The definition switches besides the rates, each with the values it takes, the shipped one first.
SWITCHES: dict[str, tuple] = {
    "bots_in_milestones": (False, True),
    "zipcode_before_interacted": (True, False),
    "leads_in_abandoned": (True, False),
    "bots_in_totals": (False, True),
    "contacts_captured": CONTACT_DEFINITIONS,
}
ENV_VAR = "ST_VOCABULARY"
SHIPPED = "shipped default (st_scheduling/vocabulary/default.toml)"
MAX_FILE_BYTES = 1024 * 1024  # a calibrated file is a few KB


class VocabularyError(ValueError):
    """The vocabulary file cannot be used; the message names the file, the line and the fix."""


@dataclass(frozen=True)
class Vocabulary:
    steps: dict[str, str]  # lastStep value -> milestone
    outcomes: dict[str, str]  # sessionOutcome value -> outcome class
    bots_in_milestones: bool = False
    zipcode_before_interacted: bool = True
    leads_in_abandoned: bool = True  # the abandoned count includes the abandoned sessions sent to leads
    bots_in_totals: bool = False  # jobs, bookings, sent-to counts and contacts count bot sessions
    contacts_captured: str = "distinct_names"  # one of CONTACT_DEFINITIONS
    rate_denominators: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_RATES))
    unknown_threshold: float = 0.01
    source: str = SHIPPED  # the file it was read from, for messages that tell the user what to edit

    @property
    def milestones(self) -> tuple[str, ...]:
        """Milestone names in funnel order."""
        if self.zipcode_before_interacted:
            return MILESTONES
        return ("opened", "interacted", "zipcode", *MILESTONES[3:])

    def switches(self) -> dict[str, object]:
        return {**{name: getattr(self, name) for name in SWITCHES}, **self.rate_denominators}

    def rate_metric(self, rate: str) -> str:
        """The scorecard's name of a rate, by what it divides: booked ÷ the first information milestone is
        `booked_per_engaged` whichever the flow asks first (the SQL macro `rate_name` applies the same rule)."""
        denominator = self.rate_denominators[rate]
        return f"booked_per_{'engaged' if denominator == self.milestones[1] else denominator}"


def toml_value(value: object) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else f'"{value}"'


def switch_line(name: str, value: object) -> str:
    """The line of the vocabulary file that sets a definition switch or rate, e.g. `bots_in_totals = true`."""
    return f"{name} = {toml_value(value)}"


def load(path: str | None = None) -> Vocabulary:
    """The vocabulary in `path`, or the shipped default when `path` is empty."""
    if not path:
        return parse(resources.files(__name__).joinpath("default.toml").read_text(), SHIPPED)
    return parse(_read(path), path)


def _read(path: str) -> str:
    """The file's text. Only a regular file of at most MAX_FILE_BYTES: the definitions read it when they load, and
    /dev/zero, a FIFO or a huge file would hang or exhaust that load. Opened without blocking, so a FIFO with no
    writer is refused rather than waited on."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as err:
        raise VocabularyError(f"{ENV_VAR}={path}: cannot read the vocabulary file ({err.strerror})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise VocabularyError(f"{ENV_VAR}={path}: the vocabulary file must be a regular file")
    with os.fdopen(fd, "rb") as file:
        data = file.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise VocabularyError(f"{ENV_VAR}={path}: the vocabulary file is larger than {MAX_FILE_BYTES // 2**20} MB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise VocabularyError(f"{ENV_VAR}={path}: the vocabulary file is not UTF-8 text") from None


def parse(text: str, source: str) -> Vocabulary:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise VocabularyError(f"vocabulary file {source}: {err}") from None

    def fail(message: str, section: str | None = None, key: str | None = None) -> VocabularyError:
        line = _line_of(text, section, key)
        where = f", line {line}" if line else ""
        return VocabularyError(f"vocabulary file {source}{where}: {message}")

    known_top = {"unknown_threshold", "definitions", "last_step", "session_outcome"}
    for key in data:
        if key not in known_top:
            raise fail(
                f"unknown setting {key!r} (expected {', '.join(sorted(known_top))})",
                key if isinstance(data[key], dict) else None,
                None if isinstance(data[key], dict) else key,
            )
    for section in ("last_step", "session_outcome"):
        if not isinstance(data.get(section), dict) or not data[section]:
            raise fail(f"a [{section}] table with at least one value is required")
    threshold = data.get("unknown_threshold", 0.01)
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 <= threshold < 1:
        raise fail(
            f"unknown_threshold = {threshold!r} must be a share between 0 and 1 (0.01 is 1%)", None, "unknown_threshold"
        )
    definitions = dict(data.get("definitions", {}))
    switches: dict = {}
    for key, value in definitions.items():
        if key in SWITCHES:
            choices = SWITCHES[key]
            # Compared by type too: 1 == True in Python, and TOML's 1 is not true.
            if not any(type(value) is type(choice) and value == choice for choice in choices):
                raise fail(
                    f"{key} = {value!r} must be "
                    + (
                        " or ".join(map(toml_value, choices))
                        if isinstance(choices[0], bool)
                        else "one of " + ", ".join(map(toml_value, choices))
                    ),
                    "definitions",
                    key,
                )
            switches[key] = value
        elif key in RATES:
            if value not in MILESTONES[:-1]:
                raise fail(
                    f"{key} = {value!r}: the rate is booked ÷ one of {', '.join(MILESTONES[:-1])}", "definitions", key
                )
        else:
            raise fail(f"unknown definition {key!r} (expected {', '.join((*SWITCHES, *RATES))})", "definitions", key)
    for step, milestone in data["last_step"].items():
        if milestone not in MILESTONES:
            raise fail(
                f"lastStep {step!r} = {milestone!r} is not a milestone ({', '.join(MILESTONES)})", "last_step", step
            )
    for outcome, kind in data["session_outcome"].items():
        if kind not in OUTCOME_CLASSES:
            raise fail(
                f"sessionOutcome {outcome!r} = {kind!r} is not an outcome ({', '.join(OUTCOME_CLASSES)})",
                "session_outcome",
                outcome,
            )
    rates = dict(DEFAULT_RATES)
    rates.update({k: v for k, v in definitions.items() if k in RATES})
    return Vocabulary(
        dict(data["last_step"]),
        dict(data["session_outcome"]),
        rate_denominators=rates,
        unknown_threshold=float(threshold),
        source=source,
        **switches,
    )


def _line_of(text: str, section: str | None, key: str | None) -> int | None:
    """The 1-based line of `key` in `[section]` (top level when section is None), or of the section."""
    current = None
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if header := re.fullmatch(r"\[\s*([^\]]+?)\s*\]", stripped):
            current = header.group(1)
            if key is None and current == section:
                return number
            continue
        if key is not None and current == section:
            name = re.match(r"""("(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_-]+)\s*=""", stripped)
            if name and name.group(1).strip("\"'") == key:
                return number
    return None


def _toml_key(value: str) -> str:
    return (
        value if re.fullmatch(r"[A-Za-z0-9_-]+", value) else '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    )


def render(vocabulary: Vocabulary, header: str = "") -> str:
    """The vocabulary as a ready TOML file that `load` reads back to the same mapping and switches."""
    lines = [
        *(f"# {line}".rstrip() for line in header.splitlines()),
        "",
        "# Share of one tenant-day's sessions with unlisted values above which the marts fail.",
        f"unknown_threshold = {vocabulary.unknown_threshold}",
        "",
        "[definitions]",
        "# Bots counted in ServiceTitan's milestone counts? Zipcode before interacted? Sessions sent to leads",
        "# counted as abandoned? Bots counted in jobs, bookings, sent-to counts and contacts? Contacts captured",
        f"# as {' or '.join(CONTACT_DEFINITIONS)}?",
        *(switch_line(name, getattr(vocabulary, name)) for name in SWITCHES),
        "# Each /performance completion rate is booked ÷ the milestone named here.",
        *(switch_line(rate, vocabulary.rate_denominators[rate]) for rate in RATES),
        "",
        "[last_step]",
        f"# lastStep value = the furthest milestone it means: {', '.join(MILESTONES)}",
        *(
            f'{_toml_key(step)} = "{milestone}"'
            for step, milestone in sorted(vocabulary.steps.items(), key=lambda kv: MILESTONES.index(kv[1]))
        ),
        "",
        "[session_outcome]",
        f"# sessionOutcome value = {', '.join(OUTCOME_CLASSES)}",
        *(
            f'{_toml_key(outcome)} = "{kind}"'
            for outcome, kind in sorted(
                vocabulary.outcomes.items(), key=lambda kv: (OUTCOME_CLASSES.index(kv[1]), kv[0])
            )
        ),
    ]
    return "\n".join(lines).lstrip("\n") + "\n"
