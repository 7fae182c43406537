"""The rules for values a person types: numeric options (finite, in range) and ids (run ids, target names).

One definition, read by every surface that takes these values: the CLI (`run`, `targets add`, `import-align`,
checked before a command opens the database), the Run page and core.run.request.RunRequest (the run config both build),
OpenAIConfig (a saved or typed API target) and core.run.runner.plan_run (a run id given by any caller). A value
outside its rule is an OptionError (a ValueError) whose message names the option, the value and what is allowed,
the same words wherever it is shown:

    --batch-size 0: must be a whole number from 1 to 4,096
    --temperature nan: must be a finite number from 0 to 2
    --run-id '../x': an id is 1 to 128 letters, digits or . _ - : @, starting with a letter or digit

Nothing here imports more than the standard library, so the CLI's parser can use it without slowing `--help`.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["ID_PATTERN", "ID_RULE", "NUMBERS", "READ_ONLY_ENV", "Number", "OptionError", "check_id", "check_number",
           "check_numbers", "is_valid_id", "read_only_env"]

# A read-only session (a regulator's demo): the dashboard and every CLI command open the database read-only, and
# the commands that would write to it are refused. Set to 1, true or yes.
READ_ONLY_ENV = "AUDIT_READONLY"


def read_only_env() -> bool:
    """Whether the environment asks for a read-only session (AUDIT_READONLY=1, true or yes)."""
    return os.environ.get(READ_ONLY_ENV, "").strip().lower() in ("1", "true", "yes")


class OptionError(ValueError):
    """A value outside its rule; the message names the option, the value and the allowed range."""


def _shown(value: Any) -> str:
    """The value as a message shows it: numbers as typed, text quoted (so blanks are visible), long text cut."""
    if isinstance(value, str):
        text = repr(value)
        return text if len(text) <= 70 else text[:60] + "...'"
    return f"{value:.12g}" if isinstance(value, float) else f"{value}"


def _bound(value: float) -> str:
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:g}"


@dataclass(frozen=True)
class Number:
    """A numeric option: whole (`integer`) or not, finite, within [low, high] (above low when `above`)."""

    flag: str  # as the CLI spells it, e.g. --batch-size; messages name it so
    low: float
    high: float
    integer: bool = True
    above: bool = False  # low itself is not allowed (a rate, a timeout: must be positive)

    @property
    def allowed(self) -> str:
        kind = "a whole number" if self.integer else "a finite number"
        if self.above:
            return f"{kind} above {_bound(self.low)} and at most {_bound(self.high)}"
        return f"{kind} from {_bound(self.low)} to {_bound(self.high)}"

    def check(self, value: Any) -> int | float:
        """The value if it follows the rule (bools and text are refused, an integral float is accepted as an int
        for whole-number options), else OptionError."""
        problem = None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            problem = True
        elif isinstance(value, float) and not math.isfinite(value):
            problem = True
        elif self.integer and isinstance(value, float) and not value.is_integer():
            problem = True
        elif value < self.low or value > self.high or (self.above and value == self.low):
            problem = True
        if problem:
            raise OptionError(f"{self.flag} {_shown(value)}: must be {self.allowed}")
        return int(value) if self.integer else float(value)


# The numeric options, by flag name without its dashes. Ranges are wide enough for any real use and narrow enough
# that a typo (1e9, a sign) or a value no server or model can take (nan, inf, 0 workers) never starts anything.
NUMBERS: dict[str, Number] = {rule.flag.removeprefix("--"): rule for rule in (
    Number("--batch-size", 1, 4096),
    Number("--max-new-tokens", 1, 131_072),
    Number("--temperature", 0, 2, integer=False),
    Number("--seed", 0, 2 ** 32 - 1),
    Number("--per-cell", 1, 1_000_000),
    Number("--max-concurrency", 1, 1024),
    Number("--ray-workers", 1, 4096),
    Number("--rpm", 0, 1e9, integer=False, above=True),
    Number("--tpm", 0, 1e12, integer=False, above=True),
    Number("--timeout", 0, 86_400, integer=False, above=True),
    Number("--max-retries", 0, 100),
    Number("--price-input", 0, 1e6, integer=False),
    Number("--price-output", 0, 1e6, integer=False),
    Number("--outage-failures", 1, 1_000_000),
    Number("--outage-window", 0, 86_400, integer=False),
    Number("--size-b", 0, 1e6, integer=False, above=True),
)}


def check_number(name: str, value: Any) -> int | float:
    """`value` checked against NUMBERS[name] (name: the flag without dashes, e.g. "batch-size")."""
    return NUMBERS[name].check(value)


def check_numbers(**values: Any) -> None:
    """Check several at once, keyword names with underscores (batch_size=16, temperature=0.0); None is skipped."""
    for name, value in values.items():
        if value is not None:
            check_number(name.replace("_", "-"), value)


# -- ids ---------------------------------------------------------------------------------------------------
# Run ids and target ids: what a person names (run --run-id, targets add NAME, import-align --run-id) and what an
# imported file's model columns name. They appear in file names, URLs, HTML and shell commands the product prints,
# so they hold no path separator, blank, quote, markup or comma (lists of them are comma-separated). Model names
# and paths (hub ids with '/', local directories) are not ids; a target id the product derives from one (an API
# spec's `model@host`) is not checked here.
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")
ID_RULE = "an id is 1 to 128 letters, digits or . _ - : @, starting with a letter or digit"


def is_valid_id(value: Any) -> bool:
    return isinstance(value, str) and ID_PATTERN.fullmatch(value) is not None


def check_id(flag: str, value: Any) -> str:
    """`value` if it is a valid id, else OptionError naming `flag` (e.g. --run-id)."""
    if not is_valid_id(value):
        raise OptionError(f"{flag} {_shown(value)}: {ID_RULE}")
    return value
