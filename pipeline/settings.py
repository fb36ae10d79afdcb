"""Every setting of the pipeline: its default, what is allowed and its value now (`make settings`).

Settings are read from the environment, each by its upper-case name (DATA_ROOT,
TRAIN_EPOCHS...); a variable that looks like a setting but is none stops every command.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

from pipeline.config import (CHOICES, INTEGER_BOUNDS, INTERVALS, POSITIVE_NUMBER_BOUNDS,
                             PipelineConfig)
from pipeline.history import format_table

COLUMNS = ("setting", "default", "allowed", "current")


def allowed_values(field: dataclasses.Field) -> str:
    """What PipelineConfig accepts for `field`, from the tables its checks use."""
    if field.name in CHOICES:
        return ", ".join(map(str, CHOICES[field.name]))
    if field.name in INTEGER_BOUNDS:
        least, most = INTEGER_BOUNDS[field.name]
        return f"integer {least}..{most:,}"
    if field.name in POSITIVE_NUMBER_BOUNDS:
        return f"number (0, {POSITIVE_NUMBER_BOUNDS[field.name]}]"
    if field.name in INTERVALS:
        return f"number {INTERVALS[field.name]}"
    if isinstance(field.default, bool):
        return "true, false"
    if isinstance(field.default, tuple):
        return "comma-separated names"
    return "text" if isinstance(field.default, str) else type(field.default).__name__


def as_environment_text(value: Any) -> str:
    """`value` as it is written in the environment."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return ",".join(value)
    return str(value)


def settings_rows(config: PipelineConfig) -> list[tuple[str, ...]]:
    return [(field.name.upper(), as_environment_text(field.default), allowed_values(field),
             as_environment_text(getattr(config, field.name)))
            for field in dataclasses.fields(PipelineConfig)]


def main() -> int:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    try:
        config = PipelineConfig.from_env()
    except ValueError as error:
        print(error, file=sys.stderr)
        return 1
    print(format_table(settings_rows(config), COLUMNS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
