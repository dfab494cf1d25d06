"""Sizes written WIDTHxHEIGHT on the command line (--screen 1920x1080 pixels, --screen-cm 34.4x19.3 cm): one
parser for every command, one error type naming the option and the value; and whole-number counts with a lower
bound (at_least), the argparse type every command's count options share."""

from __future__ import annotations

import argparse
import math

from gazeneg.errors import GazenegError

EXAMPLES = {"pixels": "1920x1080", "cm": "34.4x19.3"}


class SizeError(GazenegError, ValueError):
    """A WIDTHxHEIGHT value that is not two positive numbers."""


def parse_size(text, option: str = "--screen", unit: str = "pixels") -> tuple:
    """'1440x900' -> (1440, 900): whole numbers for pixels, floats for any other unit; spaces and a capital X
    allowed. Raises SizeError naming `option` and the value for anything else (a third part, zero, a negative,
    nan or inf, a fractional pixel)."""
    example = EXAMPLES.get(unit, "40x30")
    bad = SizeError(f"{option} {text!r}: expected WIDTHxHEIGHT in {unit}, two positive numbers, e.g. {example}")
    if not isinstance(text, str):
        raise bad
    parts = text.lower().replace(" ", "").split("x")
    if len(parts) != 2:
        raise bad
    try:
        w, h = (int(v) for v in parts) if unit == "pixels" else (float(v) for v in parts)
    except ValueError:
        raise bad from None
    if not (math.isfinite(w) and math.isfinite(h) and w > 0 and h > 0):
        raise bad
    return w, h


def size_arg(option: str, unit: str = "pixels"):
    """An argparse `type=` for a WIDTHxHEIGHT option: parse_size's message in argparse's error line."""
    def parse(text: str) -> tuple:
        try:
            return parse_size(text, option, unit)
        except SizeError as e:
            raise argparse.ArgumentTypeError(str(e).removeprefix(option + " ")) from None   # argparse names it

    parse.__name__ = f"{option.lstrip('-').replace('-', '_')}_size"
    return parse


def at_least(low: int, why: str = ""):
    """An argparse `type=` for a whole number >= low; `why` is said after the bound (" for a paired test")."""
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if v < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}{why}, got {v}")
        return v

    parse.__name__ = f"whole_number_at_least_{low}"
    return parse
