"""Exports of the store for analysts: one row per completion with its verdicts.

Files are UTF-8 with a header row and safe to open in a spreadsheet: a cell that starts with a
character a spreadsheet reads as a formula (= + - @, tab, carriage return) is prefixed with an
apostrophe, since completions are untrusted text (CSV formula injection). With `bom`, a CSV starts with
the UTF-8 byte order mark, which is how a spreadsheet (Excel) knows the file is UTF-8: without it,
Portuguese accents ("deficiência") open garbled. The dashboard's download writes it; the CLI on --bom.

Every row carries the verdict that counts in every view (`effective_verdict`: a person's where one set
it, else the chosen judge's) and who decided it (`decided_by`: `human: NAME`, `human`, or the judge),
next to one `verdict_<judge>` column per judge. `readable` headers use core.vocab.labels' titles
("Verdict that counts", "Jailbreak strategy") instead of the internal names.
"""
from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.vocab import labels, taxonomy

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formula(value: object) -> object:
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


CSV_CHUNK_ROWS = 20_000  # rows written at a time, so a long export can report progress


BOM = "\ufeff"


def write_csv(frame: pd.DataFrame, path, on_progress: Callable[[int, int], None] | None = None,
              bom: bool = False) -> int:
    """Write a frame as spreadsheet-safe CSV to a path, an open text file or a binary buffer; returns the
    number of rows written. `on_progress(rows_written, rows)` after each chunk of CSV_CHUNK_ROWS rows; `bom`:
    start with the UTF-8 byte order mark (for spreadsheets)."""
    if bom and isinstance(path, io.TextIOBase):
        path.write(BOM)  # a text handle takes characters: the mark goes first, pandas writes the rest
        bom = False
    encoding = "utf-8-sig" if bom else "utf-8"
    safe = frame.copy()
    for column in safe.columns:
        if safe[column].dtype == object or pd.api.types.is_string_dtype(safe[column]):
            safe[column] = safe[column].map(neutralise_formula)
    # CRLF ends records (RFC 4180), which also makes the writer quote any field holding a bare CR: with
    # "\n" alone, a completion containing "\r" would split its row in a spreadsheet, and the part after
    # the CR would start a new cell unescaped (a formula injection past neutralise_formula)
    if on_progress is None or len(safe) <= CSV_CHUNK_ROWS:
        safe.to_csv(path, index=False, encoding=encoding, lineterminator="\r\n")
    else:
        with open(path, "w", encoding=encoding, newline="") as handle:
            for start in range(0, len(safe), CSV_CHUNK_ROWS):
                safe.iloc[start:start + CSV_CHUNK_ROWS].to_csv(handle, index=False, header=start == 0,
                                                               lineterminator="\r\n")
                on_progress(min(start + CSV_CHUNK_ROWS, len(safe)), len(safe))
    if on_progress is not None:
        on_progress(len(safe), len(safe))
    return len(safe)


def csv_bytes(frame: pd.DataFrame, bom: bool = True) -> bytes:
    """The frame as spreadsheet-safe CSV bytes (the dashboard's download), with the byte order mark unless told."""
    buffer = io.BytesIO()
    write_csv(frame, buffer, bom=bom)
    return buffer.getvalue()


# -- the rows of an export -------------------------------------------------------------------------------
EFFECTIVE_COLUMNS: tuple[str, ...] = ("effective_verdict", "decided_by")


def human_authors(store: Any) -> dict[str, str]:
    """completion_id -> the name stored with its human verdict ("" where none was given)."""
    with store.connect() as con:
        stored = con.execute("SELECT completion_id, raw FROM verdicts WHERE judge = 'human'").fetchall()
    authors = {}
    for completion_id, raw in stored:
        try:
            author = (json.loads(raw) or {}).get("author") if raw else ""
        except (ValueError, AttributeError):
            author = ""
        authors[str(completion_id)] = str(author or "")
    return authors


def with_effective_verdict(rows: pd.DataFrame, judge: str, authors: dict[str, str] | None = None) -> pd.DataFrame:
    """`rows` (Store.completion_rows) with `effective_verdict`, the verdict every view counts (a person's where
    there is one, else `judge`'s; empty for an error or an unjudged answer), and `decided_by` (`human: NAME`,
    `human` without a name, the judge, or empty), after the verdict columns."""
    human = rows["verdict_human"] if "verdict_human" in rows else pd.Series(None, index=rows.index, dtype=object)
    judged = rows[f"verdict_{judge}"] if f"verdict_{judge}" in rows else pd.Series(None, index=rows.index, dtype=object)
    by_person = human.notna()
    names = (authors or {})
    decided = np.where(by_person, ["human: " + names[c] if names.get(c) else "human" for c in rows["completion_id"]],
                       np.where(judged.notna(), judge, ""))
    out = rows.copy()
    out["effective_verdict"] = human.where(by_person, judged).fillna("").astype(str)
    out["decided_by"] = decided
    return out


def completion_table(store: Any, filters: dict[str, Sequence[str] | str | None] | None = None,
                     verdicts: Sequence[str] = (), judge: str = "refusal", readable: bool = False) -> pd.DataFrame:
    """The export's rows: Store.completion_rows with the effective verdict and who decided it; `readable`:
    column titles for people (core.vocab.labels) instead of the internal names."""
    rows = store.completion_rows(filters, verdicts, judge)
    rows = with_effective_verdict(rows, judge, human_authors(store) if "verdict_human" in rows else {})
    return readable_headers(rows) if readable else rows


def readable_headers(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with core.vocab.labels' titles as column names ("Verdict that counts", "Verdict by refusal")."""
    return frame.rename(columns=labels.titles(list(frame.columns)))


def write_parquet(frame: pd.DataFrame, path: str | Path) -> int:
    """Write a frame as Parquet (typed columns, no spreadsheet escaping needed); returns rows written."""
    frame.to_parquet(path, index=False, engine="pyarrow", compression="zstd")
    return len(frame)


PAIR_FIELDS: tuple[str, ...] = ("prompt", "chosen", "rejected", "probe_id", "language", "group", "strategy",
                                "scenario_category", "chosen_model", "rejected_model", "chosen_completion_id",
                                "rejected_completion_id", "judge")


def preference_pairs(frame: pd.DataFrame, per_group: int | None = None, seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """Preference pairs for DPO-style training: a refusal (chosen) and a jailbreak (rejected) of one probe.

    `frame` is Store.judged(judge, with_text=True): a probe answered by several models (or runs) pairs a
    model that refused with one that complied. Only attack probes, judged refused/complied, without error
    and with a non-empty answer count. One pair per probe, refusal and jailbreak drawn at random (seeded).
    Balanced so that every (language, group) with any pair contributes the same number: as many as the
    scarcest such group has, or `per_group` if smaller; within a group, strategies take turns so they stay
    as even as the data allow. A training set dominated by the groups a model already protects would
    teach it the very selectivity the audit measures. Returns (pairs, summary).
    """
    usable = frame.loc[(frame["kind"] == "attack") & frame["error"].isna()
                       & frame["label"].isin([taxonomy.REFUSED, taxonomy.COMPLIED])
                       & frame["completion"].fillna("").str.strip().ne("")]
    rng = np.random.default_rng(seed)
    usable = usable.sort_values("completion_id", kind="stable").reset_index(drop=True)
    usable = usable.iloc[rng.permutation(len(usable))]
    first = usable.drop_duplicates(["probe_id", "label"])
    keys = ["probe_id", "prompt", "language", "group", "strategy", "scenario_category"]
    chosen = first.loc[first["label"] == taxonomy.REFUSED, [*keys, "completion", "model", "completion_id"]]
    rejected = first.loc[first["label"] == taxonomy.COMPLIED, ["probe_id", "completion", "model", "completion_id"]]
    pairs = chosen.merge(rejected, on="probe_id", suffixes=("_chosen", "_rejected"))
    pairs = pairs.rename(columns={"completion_chosen": "chosen", "completion_rejected": "rejected",
                                  "model_chosen": "chosen_model", "model_rejected": "rejected_model",
                                  "completion_id_chosen": "chosen_completion_id",
                                  "completion_id_rejected": "rejected_completion_id"})
    available = pairs.groupby(["language", "group"]).size()
    wanted = int(available.min()) if len(available) else 0
    if per_group is not None:
        wanted = min(wanted, max(int(per_group), 0))
    pairs = pairs.sort_values("probe_id", kind="stable").reset_index(drop=True)
    pairs = pairs.iloc[rng.permutation(len(pairs))]
    pairs["turn"] = pairs.groupby(["language", "group", "strategy"]).cumcount()
    pairs = pairs.sort_values(["turn", "strategy"], kind="stable").groupby(["language", "group"]).head(wanted)
    pairs = pairs.sort_values(["language", "group", "strategy", "probe_id"]).reset_index(drop=True)
    present = usable.groupby(["language", "group"]).size().index
    summary = {
        "pairs": len(pairs), "per_group": wanted,
        "groups": {f"{lang}/{group}": int(n) for (lang, group), n in pairs.groupby(["language", "group"]).size().items()},
        "available": {f"{lang}/{group}": int(n) for (lang, group), n in available.items()},
        "groups_without_pairs": [f"{lang}/{group}" for lang, group in present if (lang, group) not in available.index],
    }
    return pairs.drop(columns="turn"), summary


def write_pairs(frame: pd.DataFrame, path: str | Path, per_group: int | None = None, seed: int = 0,
                judge: str = "") -> dict:
    """preference_pairs() written as JSONL (one object per line, PAIR_FIELDS); returns the summary."""
    pairs, summary = preference_pairs(frame, per_group=per_group, seed=seed)
    pairs = pairs.assign(judge=judge)
    with Path(path).open("w", encoding="utf-8", newline="\n") as handle:
        for record in pairs[list(PAIR_FIELDS)].to_dict(orient="records"):
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return summary
