"""Checks on the files users feed the program (probe files, labels files), shared by their loaders.

A file larger than the limit is refused with a message before it is read, so a wrong file (a database dump,
a video) cannot exhaust the memory of the machine or of the dashboard's server; the limit is a setting
(AUDIT_MAX_INPUT_MB) for real large sets. A file saved as UTF-16 (what some spreadsheet programs call
"Unicode text") is named as such, since without a byte order mark its ASCII part would pass as UTF-8
with a NUL after every character.
"""
from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator

MAX_INPUT_MB_ENV = "AUDIT_MAX_INPUT_MB"
DEFAULT_MAX_INPUT_MB = 100.0


def max_input_bytes() -> int:
    """The largest probe or labels file accepted, in bytes (AUDIT_MAX_INPUT_MB, default 100 MB)."""
    try:
        megabytes = float(os.environ.get(MAX_INPUT_MB_ENV) or DEFAULT_MAX_INPUT_MB)
    except ValueError:
        megabytes = DEFAULT_MAX_INPUT_MB
    return int(megabytes * 2**20)


def oversize_message(where: str, size: int) -> str | None:
    """What is wrong with an input of `size` bytes, or None when it is within the limit."""
    limit = max_input_bytes()
    if size <= limit:
        return None
    return (f"{where}: the file is {size / 2**20:,.1f} MB, larger than the limit of {limit / 2**20:,.1f} MB; "
            f"split it, or raise the limit with {MAX_INPUT_MB_ENV}")


def allow_long_csv_fields() -> None:
    """Let the csv module read a field as long as a whole accepted file, so that an over-long prompt is
    reported by the row checks (with its length and the limit) instead of failing inside the csv module."""
    if csv.field_size_limit() < max_input_bytes():
        csv.field_size_limit(max_input_bytes())


def utf16_message(where: str, data: bytes) -> str | None:
    """A message when the bytes look like UTF-16 or UTF-32 text (a byte order mark, or NULs between ASCII
    characters), else None."""
    head = data[:4096]
    boms = (b"\xff\xfe", b"\xfe\xff")
    if head.startswith(boms) or (len(head) >= 8 and head.count(b"\x00") >= len(head) // 4):
        return f"{where}:1:1: the file looks like UTF-16 text (NUL bytes between characters); save it as UTF-8"
    return None


def read_utf8(path, what: str, error: type[Exception]) -> str:
    """The text of a small input file (a taxonomy, a claims file), or `error("FILE:LINE: reason")`: unreadable,
    larger than the limit, UTF-16, or not UTF-8 (the line of the first bad byte). A BOM is dropped."""
    try:
        size = os.path.getsize(path)
    except OSError as exc:
        raise error(f"{path}:1: cannot read the {what}: {exc.strerror}") from None
    too_big = oversize_message(str(path), size)
    if too_big:
        raise error(too_big)
    with open(path, "rb") as handle:
        raw = handle.read()
    wrong = utf16_message(str(path), raw)
    if wrong:
        raise error(wrong)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise error(f"{path}:{line}: not UTF-8; save the {what} as UTF-8") from None


def json_objects(text: str, path) -> Iterator[tuple[int, dict | str]]:
    """(line number, object) for every non-blank line of a JSON Lines text, or (line number, problem) where the
    line is not a JSON object: `FILE:LINE:COL: invalid JSON: ...` or `FILE:LINE: expected a JSON object per
    line`. Records end at "\n" only (a JSON string may hold a raw U+2028, which str.splitlines would cut at);
    the caller decides whether a problem stops the file or is collected with the others."""
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, f"{path}:{number}:{exc.colno}: invalid JSON: {exc.msg}"
            continue
        yield number, row if isinstance(row, dict) else f"{path}:{number}: expected a JSON object per line"
