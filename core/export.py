"""Exports of the store for analysts: one row per completion with its verdicts.

Files are UTF-8 with a header row and safe to open in a spreadsheet: a cell that starts with a
character a spreadsheet reads as a formula (= + - @, tab, carriage return) is prefixed with an
apostrophe, since completions are untrusted text (CSV formula injection).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formula(value: object) -> object:
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def write_csv(frame: pd.DataFrame, path: str | Path) -> int:
    """Write a frame as spreadsheet-safe CSV; returns the number of rows written."""
    safe = frame.copy()
    for column in safe.columns:
        if safe[column].dtype == object or pd.api.types.is_string_dtype(safe[column]):
            safe[column] = safe[column].map(neutralise_formula)
    safe.to_csv(path, index=False, encoding="utf-8")
    return len(safe)
