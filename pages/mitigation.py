"""Mitigation: from audit to fix. A LoRA adapter trained with DPO on the audit's preference pairs (`python -m core
mitigate`), its training curve, and the before/after audit of base and adapted model on the same probes: the DR
change pooled over trained and over held-out groups, the selective-safety gap, over-refusal; every group below.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from core.mitigate.audit import AUDIT
from core.mitigate.train import MANIFEST, MitigateError
from ui import filters
from ui.cached import mitigation, mitigations
from ui.common import dataframe, escape_markdown, group_names
from ui.page import start

PAGE = "mitigation"
RATES = ("base_dr", "cand_dr", "change", "ci_low", "ci_high", "base_gap", "cand_gap")
FORMATS = {**{name: st.column_config.NumberColumn(format="%.3f") for name in RATES},
           "p_adjusted": st.column_config.NumberColumn("p (corrected)", format="%.2g")}
HOW = ("Train and audit with `python -m core mitigate --from-run RUN --out DIR --audit` (the default holds a third of "
       "the groups out of training); this page then finds DIR through the after-audit's run.")

ctx = start("Mitigation: from audit to fix", PAGE, judge=False)
known = mitigations(ctx.path, ctx.mtime)
typed = st.text_input("Mitigation directory (the --out of `python -m core mitigate`)", key=f"{PAGE}_dir",
                      placeholder=known[0] if known else "/path/to/out")
choices = [typed.strip()] if typed.strip() else known
if not choices:
    st.info("No mitigation in this database yet. " + HOW)
    st.stop()
out = filters.select_option("Mitigation", "mitigation", choices, page=PAGE, where=st) if len(choices) > 1 else choices[0]
stamps = [(Path(out) / name).stat().st_mtime for name in (MANIFEST, AUDIT) if (Path(out) / name).exists()]
try:
    result = mitigation(ctx.path, ctx.mtime, out, sum(stamps))
except MitigateError as exc:
    st.warning(f"{escape_markdown(exc)}. " + HOW)
    st.stop()

manifest = result.manifest
cols = st.columns(4)
cols[0].metric("Pairs", f"{len(manifest['pairs']):,}")
cols[1].metric("Steps", escape_markdown(manifest["steps"]))
cols[2].metric("Trained groups", len(result.trained))
cols[3].metric("Held-out groups", len(result.held_out))
st.caption(escape_markdown(  # every value comes from the mitigation directory's files or the store
    f"Base {manifest['base']['spec']}, adapter {result.comparison.candidate.target_id} (sha256 "
    f"{manifest['adapter_sha256'][:12]}); DPO beta {manifest['config']['beta']}, "
    f"LoRA r={manifest['config']['lora_r']}; chosen answers: "
    + ", ".join(f"{k} {v}" for k, v in manifest["chosen_sources"].items()) + "."))
st.info(escape_markdown(result.honesty_note()))

st.subheader("Training curve")
losses = pd.DataFrame(result.losses)
if len(losses):
    st.line_chart(losses.set_index("step")[["loss"]], x_label="step", y_label="DPO loss")

st.subheader("Defense Rate before and after: trained and held-out groups")
split = result.by_split[result.by_split["kind"] == "attack"]
dataframe(split[["language", "split", "groups", "pairs", "base_dr", "cand_dr", "change", "ci_low", "ci_high",
                 "p_adjusted"]], hide_index=True, width="stretch", column_config=FORMATS)
st.caption("Pooled over the groups of each kind; change = after - before with Newcombe's paired 95% CI, McNemar's "
           "exact test (Holm). A fix that generalises moves the held-out groups too.")

st.subheader("Selective-safety gap")
dataframe(result.gaps[["language", "groups", "base_gap", "cand_gap", "change", "ci_low", "ci_high", "p_adjusted"]],
          hide_index=True, width="stretch", column_config=FORMATS)

st.subheader("Over-refusal (benign control probes refused)")
dataframe(result.over_refusal[["language", "pairs", "base_dr", "cand_dr", "change", "ci_low", "ci_high",
                               "p_adjusted"]], hide_index=True, width="stretch", column_config=FORMATS)

with st.expander("Every group"):
    cells = result.comparison.result.cells
    cells = cells.assign(group_name=group_names(cells, "group"),
                         trained=cells["group"].isin(result.trained))
    dataframe(cells[["language", "group_name", "trained", "kind", "pairs", "base_dr", "cand_dr", "change", "ci_low",
                     "ci_high", "p_adjusted"]], hide_index=True, width="stretch", column_config=FORMATS)
