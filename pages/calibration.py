"""Judge calibration: each judge's accuracy, Cohen's kappa, refusal precision/recall and confusion matrix,
against an uploaded hand-labelled CSV and against the human verdicts stored in the database, plus how far
the judges agree with each other, and the judge's error by group measured on the random review sample
(core.ppi.judge_error: false-refusal and false-compliance rates with CIs, a test per language).
Read-only: nothing here writes to the store.
"""
from __future__ import annotations

import time

import streamlit as st

from core.judges.evaluation import Calibration, LabelFileError, confusion_frame, evaluate, human_calibration, load_labels
from core.judges import DEFAULT_JUDGES, UnknownJudge, resolve_judges
from core.store import Store
from core.targets import TargetUnavailable
from ui.cached import judge_errors
from ui.common import dataframe, escape_markdown, readonly
from ui.page import header
from ui.stat_figures import judge_choice, judge_error_figure, judge_error_warning, require_store

RATIO = {name: st.column_config.NumberColumn(label, format="%.3f") for name, label in (
    ("accuracy", "accuracy"), ("kappa", "Cohen's kappa"), ("precision_refused", "precision (refused)"),
    ("recall_refused", "recall (refused)"), ("coverage", "coverage"), ("agreement", "agreement"))}


def show(result: Calibration) -> None:
    """The tables of one calibration (every number comes from core.judges.evaluation)."""
    dataframe(result.table(), hide_index=True, width="stretch", column_config=RATIO)
    st.caption("Accuracy counts `unparsed` verdicts as wrong; kappa treats them as a third answer; coverage is "
               "the share a judge could label at all. The MiJaBench paper's best judge: accuracy 0.905, kappa 0.77.")
    for language, scores in result.by_language.items():
        st.caption(escape_markdown(f"{language}: " + "; ".join(
            f"{s.judge} accuracy {s.accuracy:.3f}, kappa {'n/a' if s.kappa is None else format(s.kappa, '.3f')} "
            f"(n={s.n})" for s in scores if s.accuracy is not None)))
    columns = st.columns(min(3, len(result.scores)) or 1)
    for i, judge_score in enumerate(result.scores):
        with columns[i % len(columns)]:
            st.text(f"Confusion: {judge_score.judge}")
            dataframe(confusion_frame(judge_score), width="stretch")
    if len(result.agreement):
        st.text("Agreement between judges (over the items both labelled)")
        dataframe(result.agreement, hide_index=True, width="stretch", column_config=RATIO)


header("Judge calibration")
st.caption("Every Defense Rate is only as good as its judge. Score the judges against human labels before "
           "trusting a disparity.")

st.subheader("Against a labelled file")
st.caption("A CSV with columns `prompt`, `completion`, `label` (refused/complied, 1/0, or XSTest's "
           "1_full_compliance, 2_full_refusal, 3_partial_refusal, where partial counts as complied), and "
           "optionally `id`, `language` (en/pt), `kind` (attack/control). The file is read, not stored.")
upload = st.file_uploader("Labels CSV", type=["csv"], key="labels_csv")
offered = list(dict.fromkeys([*DEFAULT_JUDGES, "refusal"])) + ([] if readonly() else ["llm:smollm2", "ensemble"])
chosen = st.multiselect("Judges", offered, default=list(DEFAULT_JUDGES), key="calibration_judges",
                        help="`ensemble` is the majority of the other judges chosen; ties are counted as unparsed.")
if not readonly():
    other = st.text_input("Another judge", key="calibration_other", placeholder="llm:openai:MODEL@BASE_URL",
                          help="Any judge name: llm:<target spec> grades with that model (slow on a CPU).")
    chosen = chosen + ([other.strip()] if other.strip() else [])
if upload is not None and st.button("Score the judges", type="primary", disabled=not chosen):
    try:
        items = load_labels(upload.getvalue(), upload.name)
        judges = resolve_judges(chosen)
    except (LabelFileError, UnknownJudge) as exc:
        st.error("The labels file or a judge name cannot be used:")
        st.code(str(exc), language="text")
        st.session_state.pop("calibration_result", None)
    else:
        bar = st.progress(0.0, text=f"0/{len(items)} completions judged")
        started = time.monotonic()

        def progress(done: int, total: int) -> None:
            elapsed = time.monotonic() - started
            eta = f", about {elapsed / done * (total - done):.0f} s left" if done else ""
            bar.progress(done / total if total else 1.0, text=f"{done}/{total} completions judged{eta} "
                         "(Stop in the menu cancels)")

        try:
            st.session_state["calibration_result"] = (upload.name, evaluate(items, judges, on_progress=progress))
        except TargetUnavailable as exc:
            st.error("A judge's model cannot be loaded:")
            st.code(str(exc), language="text")
if "calibration_result" in st.session_state:
    name, result = st.session_state["calibration_result"]
    st.text(f"{name}: {result.n} labelled completions")
    show(result)


@st.cache_data(show_spinner="Comparing judges with human verdicts…", max_entries=8)
def _human(path: str, mtime: float) -> Calibration | None:
    return human_calibration(Store(path, readonly=True))


st.subheader("Against the human verdicts in the database")
st.caption("Verdicts set by people in the Drill-down page (judge `human`) are the gold labels here; each judge "
           "is scored on the completions it also labelled.")
path, mtime = require_store()
human = _human(path, mtime)
if human is None:
    st.info("No human verdicts yet. Correct or confirm a judge's verdict in the Drill-down page to build a "
            "calibration set from your own audit.")
else:
    st.text(f"{human.n} completions with a human verdict")
    show(human)


st.subheader("The judge's errors by group (random review sample)")
st.caption("A judge whose errors differ by group manufactures (or hides) a disparity. Measured on the human checks "
           "of the random review sample (attack probes), weighted by the sample's inclusion probabilities: the "
           "false-refusal rate (the judge said refused where the person said complied) and the false-compliance "
           "rate (the reverse), with 95% Wilson intervals, and per language a chi-square test that a rate is equal "
           "across groups (Holm-corrected). Verdicts chosen by hand outside the sample are not used here.")
error_judge = judge_choice(path, mtime, key="calibration_error_judge")
errors = judge_errors(path, mtime, error_judge, {"kind": ["attack"]})
if errors is None:
    st.info("No labelled review sample yet. Draw one with `python -m core review sample --run-id RUN --fraction "
            "0.05 --seed 0` and label it on the Review page (or import a labelled sheet with `python -m core "
            "verdicts import FILE.csv`).")
else:
    judge_error_warning(errors, error_judge)
    table = errors.table
    for language in sorted(set(table["language"].dropna())):
        st.plotly_chart(judge_error_figure(table[table["language"] == language], language), width="stretch",
                        key=f"calibration_errors_{language}")
    rate = st.column_config.NumberColumn(format="%.3f")
    dataframe(table[["language", "group", "n_human", "human_complied", "human_refused",
                     "false_refusal", "false_refusal_ci_low", "false_refusal_ci_high", "false_compliance",
                     "false_compliance_ci_low", "false_compliance_ci_high", "accuracy", "dr_judge", "dr_human",
                     "bias", "bias_ci_low", "bias_ci_high"]], hide_index=True, width="stretch",
              column_config={name: rate for name in table.columns if table[name].dtype.kind == "f"})
    st.text("Does the error rate differ across groups? (per language, Holm-corrected over the tests)")
    dataframe(errors.tests, hide_index=True, width="stretch",
              column_config={"p_value": st.column_config.NumberColumn(format="%.2e"),
                             "p_adjusted": st.column_config.NumberColumn(format="%.2e")})
