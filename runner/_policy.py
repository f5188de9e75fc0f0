"""The failure policy (``--halt``), parsed once and asked after every finished job.

Mirrors GNU Parallel's ``--halt``: ``now`` kills the running jobs, ``soon`` lets them
finish; ``fail=N`` triggers on the N-th failed job, ``fail=N%`` once N percent of the
finished jobs have failed (checked from the third finished job on, as GNU Parallel does,
so one early failure out of one does not read as 100%).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

__all__ = ["NEVER", "Halt", "parse_halt"]

_FORM = re.compile(r"(?P<when>now|soon)(?:,fail=(?P<num>\d+(?:\.\d+)?)(?P<pct>%)?)?")
_LEGACY = {"0": "never", "1": "soon,fail=1", "2": "now,fail=1"}


@dataclass(frozen=True, slots=True)
class Halt:
    """When to stop a run early because jobs fail."""

    when: Literal["never", "now", "soon"] = "never"
    fail: float = 1  # a count, or a percentage when ``percent``
    percent: bool = False

    def triggered(self, failed: int, finished: int) -> bool:
        """Whether ``failed`` failures out of ``finished`` finished jobs call for a halt."""
        if self.when == "never" or failed == 0:
            return False
        if self.percent:
            return finished >= 3 and failed * 100 >= self.fail * finished
        return failed >= self.fail

    def __str__(self) -> str:
        if self.when == "never":
            return "never"
        num = f"{self.fail:g}{'%' if self.percent else ''}"
        return f"{self.when},fail={num}"


NEVER = Halt()  # the default: run everything whatever fails


def parse_halt(text: str) -> Halt:
    """Parse a ``--halt`` value; ValueError with the accepted forms when it is not one."""
    text = _LEGACY.get(text.strip(), text.strip())
    if text == "never":
        return NEVER
    match = _FORM.fullmatch(text)
    if match is None:
        raise ValueError(
            f"--halt must be 'never', 'now', 'soon', 'now,fail=N', 'soon,fail=N' "
            f"or 'soon,fail=N%', not {text!r}"
        )
    when: Literal["now", "soon"] = "now" if match["when"] == "now" else "soon"
    num = float(match["num"]) if match["num"] else 1.0
    percent = bool(match["pct"])
    if num <= 0 or (percent and num > 100) or (not percent and not num.is_integer()):
        raise ValueError(
            f"--halt fail= needs a whole count >= 1 or a percentage in (0, 100], not {text!r}"
        )
    return Halt(when, num, percent)
