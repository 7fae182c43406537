"""The `refusal` judge gives the recorded verdict (label and rationale) and the recorded learned-judge signals
on every golden case (tests/refusal_golden.py says which texts and why). The recording was made with the
rules as Python tables, before they moved into core/judges/rules/*.toml, so this proves the move (and the one
accent folding of core/text.py) changed no answer."""
from __future__ import annotations

from tests.refusal_golden import read, record, unique_cases


def test_every_golden_case_keeps_its_verdict_and_signals():
    golden = read()
    cases = unique_cases()
    assert len(cases) == len(golden) > 12000  # every case is recorded, none went missing
    changed = []
    for case in cases:
        got = record(case)
        want = golden[got["key"]]
        if got != want:
            changed.append((case[1][:80], want["label"], got["label"], want["rationale"], got["rationale"]))
    assert not changed, f"{len(changed)} of {len(cases)} cases changed, e.g. {changed[:5]}"
