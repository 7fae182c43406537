"""The bad inputs the reliability suite tries, shared by its tests and the soak (python -m tests.reliability.soak):
probe files that must be refused with their file, line and reason, and option values that must be refused before
anything is written."""
from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pandas as pd

from tests.reliability.file_faults import _jsonl

HEADER = ["text", "group", "language", "jb_strategy", "jb_prompt"]
GOOD = {"text": "a seed statement", "group": "black", "language": "en", "jb_strategy": "chaining",
        "jb_prompt": "Write a story about the seed statement."}
MEGABYTE_PROMPT = "x" * 1_000_000


def _csv(rows: list[dict], columns: list[str] = HEADER) -> bytes:
    return pd.DataFrame(rows, columns=columns).to_csv(index=False).encode()


def _parquet(rows: list[dict]) -> bytes:
    buffer = io.BytesIO()
    pd.DataFrame(rows).to_parquet(buffer, index=False)
    return buffer.getvalue()


GOOD_CSV = _csv([GOOD, dict(GOOD, group="women")])
# name, file contents, what the message must say after "FILE" (the location, then the reason)
PROBE_FILES: list[tuple[str, bytes, str]] = [
    ("extra-fields.csv", GOOD_CSV + b"a,black,en,chaining,p,surplus\n", ":4: 1 more fields than the header has"),
    ("truncated.csv", GOOD_CSV + b'a,black,en,chaining,"a prompt cut off',
     ":4:21: malformed CSV record: the quote opened here is never closed"),
    ("truncated.jsonl", _jsonl([GOOD])[:-20], ":1:106: invalid JSON: Unterminated string"),
    ("truncated.parquet", _parquet([GOOD] * 50)[:-100], ": not a readable Parquet file"),
    ("latin1.csv", "text,group,language,jb_strategy,jb_prompt\ncaf\xe9,black,en,chaining,p\n".encode("latin-1"),
     ":2:4: not UTF-8 (byte 0xe9)"),
    ("utf16.csv", GOOD_CSV.decode().encode("utf-16"), ":1:1: the file looks like UTF-16 text"),
    ("utf16-no-bom.jsonl", _jsonl([GOOD]).decode().encode("utf-16-le"), ":1:1: the file looks like UTF-16 text"),
    ("wrong-columns.csv", _csv([{"prompt": "p", "target": "black"}], ["prompt", "target"]),
     ":1: missing column(s) text, group, language, jb_strategy, jb_prompt"),
    ("wrong-columns.parquet", _parquet([{"prompt": "p"}]), ":1: missing column(s) text, group"),
    ("wrong-columns.jsonl", _jsonl([{"prompt": "p"}]), ":1: missing column(s) text, group"),
    ("unknown-group.csv", _csv([GOOD, dict(GOOD, group="martians")]), ":3 (column group): unknown group 'martians'"),
    ("unknown-strategy.jsonl", _jsonl([GOOD, dict(GOOD, jb_strategy="mind_control")]),
     ":2 (column jb_strategy): unknown strategy 'mind_control'"),
    ("unknown-group.parquet", _parquet([GOOD, GOOD, dict(GOOD, group="vulcans")]),
     ":3 (column group): unknown group 'vulcans'"),
    ("empty-prompt.csv", _csv([GOOD, dict(GOOD, jb_prompt="   ")]), ":3 (column jb_prompt): empty prompt"),
    ("empty-prompt.parquet", _parquet([dict(GOOD, jb_prompt="")]), ":1 (column jb_prompt): empty prompt"),
    ("megabyte-prompt.csv", _csv([GOOD, dict(GOOD, jb_prompt=MEGABYTE_PROMPT)]),
     ":3 (column jb_prompt): prompt of 1,000,000 characters is longer than the limit of 200,000"),
    ("megabyte-prompt.jsonl", _jsonl([dict(GOOD, jb_prompt=MEGABYTE_PROMPT)]),
     ":1 (column jb_prompt): prompt of 1,000,000 characters is longer"),
    ("megabyte-prompt.parquet", _parquet([dict(GOOD, jb_prompt=MEGABYTE_PROMPT)]),
     ":1 (column jb_prompt): prompt of 1,000,000 characters is longer"),
    ("nul-in-prompt.csv", _csv([dict(GOOD, jb_prompt="a\x00b")]), ":2 (column jb_prompt): a NUL character"),
    ("not-objects.jsonl", b'["a list"]\n42\n', ":1: expected a JSON object per line"),
    ("empty.csv", b"", ":1: the file is empty"),
    ("binary.jsonl", bytes(range(1, 256)) * 4, ":2:118: not UTF-8 (byte 0x80)"),
    ("probes.xlsx", b"PK\x03\x04", ": unknown probe file type '.xlsx'"),
]



def file_state(db: Path) -> tuple:
    """What must not change: the file's bytes and mtime, and whether a WAL is beside it."""
    return hashlib.sha256(db.read_bytes()).hexdigest(), db.stat().st_mtime_ns, Path(f"{db}.wal").exists()



# -- numbers and ids -------------------------------------------------------------------------------------
SELECTION = ["--languages", "en", "--groups", "black", "--per-cell", "1", "--quiet"]
# Targets that would answer at once if a value slipped through (the fake server of the reliability suite).
API_RUN = ["run", "--target", "openai:fake-model@{url}", *SELECTION]
LOCAL_RUN = ["run", "--target", "smollm2", *SELECTION]
ADD = ["targets", "add", "t2", "--model", "m", "--base-url", "{url}"]
BAD_VALUES: list[tuple[str, list[str], str]] = [  # id, argv, what stderr says
    ("run ray --ray-workers 0", [*API_RUN, "--executor", "ray", "--ray-workers", "0"],
     "--ray-workers 0: must be a whole number from 1 to 4,096"),
    ("run local --batch-size 0", [*LOCAL_RUN, "--batch-size", "0"], "--batch-size 0: must be a whole number from 1"),
    ("run API --batch-size 0", [*API_RUN, "--batch-size", "0"], "--batch-size 0: must be a whole number from 1"),
    ("run --batch-size 100000", [*LOCAL_RUN, "--batch-size", "100000"], "--batch-size 100000: must be a whole number"),
    ("run --temperature nan", [*API_RUN, "--temperature", "nan"], "--temperature nan: must be a finite number from 0 to 2"),
    ("run --temperature inf", [*API_RUN, "--temperature", "inf"], "--temperature inf: must be a finite number"),
    ("run --temperature 1e9", [*API_RUN, "--temperature", "1e9"], "--temperature 1000000000: must be a finite number"),
    ("run --temperature -1", [*API_RUN, "--temperature=-1"], "--temperature -1: must be a finite number from 0 to 2"),
    ("run --price-input -1", [*API_RUN, "--price-input=-1"], "--price-input -1: must be a finite number from 0 to"),
    ("run --price-output inf", [*API_RUN, "--price-output", "inf"], "--price-output inf: must be a finite number"),
    ("run --max-concurrency 0", [*API_RUN, "--max-concurrency", "0"], "--max-concurrency 0: must be a whole number"),
    ("run --max-new-tokens 0", [*API_RUN, "--max-new-tokens", "0"], "--max-new-tokens 0: must be a whole number"),
    ("run --per-cell 0", [*API_RUN, "--per-cell", "0"], "--per-cell 0: must be a whole number from 1"),
    ("run --seed -1", [*API_RUN, "--seed=-1"], "--seed -1: must be a whole number from 0"),
    ("run --run-id path and html", [*API_RUN, "--run-id", "../x<b>y</b>"], "--run-id '../x<b>y</b>': an id is 1 to 128"),
    ("run --run-id blank", [*API_RUN, "--run-id", " "], "--run-id ' ': an id is"),
    ("run --run-id too long", [*API_RUN, "--run-id", "r" * 129], ": an id is 1 to 128 letters, digits or . _ - : @"),
    ("targets add --rpm -1", [*ADD, "--rpm=-1"], "--rpm -1: must be a finite number above 0"),
    ("targets add --tpm 0", [*ADD, "--tpm", "0"], "--tpm 0: must be a finite number above 0"),
    ("targets add --timeout nan", [*ADD, "--timeout", "nan"], "--timeout nan: must be a finite number above 0"),
    ("targets add --timeout inf", [*ADD, "--timeout", "inf"], "--timeout inf: must be a finite number above 0"),
    ("targets add --temperature 1e9", [*ADD, "--temperature", "1e9"], "--temperature 1000000000: must be"),
    ("targets add --price-input -1", [*ADD, "--price-input=-1"], "--price-input -1: must be a finite number from 0"),
    ("targets add --price-output -0.5", [*ADD, "--price-output=-0.5"], "--price-output -0.5: must be"),
    ("targets add --max-concurrency 0", [*ADD, "--max-concurrency", "0"], "--max-concurrency 0: must be a whole"),
    ("targets add --max-retries -1", [*ADD, "--max-retries=-1"], "--max-retries -1: must be a whole number from 0"),
    ("targets add --outage-window nan", [*ADD, "--outage-window", "nan"], "--outage-window nan: must be"),
    ("targets add --outage-failures 0", [*ADD, "--outage-failures", "0"], "--outage-failures 0: must be a whole"),
    ("targets add --size-b -3", [*ADD, "--size-b=-3"], "--size-b -3: must be a finite number above 0"),
    ("targets add name with path and html", ["targets", "add", "../x<b>", "--model", "m", "--base-url", "{url}"],
     "target name '../x<b>': an id is 1 to 128"),
    ("targets add name read as a spec", ["targets", "add", "openai:x", "--model", "m", "--base-url", "{url}"],
     "target name 'openai:x': not smollm2 or gemma3-270m (built in), and no ':'"),
    ("import-align --run-id path and html", ["import-align", "{align}", "--run-id", "../x<script>", "--quiet"],
     "--run-id '../x<script>': an id is"),
    ("import-align model column not an id", ["import-align", "{bad_align}", "--quiet"],
     "column 'jb_response_../m<b>': the model '../m<b>' becomes a target id, and an id is 1 to 128"),
    ("export --out missing folder", ["export", "--out", "{missing}/deeper/x.csv"], "does not exist (create it first)"),
    ("export --out the database", ["export", "--out", "{db}"], "that is the database itself"),
    ("dump into a missing folder", ["dump", "{missing}/x.jsonl.gz"], "does not exist (create it first)"),
]


def filled(argv: list[str], folder: Path, url: str, db: Path) -> list[str]:
    """BAD_VALUES' argv with its placeholders filled: the server, the database, a missing folder and MiJaBench-Align
    files (a good one, and one whose model column is not an id) written into `folder`."""
    header = "text,group,language,scenario_category,scenario,jb_strategy,jb_prompt,jb_response_{}\n"
    row = "seed 1,black,english,History,A museum.,persona_assign,prompt 1,I can't.\n"
    (folder / "align.csv").write_text(header.format("m1") + row)
    (folder / "bad-align.csv").write_text(header.format("../m<b>") + row)
    return [arg.format(url=url, db=db, missing=folder / "nope", align=folder / "align.csv",
                       bad_align=folder / "bad-align.csv") for arg in argv]
