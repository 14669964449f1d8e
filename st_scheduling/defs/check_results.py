"""One way every check reports: how many rows break its rule, and labeled examples with the numbers."""

import dagster as dg


def check_result(
    problems: list[tuple],
    columns: tuple[str, ...],
    rule: str,
    *,
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
    description: str | None = None,
    **metadata,
) -> dg.AssetCheckResult:
    """`problems` are rows of `columns`; the description states the rule and the first offending row."""
    examples = [{c: None if v is None else str(v) for c, v in zip(columns, row, strict=True)} for row in problems[:20]]
    if description is None:
        description = (
            f"passed: {rule}"
            if not problems
            else f"{len(problems)} row(s) break the rule: {rule}. "
            f"First: " + ", ".join(f"{k} = {v}" for k, v in examples[0].items())
        )
    return dg.AssetCheckResult(
        passed=not problems,
        severity=severity,
        description=description,
        metadata={
            "problems": dg.MetadataValue.int(len(problems)),
            "rule": dg.MetadataValue.text(rule),
            "examples": dg.MetadataValue.json(examples),
            **metadata,
        },
    )
