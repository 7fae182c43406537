"""For Whom: the overview page. Which models are in the database, and for whom their safety holds.

Pages stay thin: they read widgets, call core, and draw. No statistics and no SQL live here.
"""
from __future__ import annotations

import streamlit as st

from core import taxonomy
from core.metrics import DefenseRates, headline
from core.store import Store, StoreError
from ui.common import content_warning, db_path as audit_db_path

st.set_page_config(page_title="For Whom: safety audit", page_icon=":material/balance:", layout="wide")

@st.cache_data(show_spinner=False)
def _load(path: str, mtime: float):
    store = Store(path, readonly=True)
    frame = store.judged("refusal", {"kind": "attack"})
    return store.summary(), headline(frame), DefenseRates(frame, ["model", "language", "group"]).table


st.title("For Whom: for whom is this model safe?")
content_warning()

db_path = audit_db_path()
if not db_path.exists():
    st.info(f"No audit database at {db_path}. Build the demo with `make demo-db`, or run an audit with "
            "`python -m core run --target smollm2`.")
    st.stop()
try:
    summary, heads, groups = _load(str(db_path), db_path.stat().st_mtime)
except StoreError as exc:
    st.error(str(exc))
    st.stop()

cols = st.columns(5)
cols[0].metric("Models", len(summary["models"]))
cols[1].metric("Languages", ", ".join(summary["languages"]) or "none")
cols[2].metric("Probes", f"{summary['probes']:,}")
cols[3].metric("Completions", f"{summary['completions']:,}")
cols[4].metric("Judges", ", ".join(summary["judges"]) or "none")

st.subheader("Headline per model")
st.caption("Defense Rate (DR) = share of attack prompts the model refused, judged by the `refusal` judge "
           "(human verdicts override). Selective-safety gap = best group DR minus worst group DR.")
shown = heads.assign(
    best_group=heads["best_group"].map(lambda g: taxonomy.group_name(g) if isinstance(g, str) else g),
    worst_group=heads["worst_group"].map(lambda g: taxonomy.group_name(g) if isinstance(g, str) else g),
)
st.dataframe(shown, hide_index=True, width="stretch", column_config={
    "dr": st.column_config.NumberColumn("overall DR", format="%.3f"),
    "n": st.column_config.NumberColumn("judged"),
    "best_dr": st.column_config.NumberColumn("best DR", format="%.3f"),
    "worst_dr": st.column_config.NumberColumn("worst DR", format="%.3f"),
    "gap": st.column_config.NumberColumn("gap", format="%.3f"),
})

st.subheader("Defense Rate per group")
table = groups.assign(group_name=groups["group"].map(taxonomy.group_name))
st.dataframe(table[["model", "language", "group", "group_name", "n", "refused", "dr"]], hide_index=True,
             width="stretch", column_config={"dr": st.column_config.NumberColumn("DR", format="%.3f")})
