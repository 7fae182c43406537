"""The one reading layer for the files users feed the program: probe files, taxonomies, claims, pairs, labels
sheets, MiJaBench-Align files, database dumps. Every loader reads through it, so every file gets the same
checks and every problem the same shape, `FILE:LINE[:COLUMN]: reason`, raised as the loader's own error type
(each maps to exit code 2 in the CLI):

- the path: missing, a directory, or not a regular file (a FIFO or a device would block or never end);
- the size: a file larger than the limit is refused before it is read, so a wrong file (a database dump, a
  video) cannot exhaust the memory of the machine or of the dashboard's server; the limit is a setting
  (AUDIT_MAX_INPUT_MB) for real large sets;
- the encoding: UTF-8 only; a file saved as UTF-16 (what some spreadsheet programs call "Unicode text") is
  named as such, since without a byte order mark its ASCII part would pass as UTF-8 with a NUL after every
  character; any other bad byte is located by line and column;
- JSON: nesting deeper than MAX_JSON_DEPTH is refused before json.loads sees it (a line nested 200,000 deep
  would otherwise overflow the parser's recursion), as are numbers longer than MAX_NUMBER_CHARS (Python
  refuses int() past 4,300 digits with a ValueError, and no count or id of this program needs more);
- text fields: a lone surrogate (a `\\udc80` escape: half a UTF-16 pair, which no UTF-8 writer can store), a
  NUL character, or a field longer than the limit (AUDIT_MAX_FIELD_CHARS, default 1,000,000 characters: a
  long model answer fits, a 50 MB blob pasted into a note does not);
- CSV: strict quoting; a quote left open is reported where it opened (not where the file ended, and never
  as one field that swallowed the rest of the file); a file with a header and no rows is refused.
"""
from __future__ import annotations

import csv
import io
import itertools
import json
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

MAX_INPUT_MB_ENV = "AUDIT_MAX_INPUT_MB"
DEFAULT_MAX_INPUT_MB = 100.0
MAX_FIELD_CHARS_ENV = "AUDIT_MAX_FIELD_CHARS"
DEFAULT_MAX_FIELD_CHARS = 1_000_000
MAX_JSON_DEPTH = 64
MAX_NUMBER_CHARS = 100

ErrorFactory = Callable[[str], Exception]


# -- limits ------------------------------------------------------------------------------------------------
def max_input_bytes() -> int:
    """The largest input file accepted, in bytes (AUDIT_MAX_INPUT_MB, default 100 MB)."""
    try:
        megabytes = float(os.environ.get(MAX_INPUT_MB_ENV) or DEFAULT_MAX_INPUT_MB)
    except ValueError:
        megabytes = DEFAULT_MAX_INPUT_MB
    return int(megabytes * 2**20)


def max_field_chars() -> int:
    """The longest text field accepted, in characters (AUDIT_MAX_FIELD_CHARS, default 1,000,000)."""
    try:
        return max(int(os.environ.get(MAX_FIELD_CHARS_ENV) or DEFAULT_MAX_FIELD_CHARS), 1)
    except ValueError:
        return DEFAULT_MAX_FIELD_CHARS


def oversize_message(where: str, size: int) -> str | None:
    """What is wrong with an input of `size` bytes, or None when it is within the limit."""
    limit = max_input_bytes()
    if size <= limit:
        return None
    return (f"{where}: the file is {size / 2**20:,.1f} MB, larger than the limit of {limit / 2**20:,.1f} MB; "
            f"split it, or raise the limit with {MAX_INPUT_MB_ENV}")


def allow_long_csv_fields() -> None:
    """Let the csv module read a field as long as a whole accepted file, so that an over-long field is
    reported by the field checks (with its length and the limit) instead of failing inside the csv module."""
    if csv.field_size_limit() < max_input_bytes():
        csv.field_size_limit(max_input_bytes())


# -- the path and the bytes ---------------------------------------------------------------------------------
def check_file(path, what: str, error: ErrorFactory, limited: bool = True) -> int:
    """The size of the input file at `path`, or error("FILE: reason"): missing, a directory, not a regular file,
    unreadable, or (with `limited`) larger than the limit."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise error(f"{path}: no such file (the {what})") from None
    except OSError as exc:
        raise error(f"{path}: cannot read the {what}: {exc.strerror}") from None
    if stat.S_ISDIR(info.st_mode):
        raise error(f"{path}: is a directory, not a file; give the {what} itself")
    if not stat.S_ISREG(info.st_mode):
        raise error(f"{path}: not a regular file (a pipe or a device); give the {what} as a file")
    if not os.access(path, os.R_OK):
        raise error(f"{path}: cannot read the {what}: permission denied")
    if limited:
        too_big = oversize_message(str(path), info.st_size)
        if too_big:
            raise error(too_big)
    return info.st_size


def read_bytes(path, what: str, error: ErrorFactory) -> bytes:
    """The bytes of an input file, after check_file."""
    check_file(path, what, error)
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise error(f"{path}: cannot read the {what}: {exc.strerror}") from None


def _lines_in(data: bytes | bytearray) -> int:
    """The line a text that ends after `data` is on."""
    return data.count(b"\n") + 1


def gunzip(data: bytes, where: str, error: ErrorFactory, ratio: int = 20) -> bytes:
    """The decompressed bytes of a gzip file, or error("FILE: reason"): not gzip, corrupt, cut short, or larger
    decompressed than `ratio` times the input limit (a small hostile file that would fill the memory)."""
    import gzip
    import zlib

    limit = max_input_bytes() * ratio
    out = bytearray()
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as handle:
            while len(out) <= limit:
                chunk = handle.read(1 << 20)
                if not chunk:
                    break
                out += chunk
    except gzip.BadGzipFile as exc:
        if not out and "Not a gzipped file" in str(exc):
            raise error(f"{where}:1: not a gzip file ({exc})") from None
        raise error(f"{where}:{_lines_in(out)}: corrupt gzip data ({exc})") from None
    except EOFError:  # the line where the readable text stops
        raise error(f"{where}:{_lines_in(out)}: the gzip data ends early (a truncated or partly copied "
                    "file)") from None
    except (zlib.error, OSError) as exc:
        raise error(f"{where}:{_lines_in(out)}: corrupt gzip data ({exc})") from None
    if len(out) > limit:
        raise error(f"{where}: decompressed, the file is larger than {limit / 2**20:,.0f} MB ({ratio} times the "
                    f"input limit); raise {MAX_INPUT_MB_ENV} for a file this large")
    return bytes(out)


def utf16_message(where: str, data: bytes) -> str | None:
    """A message when the bytes look like UTF-16 or UTF-32 text (a byte order mark, or NULs between ASCII
    characters), else None."""
    head = data[:4096]
    boms = (b"\xff\xfe", b"\xfe\xff")
    if head.startswith(boms) or (len(head) >= 8 and head.count(b"\x00") >= len(head) // 4):
        return f"{where}:1:1: the file looks like UTF-16 text (NUL bytes between characters); save it as UTF-8"
    return None


def not_utf8_message(where: str, data: bytes, exc: UnicodeDecodeError, first_line: int = 1, what: str = "file"
                     ) -> str:
    """`FILE:LINE:COL: not UTF-8 (byte 0x..)` for a decoding error in `data` (which starts at `first_line`)."""
    line = first_line + data.count(b"\n", 0, exc.start)
    column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
    return f"{where}:{line}:{column}: not UTF-8 (byte 0x{data[exc.start]:02x}); save the {what} as UTF-8"


def decode_utf8(data: bytes, where: str, error: ErrorFactory, what: str = "file") -> str:
    """The text of `data`, or error("FILE:LINE[:COL]: ...") where it is UTF-16 or not UTF-8. A BOM is dropped."""
    wrong = utf16_message(where, data)
    if wrong:
        raise error(wrong)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(not_utf8_message(where, data, exc, what=what)) from None


def read_utf8(path, what: str, error: ErrorFactory) -> str:
    """The text of a small input file (a taxonomy, a claims file, a probe file...), or `error("FILE:LINE: reason")`:
    missing, a directory, unreadable, larger than the limit, UTF-16, or not UTF-8 (the line of the first bad
    byte). A BOM is dropped."""
    return decode_utf8(read_bytes(path, what, error), str(path), error, what)


def utf8_lines(path, what: str, error: ErrorFactory) -> Iterator[str]:
    """The lines of a file of any size, streamed (for import-align: memory stays flat), each decoded as UTF-8 with
    its end kept; a bad byte is error("FILE:LINE:COL: not UTF-8 ...") on its own line, whenever it comes."""
    check_file(path, what, error, limited=False)
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise error(f"{path}: cannot read the {what}: {exc.strerror}") from None
    with handle:
        first = True
        for number, raw in enumerate(handle, start=1):
            if first:
                wrong = utf16_message(str(path), raw + handle.peek(4096)[:4096])
                if wrong:
                    raise error(wrong)
                raw, first = raw.removeprefix(b"\xef\xbb\xbf"), False
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise error(not_utf8_message(str(path), raw, exc, number, what)) from None


# -- text fields ---------------------------------------------------------------------------------------------
_BAD_CHARACTER = re.compile("[\x00\ud800-\udfff]")


def text_problem(value: str, limit: int | None = None) -> str | None:
    """What is wrong with one text field, or None: a NUL character, a lone surrogate, longer than the limit."""
    limit = max_field_chars() if limit is None else limit
    if len(value) > limit:
        return (f"{len(value):,} characters, longer than the limit of {limit:,} for one field "
                f"(raise it with {MAX_FIELD_CHARS_ENV})")
    bad = _BAD_CHARACTER.search(value)
    if bad is None:
        return None
    if bad.group() == "\x00":
        return f"a NUL character at character {bad.start() + 1} (text must not hold NUL bytes)"
    return (f"a lone surrogate \\u{ord(bad.group()):04x} at character {bad.start() + 1} (half of a UTF-16 pair, "
            "not a character; no UTF-8 file or database can hold it)")


# -- JSON ------------------------------------------------------------------------------------------------------
class JSONProblem(ValueError):
    """One JSON text that is not accepted: `reason`, with the 1-based `column` where known and the `field`."""

    def __init__(self, reason: str, column: int | None = None, field: str = "") -> None:
        super().__init__(reason)
        self.reason, self.column, self.field = reason, column, field

    def at(self, path, line: int) -> str:
        """`FILE:LINE[:COL]: reason`."""
        return f"{path}:{line}{f':{self.column}' if self.column else ''}: {self.reason}"


class _LongNumber(ValueError):
    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


def _number(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        if len(text) > MAX_NUMBER_CHARS:
            raise _LongNumber(text)
        return kind(text)
    return convert


_PARSE_INT, _PARSE_FLOAT = _number(int), _number(float)
# A JSON string (whole, escapes and all), a bracket, or a number: what the depth and number scans look at.
_JSON_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[{]|[\]}]|-?\d[\d.eE+\-]*')


def _json_scan(text: str) -> tuple[int | None, int | None]:
    """(column where nesting first passes MAX_JSON_DEPTH, column of the first number longer than
    MAX_NUMBER_CHARS), each None where there is none; strings are skipped whole."""
    depth, deep, long = 0, None, None
    for token in _JSON_TOKENS.finditer(text):
        first = token.group()[0]
        if first in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH and deep is None:
                deep = token.start() + 1
        elif first in "]}":
            depth -= 1
        elif first != '"' and len(token.group()) > MAX_NUMBER_CHARS and long is None:
            long = token.start() + 1
        if deep is not None and long is not None:
            break
    return deep, long


_ESCAPE = re.compile(r"\\u([dD][89abAB][0-9a-fA-F]{2})(?:\\u([dD][c-fC-F][0-9a-fA-F]{2}))?|\\u([dD][c-fC-F][0-9a-fA-F]{2})"
                     r"|\\u0000")


def _escape_column(text: str, problem: str) -> int | None:
    """The column of the first escape that makes `problem` (a lone surrogate or a NUL) in a JSON text."""
    for found in _ESCAPE.finditer(text):
        if "a NUL" in problem and found.group() == "\\u0000":
            return found.start() + 1
        if "a lone" in problem and found.group() != "\\u0000" and (found.group(1) is None
                                                                            or found.group(2) is None):
            return found.start() + 1
    return None


def _string_problems(value: Any, field: str = "") -> tuple[str, str] | None:
    """(field, reason) of the first bad string in a parsed JSON value (keys too), or None."""
    if isinstance(value, str):
        reason = text_problem(value)
        return (field, reason) if reason else None
    if isinstance(value, dict):
        for key, item in value.items():
            reason = text_problem(key)
            if reason:
                return (field, f"a key: {reason}")
            found = _string_problems(item, f"{field}.{key}" if field else key)
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _string_problems(item, f"{field}[{index}]")
            if found:
                return found
    return None


def parse_json(text: str) -> Any:
    """One JSON text (a JSON Lines record), or JSONProblem: invalid JSON, nested deeper than MAX_JSON_DEPTH,
    a number longer than MAX_NUMBER_CHARS, or a string holding a NUL, a lone surrogate or more characters than
    the field limit. Never a RecursionError or a ValueError of int(): the checks come first."""
    if text.count("[") + text.count("{") > MAX_JSON_DEPTH:
        deep, _ = _json_scan(text)
        if deep is not None:
            raise JSONProblem(f"JSON nested deeper than {MAX_JSON_DEPTH} levels", deep)
    try:
        value = json.loads(text, parse_int=_PARSE_INT, parse_float=_PARSE_FLOAT)
    except json.JSONDecodeError as exc:
        raise JSONProblem(f"invalid JSON: {exc.msg}", exc.colno) from None
    except _LongNumber as exc:
        _, column = _json_scan(text)
        raise JSONProblem(f"a number of {len(exc.text.lstrip('-')):,} digits, longer than the limit of "
                          f"{MAX_NUMBER_CHARS}", column) from None
    except RecursionError:  # not reached after the depth scan; kept so that no input can raise it
        raise JSONProblem(f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    if "\\u" in text or len(text) > max_field_chars():  # only escapes make NULs and surrogates; only length, length
        found = _string_problems(value)
        if found:
            field, reason = found
            named = f"field {field!r}: " if field else ""
            raise JSONProblem(named + reason, _escape_column(text, reason), field)
    return value


def json_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) for every non-blank line of a JSON Lines text. Records end at "\\n" only: a JSON string
    may hold a raw U+2028, which str.splitlines would cut at."""
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        if line.strip():
            yield number, line


def json_objects(text: str, path) -> Iterator[tuple[int, dict | str]]:
    """(line number, object) for every non-blank line of a JSON Lines text, or (line number, problem) where the
    line is not an accepted JSON object: `FILE:LINE[:COL]: reason` (parse_json's checks, or `expected a JSON
    object per line`); the caller decides whether a problem stops the file or is collected with the others."""
    for number, line in json_lines(text):
        try:
            row = parse_json(line)
        except JSONProblem as exc:
            yield number, exc.at(path, number)
            continue
        yield number, row if isinstance(row, dict) else f"{path}:{number}: expected a JSON object per line"


# -- TOML -------------------------------------------------------------------------------------------------------
_TOML_TOKENS = re.compile(r'"""(?:[^\\]|\\.)*?"""|\'\'\'.*?\'\'\'|"[^"\\\n]*(?:\\.[^"\\\n]*)*"|\'[^\'\n]*\'|#[^\n]*|\n'
                          r"|[\[{]|[\]}]|[+-]?\d[\d_]*", re.DOTALL)


def toml_problem(text: str) -> tuple[int, int, str] | None:
    """(line, column, reason) where a TOML text nests arrays or inline tables deeper than MAX_JSON_DEPTH or holds
    an integer longer than MAX_NUMBER_CHARS (tomllib would overflow its recursion or int()), else None."""
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH and not re.search(r"\d[\d_]{%d}" % MAX_NUMBER_CHARS, text):
        return None
    depth, line, line_start = 0, 1, 0
    for token in _TOML_TOKENS.finditer(text):
        value = token.group()
        if value == "\n":
            line, line_start = line + 1, token.end()
        elif value[0] in "\"'":
            newlines = value.count("\n")
            if newlines:
                line, line_start = line + newlines, token.start() + value.rfind("\n") + 1
        elif value[0] in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return line, token.start() - line_start + 1, f"nested deeper than {MAX_JSON_DEPTH} levels"
        elif value[0] in "]}":
            depth = max(depth - 1, 0)
        elif value[0] != "#" and len(value.lstrip("+-").replace("_", "")) > MAX_NUMBER_CHARS:
            digits = len(value.lstrip("+-").replace("_", ""))
            return (line, token.start() - line_start + 1,
                    f"a number of {digits:,} digits, longer than the limit of {MAX_NUMBER_CHARS}")
    return None


def nesting_depth(value: Any, limit: int = MAX_JSON_DEPTH) -> int:
    """How deeply dicts and lists nest in a parsed value (without recursion; counting stops past `limit`): TOML's
    dotted keys (`a.b.c...`) nest tables without a bracket, which toml_problem cannot see."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            depth += 1
            deepest = max(deepest, depth)
            if deepest > limit:
                break
            stack.extend((child, depth) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


_DOTTED = re.compile(r"\s*\[*\s*(?:[^.=\s\[\]]+\s*\.\s*){%d}" % MAX_JSON_DEPTH)


def deep_dotted_key_line(text: str) -> int | None:
    """The first line of a TOML text whose dotted key (or table header) has more than MAX_JSON_DEPTH parts, else
    None: such a key nests tables without a bracket, so toml_problem does not count it."""
    if text.count(".") < MAX_JSON_DEPTH:
        return None
    for number, line in enumerate(text.splitlines(), start=1):
        if line.count(".") >= MAX_JSON_DEPTH and _DOTTED.match(line):
            return number
    return None


# -- CSV ---------------------------------------------------------------------------------------------------------
def _quote_trouble(lines: Iterable[str], delimiter: str) -> tuple[tuple[int, int], tuple[int, int] | None] | None:
    """Where quoting goes wrong in a CSV text read from the first line of a record: ((line offset, column) of the
    quote that opened the field, (line offset, column) of the quote that closed it where text follows it, else
    None: the quote is never closed); None when all quoting is well formed."""
    state, opened, closed = "start", (0, 0), (0, 0)  # start of a field, unquoted field, inside quotes, after a quote
    for offset, line in enumerate(lines):
        for column, char in enumerate(line, start=1):
            if state == "quoted":
                if char == '"':
                    state, closed = "quote", (offset, column)
            elif state == "quote":
                if char == '"':
                    state = "quoted"
                elif char in (delimiter, "\n", "\r"):
                    state = "start"
                else:
                    return opened, closed
            elif char == '"' and state == "start":
                state, opened = "quoted", (offset, column)
            elif char in (delimiter, "\n", "\r"):
                state = "start"
            else:
                state = "field"
    return (opened, None) if state == "quoted" else None


class CSVTable:
    """A CSV text read through the layer: `header` (its cells), then `rows()`, (line, cells) for each non-blank
    record, a record named by its first physical line.

    `source` is the text, or a function returning a fresh iterator of its lines (a streamed file: it is read once
    for the rows and again only to locate a quote left open). Problems raise `error("FILE:LINE[:COL]: reason")`:
    an empty file, malformed quoting (a quote left open is named where it opened), a cell holding a NUL, a lone
    surrogate or more characters than the field limit (COL is the cell's position, with its column's name), and
    a file with a header and no rows (`what` names the rows: "no labelled rows after the header")."""

    def __init__(self, source: str | Callable[[], Iterable[str]], where: str, error: ErrorFactory,
                 delimiter: str = ",", what: str = "rows") -> None:
        self.source, self.where, self.error, self.delimiter, self.what = source, where, error, delimiter, what
        allow_long_csv_fields()
        self._reader = csv.reader(self._lines(), delimiter=delimiter, strict=True)
        header = self._next(1)
        if header is None:
            raise error(f"{where}:1: the file is empty; expected a header row")
        self.header = header
        self._check_cells(1, header)

    def _lines(self) -> Iterable[str]:
        return io.StringIO(self.source, newline="") if isinstance(self.source, str) else self.source()

    def _next(self, start: int) -> list[str] | None:
        try:
            return next(self._reader)
        except StopIteration:
            return None
        except csv.Error as exc:
            if "field larger than field limit" in str(exc):
                raise self.error(f"{self.where}:{start}: a field longer than {csv.field_size_limit():,} characters; "
                                 f"the limit for one field is {max_field_chars():,}") from None
            lines = iter(self._lines())
            for _ in itertools.islice(lines, start - 1):
                pass
            trouble = _quote_trouble(lines, self.delimiter)
            if trouble is not None:
                (line, column), closed = trouble
                if closed is None:
                    raise self.error(f"{self.where}:{start + line}:{column}: malformed CSV record: the quote opened "
                                     "here is never closed, so the rest of the file would be one field; close it, "
                                     'or double a quote meant as text ("")') from None
                raise self.error(f"{self.where}:{start + line}:{column}: malformed CSV record: the quote opened here "
                                 f"closes on line {start + closed[0]}, column {closed[1]}, and text follows it (a quote "
                                 'left open, or a quote inside quotes that is not doubled: "")') from None
            raise self.error(f"{self.where}:{start}: malformed CSV record: {exc}") from None

    def _check_cells(self, line: int, cells: list[str]) -> None:
        for index, cell in enumerate(cells):
            reason = text_problem(cell)
            if reason:
                name = self.header[index] if line > 1 and index < len(self.header) else ""
                raise self.error(f"{self.where}:{line}:{index + 1}: {f'column {name!r}: ' if name else ''}{reason}")

    @property
    def line_num(self) -> int:
        """The last physical line read so far."""
        return self._reader.line_num

    def rows(self, check_cells: bool = True) -> Iterator[tuple[int, list[str]]]:
        """(first line, cells) of each non-blank record after the header; the error where there is none."""
        seen = False
        while True:
            start = self._reader.line_num + 1
            cells = self._next(start)
            if cells is None:
                break
            if not any(cell.strip() for cell in cells):
                continue
            if check_cells:
                self._check_cells(start, cells)
            seen = True
            yield start, cells
        if not seen:
            raise self.error(f"{self.where}:2: no {self.what} after the header")


def file_lines(path, error: ErrorFactory, what: str = "file") -> Callable[[], Iterable[str]]:
    """A CSVTable source for a streamed file: utf8_lines of `path`, fresh on each call."""
    return lambda: utf8_lines(path, what, error)
