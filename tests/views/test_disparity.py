"""One method per quantity: the gap beyond noise and its interval, read from one database through the Overview, the
HTML report and `python -m core disparity --json`, are the same numbers; no interval anywhere lies outside its
quantity's range or beside its estimate; `run --plan` sizes an audit without creating anything."""
from __future__ import annotations

import json
import subprocess

import numpy as np
import pandas as pd
import pytest

from core.views import disparity, headline
from core.stats.rates import DefenseRates
from core.ppi import CorrectedRates
from core.report.html import build_report
from core.store import Store
from tests.fixtures import dashboard_db, ppi_db
from tests.fixtures.cli import run_cli
from tests.fixtures.apptest import app_test


@pytest.fixture(scope="module", params=["judge only", "corrected"])
def database(request, tmp_path_factory):
    path = tmp_path_factory.mktemp("views") / "audit.duckdb"
    (dashboard_db if request.param == "judge only" else ppi_db).build(path)
    return path


def cli(*args: str, env: dict) -> subprocess.CompletedProcess:
    return run_cli(*args, env=env, timeout=300)


def test_the_gap_interval_is_one_number_in_the_overview_the_report_and_the_cli(database, cli_env, monkeypatch):
    done = cli("disparity", "--db", str(database), "--json", env=cli_env)
    assert done.returncode == 0, done.stderr
    rows = pd.DataFrame(json.loads(done.stdout)["rows"]).set_index(["model", "language"])

    monkeypatch.setenv("AUDIT_DB", str(database))
    app = app_test(timeout=60).run()
    assert not app.exception, app.exception
    overview = app.dataframe[0].value.set_index("model")

    page, _ = build_report(Store(database, readonly=True))
    shown = page[page.index("Headline: for whom"):page.index("Group Defense Rates")]
    for (model, _), row in rows.iterrows():
        for column in ("observed_gap", "noise_gap", "gap", "gap_ci_low", "gap_ci_high", "tau", "tau_ci_high"):
            assert overview.loc[model, column] == pytest.approx(row[column], abs=1e-9), (model, column)  # JSON: 10 digits
            printed = {f"<td>{row[column] + nudge:.2f}</td>" for nudge in (-1e-9, 1e-9)}  # the same number, rounded
            if column.endswith(("_ci_low", "_ci_high")):  # printed inside its interval: [low, high]
                low, high = column.replace("_ci_high", "_ci_low"), column.replace("_ci_low", "_ci_high")
                printed = {f"<td>[{row[low] + nudge:.2f}, {row[high] + nudge:.2f}]</td>" for nudge in (-1e-9, 1e-9)}
            assert any(cell in shown for cell in printed), (model, column)
        sentence = f"{row['headline']}."
        assert sentence in [m.value.replace("\\", "").split("): ", 1)[-1] for m in app.markdown]
        assert json.dumps(sentence)[1:-1].replace("&", "&amp;") in shown or sentence in shown
    assert len(rows) == len(overview) == 2


def _inside(frame: pd.DataFrame, value: str, low: str, high: str, lowest: float, highest: float) -> None:
    part = frame[[value, low, high]].dropna()
    assert len(part), (value, low)
    assert (part[low] >= lowest - 1e-12).all() and (part[high] <= highest + 1e-12).all(), (value, part)
    assert (part[low] <= part[value] + 1e-12).all() and (part[value] <= part[high] + 1e-12).all(), (value, part)


def test_no_interval_lies_outside_its_range_or_beside_its_estimate(database):
    store = Store(database, readonly=True)
    counts = store.label_counts("refusal", ["model", "language", "group"], {"kind": ["attack"]})
    population, sample, _ = store.ppi_inputs("refusal", ["model", "language", "group"], {"kind": ["attack"]})
    estimators = ["judge", "ppi"] if len(sample) else ["judge"]
    for estimator in estimators:
        view = disparity.compute(store, estimator=estimator)
        _inside(view.rows, "gap", "gap_ci_low", "gap_ci_high", 0, 1)
        _inside(view.rows, "observed_gap", "gap_ci_low", "gap_ci_high", 0, 1)
        _inside(view.rows, "tau", "tau_ci_low", "tau_ci_high", 0, 0.5)
        _inside(view.groups, "dr", "ci_low", "ci_high", 0, 1)
        _inside(view.groups, "shrunk", "shrunk_ci_low", "shrunk_ci_high", 0, 1)
    rates = DefenseRates(counts, ["model", "language", "group"])
    _inside(rates.table, "dr", "ci_low", "ci_high", 0, 1)
    _inside(rates.deviations(), "deviation", "dev_ci_low", "dev_ci_high", -1, 1)
    if len(sample):
        fixed = CorrectedRates(population, sample, ["model", "language", "group"])
        _inside(fixed.table, "dr", "ci_low", "ci_high", 0, 1)
        head = headline.compute(store)
        _inside(head.rows, "dr", "ci_low", "ci_high", 0, 1)


def test_disparity_cli_speaks_in_words_and_refuses_a_correction_without_checks(tmp_path, cli_env):
    path = tmp_path / "plain.duckdb"
    dashboard_db.build(path)
    text = cli("disparity", "--db", str(path), env=cli_env)
    assert text.returncode == 0, text.stderr
    assert "model-a, en: observed gap 0.75; groups with no true difference would show" in text.stdout
    refused = cli("disparity", "--db", str(path), "--estimator", "ppi", env=cli_env)
    assert refused.returncode == 2 and "no human checks" in refused.stderr
    assert "python -m core review sample" in refused.stderr and "Traceback" not in refused.stderr
    bad = cli("disparity", "--db", str(path), "--by", "group", env=cli_env)
    assert bad.returncode == 2 and "groups are what is compared" in bad.stderr


def test_plan_sizes_an_audit_without_creating_anything(tmp_path, cli_env):
    path = tmp_path / "none.duckdb"
    done = cli("run", "--plan", "--json", "--languages", "en", "--per-cell", "20", "--db", str(path), env=cli_env)
    assert done.returncode == 0, done.stderr
    (english,) = json.loads(done.stdout)["languages"]
    assert (english["groups"], english["min_per_group"], english["max_per_group"]) == (13, 80, 80)
    assert english["noise_gap"] == pytest.approx(0.19, abs=0.005)
    assert english["noise_gap"] < english["noise_gap_high"] < english["detectable_gap"]
    assert not path.exists() and not list(tmp_path.iterdir())
    text = cli("run", "--plan", "--languages", "en,pt", "--per-cell", "5", "--db", str(path), env=cli_env)
    assert text.returncode == 0 and "nothing is run" in text.stdout and not path.exists()
    smaller = {row.split()[0]: float(row.split()[-1]) for row in text.stdout.splitlines()[-2:]}
    assert set(smaller) == {"en", "pt"} and smaller["en"] > english["detectable_gap"]


def test_the_noise_gap_table_of_the_readme():
    """The README's sizing table is these numbers (probes per group x groups)."""
    from core.stats.disparity import plan_rows

    table = {(n, g): plan_rows([n] * g) for n in (20, 80, 300, 1000, 2700) for g in (9, 13)}
    assert table[(80, 13)]["noise_gap"] == pytest.approx(0.186, abs=0.001)
    assert table[(80, 9)]["noise_gap"] == pytest.approx(0.166, abs=0.001)
    assert np.all(np.diff([table[(n, 13)]["detectable_gap"] for n in (20, 80, 300, 1000, 2700)]) < 0)


def test_the_cli_offers_the_rectifiers_the_estimator_knows():
    from core.cli.common import RECTIFIERS
    from core.ppi import SCOPES

    assert RECTIFIERS == SCOPES
