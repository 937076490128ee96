"""Drift of logged inputs against the training split (deployments/drift.py)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import wasserstein_distance

from deployments import drift


def churn(rows: int, seed: int, *, shift: bool = False) -> pd.DataFrame:
    """Customers like the demo project's: tenure, charges, plan and the label."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(1, 72, rows)
    charges = rng.normal(70, 20, rows).round(2)
    plan = rng.choice(["basic", "plus", "pro"], rows, p=[0.5, 0.3, 0.2])
    if shift:
        tenure = rng.integers(1, 24, rows)  # newer customers
        charges = charges + 25  # a price rise
        plan = rng.choice(["basic", "plus", "pro"], rows, p=[0.2, 0.3, 0.5])
    risk = -0.08 * tenure + 0.03 * charges + rng.normal(0, 0.5, rows)
    churned = np.where(risk > 0.03 * 70 - 0.08 * 36, "yes", "no")
    return pd.DataFrame({"tenure": tenure, "charges": charges, "plan": plan, "churned": churned})


def logged(frame: pd.DataFrame, predictions: pd.Series) -> list[dict[str, object]]:
    """The window as the scoring process writes it: one JSON line per row."""
    rows = json.loads(frame.to_json(orient="records"))
    lines = [
        json.dumps({"ts": 1.0, "deployment": "blue", "input": row, "prediction": p})
        for row, p in zip(rows, predictions.tolist(), strict=True)
    ]
    return [json.loads(line) for line in lines]


@pytest.fixture(scope="module")
def training() -> pd.DataFrame:
    return churn(5000, seed=0)


@pytest.fixture(scope="module")
def reference(training: pd.DataFrame) -> drift.Reference:
    return drift.reference_profile(training, target="churned")


def window(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    inputs = frame.drop(columns=["churned"])
    return drift.samples_frame(logged(inputs, frame["churned"]))


def test_kinds_of_the_demo_columns(reference: drift.Reference) -> None:
    kinds = {name: ref.kind for name, ref in reference.columns.items()}
    assert kinds == {"tenure": "numerical", "charges": "numerical", "plan": "categorical"}
    assert reference.prediction is not None and reference.prediction.kind == "categorical"


def test_an_unshifted_window_does_not_drift(reference: drift.Reference) -> None:
    inputs, predictions = window(churn(2000, seed=1))

    report = drift.drift_report(reference, inputs, predictions=predictions)

    assert report.current_rows == 2000
    assert report.dataset_drift is False
    assert report.drifted_features == 0 and report.judged_features == 3
    assert [f.status for f in report.features] == ["ok", "ok", "ok"]
    for feature in report.features:
        assert feature.psi is not None and feature.psi < drift.PSI_WARN
        assert feature.distance is not None and feature.distance < drift.DISTANCE_ALERT
    assert report.prediction is not None and report.prediction.status == "ok"


def test_a_shifted_copy_triggers_the_alert(reference: drift.Reference) -> None:
    inputs, predictions = window(churn(2000, seed=1, shift=True))

    report = drift.drift_report(reference, inputs, predictions=predictions)

    assert report.dataset_drift is True
    assert {f.name: f.status for f in report.features} == {
        "tenure": "alert",
        "charges": "alert",
        "plan": "alert",
    }
    assert report.drifted_share == 1.0
    charges = report.feature("charges")
    assert charges.psi is not None and charges.psi > drift.PSI_ALERT
    # 25 on a standard deviation of 20: about 1.25 standard deviations.
    assert charges.distance == pytest.approx(25 / 20, rel=0.1)
    # Newer, pricier customers churn more: the predictions drift too.
    assert report.prediction is not None and report.prediction.status == "alert"


def test_values_match_scipy(training: pd.DataFrame, reference: drift.Reference) -> None:
    current = churn(1500, seed=7, shift=True)
    report = drift.drift_report(reference, current.drop(columns=["churned"]))

    for name in ("tenure", "charges"):
        expected = wasserstein_distance(training[name], current[name]) / training[name].std(ddof=0)
        assert report.feature(name).distance == pytest.approx(expected, rel=1e-9)

    ref_shares = training["plan"].value_counts(normalize=True)
    cur_shares = current["plan"].value_counts(normalize=True).reindex(ref_shares.index)
    expected_js = jensenshannon(ref_shares.to_numpy(), cur_shares.to_numpy(), base=2)
    assert report.feature("plan").distance == pytest.approx(expected_js, rel=1e-9)
    expected_psi = float(np.sum((cur_shares - ref_shares) * np.log(cur_shares / ref_shares)))
    assert report.feature("plan").psi == pytest.approx(expected_psi, rel=1e-9)

    # PSI of a numerical feature over the training deciles, with pandas' cut.
    values = training["charges"]
    edges = np.unique(np.quantile(values, np.linspace(0, 1, 11)[1:-1]))
    bins = [-np.inf, values.min(), *edges, values.max(), np.inf]

    def shares(series: pd.Series) -> np.ndarray:
        # Bins closed on the left, except the range's top: [max, max] is inside it.
        cut = pd.cut(series, bins=bins, right=False)
        counts = cut.value_counts(sort=False).to_numpy().astype(float)
        at_max = float((series == values.max()).sum())
        counts[-2] += at_max
        counts[-1] -= at_max
        share = counts / counts.sum()
        return np.where(share > 0, share, drift.PSI_EPSILON)

    r, c = shares(values), shares(current["charges"])
    assert report.feature("charges").psi == pytest.approx(
        float(np.sum((c - r) * np.log(c / r))), rel=1e-9
    )


def test_wasserstein_of_sorted_samples_matches_scipy_with_ties() -> None:
    rng = np.random.default_rng(3)
    u = np.round(rng.normal(size=900))
    v = np.round(rng.normal(0.4, 2, size=650))
    assert drift.wasserstein_sorted(np.sort(u), np.sort(v)) == pytest.approx(
        wasserstein_distance(u, v), rel=1e-12
    )


def test_the_share_of_drifted_features_decides() -> None:
    rng = np.random.default_rng(5)
    train = pd.DataFrame({"a": rng.normal(size=2000), "b": rng.normal(size=2000)})
    current = pd.DataFrame({"a": rng.normal(3, 1, size=500), "b": rng.normal(size=500)})
    ref = drift.reference_profile(train)

    half = drift.drift_report(ref, current)
    assert half.drifted_features == 1 and half.drifted_share == 0.5
    assert half.dataset_drift is True  # 50% by default
    assert drift.drift_report(ref, current, drift_share=0.6).dataset_drift is False


def test_a_constant_column() -> None:
    train = pd.DataFrame({"version": np.full(500, 3.0), "x": np.linspace(0, 1, 500)})
    ref = drift.reference_profile(train)

    same = drift.drift_report(ref, train.iloc[:200])
    assert same.feature("version").status == "ok"
    assert same.feature("version").distance == 0.0
    assert same.feature("version").psi == pytest.approx(0.0)

    changed = train.iloc[:200].copy()
    changed.loc[changed.index[:50], "version"] = 4.0
    report = drift.drift_report(ref, changed)
    version = report.feature("version")
    assert version.status == "alert"
    assert version.distance == pytest.approx(0.25)  # a quarter of the values differ
    assert "Constant in the training data" in version.note


def test_missing_values() -> None:
    rng = np.random.default_rng(6)
    train = pd.DataFrame({"x": rng.normal(size=1000), "c": rng.choice(["a", "b"], 1000)})
    train.loc[train.index[:100], "x"] = np.nan  # 10% missing in training
    ref = drift.reference_profile(train)
    assert ref.columns["x"].missing == 100

    same = drift.drift_report(ref, train.sample(400, random_state=1))
    assert same.feature("x").status == "ok"
    assert same.feature("x").reference_missing == pytest.approx(0.1)

    current = pd.DataFrame({"x": rng.normal(size=400), "c": rng.choice(["a", "b"], 400)})
    current.loc[current.index[:240], "x"] = np.nan  # 60% missing now
    current.loc[current.index[:200], "c"] = None
    report = drift.drift_report(ref, current)
    assert report.feature("x").current_missing == pytest.approx(0.6)
    assert report.feature("x").status == "alert"
    assert report.feature("c").current_missing == pytest.approx(0.5)
    assert report.feature("c").status == "alert"

    empty = pd.DataFrame({"x": [np.nan] * 150, "c": ["a"] * 150})
    x = drift.drift_report(ref, empty).feature("x")
    assert x.distance is None and x.status == "alert" and "No values" in x.note


def test_unseen_categories() -> None:
    train = pd.DataFrame({"plan": ["basic", "plus"] * 500})
    ref = drift.reference_profile(train)
    current = pd.DataFrame({"plan": ["basic"] * 80 + ["plus"] * 80 + ["enterprise"] * 40})

    plan = drift.drift_report(ref, current).feature("plan")

    assert plan.unseen == pytest.approx(0.2)
    assert "40 values in categories the training data never had" in plan.note
    assert plan.status == "alert"
    expected = jensenshannon([0.5, 0.5, 0.0], [0.4, 0.4, 0.2], base=2)
    assert plan.distance == pytest.approx(expected, rel=1e-9)


def test_numbers_logged_as_text_or_codes() -> None:
    train = pd.DataFrame({"x": np.arange(1000, dtype=float), "plan": [0, 1, 2, 3] * 250})
    ref = drift.reference_profile(train)
    assert ref.columns["plan"].kind == "categorical"
    # JSON may carry a code as text, and a number as something unreadable.
    current = pd.DataFrame(
        {"x": ["oops"] * 10 + list(range(190)), "plan": ["0", "1", "2", "3"] * 50}
    )

    report = drift.drift_report(ref, current)

    assert report.feature("x").current_missing == pytest.approx(0.05)
    plan = report.feature("plan")
    assert plan.unseen == 0.0 and plan.status == "ok"

    # A code column with a missing value arrives as floats: 1.0 is still "1".
    codes = pd.DataFrame({"x": np.arange(200.0), "plan": [0, 1, 2, None] * 50})
    plan = drift.drift_report(ref, codes).feature("plan")
    assert plan.unseen == 0.0 and plan.current_missing == pytest.approx(0.25)


def test_an_empty_window() -> None:
    ref = drift.reference_profile(churn(500, seed=0), target="churned")

    inputs, predictions = drift.samples_frame([])
    report = drift.drift_report(ref, inputs, predictions=predictions)

    assert report.current_rows == 0
    assert report.dataset_drift is False and report.judged_features == 0
    assert report.note == "No logged rows in the window."
    assert {f.status for f in report.features} == {"no_data"}
    assert report.prediction is not None and report.prediction.status == "no_data"


def test_too_few_rows_are_not_judged() -> None:
    ref = drift.reference_profile(churn(500, seed=0), target="churned")
    report = drift.drift_report(ref, churn(20, seed=1, shift=True))
    assert report.dataset_drift is False
    assert report.note == "Only 20 logged rows in the window; at least 100 are needed."
    assert drift.drift_report(ref, churn(20, seed=1, shift=True), min_rows=10).dataset_drift


def test_a_feature_left_out_of_the_log() -> None:
    ref = drift.reference_profile(churn(1000, seed=0), target="churned")
    current = churn(300, seed=1, shift=True).drop(columns=["plan", "churned"])
    current["session"] = "s1"

    report = drift.drift_report(ref, current)

    assert report.feature("plan").status == "no_data"
    assert report.feature("plan").note == "Not in the logged rows."
    assert report.judged_features == 2 and report.drifted_share == 1.0
    assert report.extra_columns == ["session"]
    assert report.prediction is not None and report.prediction.status == "no_data"


def test_an_empty_training_column() -> None:
    train = pd.DataFrame({"x": [np.nan] * 200, "y": np.arange(200.0)})
    ref = drift.reference_profile(train)
    report = drift.drift_report(ref, pd.DataFrame({"x": [np.nan] * 150, "y": np.arange(150.0)}))
    x = report.feature("x")
    assert x.status == "ok" and x.distance is None
    assert x.note == "No values in the training data."
    arrived = drift.drift_report(ref, pd.DataFrame({"x": np.ones(150), "y": np.arange(150.0)}))
    assert arrived.feature("x").status == "alert"


def test_samples_frame_skips_lines_without_input() -> None:
    inputs, predictions = drift.samples_frame(
        [
            {"input": {"a": 1, "b": "x"}, "prediction": 0},
            {"prediction": 1},
            {"input": "garbled"},
            {"input": {"a": 2, "b": "y"}, "prediction": [0.2, 0.8]},
        ]
    )
    assert inputs.to_dict("records") == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]
    assert predictions.tolist() == [0, None]


def log_bytes(records: list[dict[str, object]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


def test_samples_read_a_log_like_samples_frame() -> None:
    frame = churn(300, seed=2)
    records = logged(frame.drop(columns=["churned"]), frame["churned"])

    inputs, predictions = drift.samples_read(log_bytes(records))

    expected_inputs, expected_predictions = drift.samples_frame(records)
    pd.testing.assert_frame_equal(inputs, expected_inputs)
    assert predictions.tolist() == expected_predictions.tolist() == frame["churned"].tolist()


def test_samples_read_a_log_arrow_refuses() -> None:
    good: list[dict[str, object]] = [
        {"input": {"a": 1, "b": "x"}, "prediction": 0},
        {"prediction": 1},
        {"input": {"a": "two", "b": "y"}, "prediction": 1},  # a number, then text
    ]
    # The last line is cut short: the scoring process is still writing it.
    data = log_bytes(good) + b'{"input": {"a": 3, "b'

    inputs, predictions = drift.samples_read(data)

    assert inputs.to_dict("records") == [{"a": 1, "b": "x"}, {"a": "two", "b": "y"}]
    assert predictions.tolist() == [0, 1]


def test_samples_read_leaves_out_lines_without_input_and_list_predictions() -> None:
    data = log_bytes(
        [
            {"input": {"a": 1.5}, "prediction": [0.1, 0.9]},
            {"ts": 1.0},
            {"input": {"a": 2.5}, "prediction": [0.3, 0.7]},
        ]
    )
    inputs, predictions = drift.samples_read(data)
    assert inputs["a"].tolist() == [1.5, 2.5]
    assert predictions.tolist() == [None, None]


@pytest.mark.parametrize("data", [b"", b"\n\n", b"not json\n", b"[1, 2]\n"])
def test_samples_read_of_an_empty_or_unreadable_log(data: bytes) -> None:
    inputs, predictions = drift.samples_read(data)
    assert len(inputs) == 0 and len(predictions) == 0
    ref = drift.reference_profile(churn(200, seed=0), target="churned")
    assert drift.drift_report(ref, inputs, predictions=predictions).note == (
        "No logged rows in the window."
    )


def test_the_demo_data_shifted_and_not() -> None:
    """The demo project's data set (scikit-learn's wine measurements), logged
    back as the scoring process would: unchanged it does not drift; every
    measurement half a standard deviation higher does."""
    from sklearn.datasets import load_wine

    wine = load_wine(as_frame=True).frame
    ref = drift.reference_profile(wine, target="target")
    assert {r.kind for r in ref.columns.values()} == {"numerical"}
    assert len(ref.columns) == 13

    copy = wine.sample(frac=1.0, random_state=3)  # the same rows, in another order
    inputs, predictions = drift.samples_frame(logged(copy.drop(columns=["target"]), copy["target"]))
    same = drift.drift_report(ref, inputs, predictions=predictions)
    assert same.dataset_drift is False and same.drifted_features == 0
    assert same.judged_features == 13
    assert same.prediction is not None and same.prediction.status == "ok"

    features = wine.drop(columns=["target"])
    shifted = features + 0.5 * features.std(ddof=0)
    inputs, predictions = drift.samples_frame(logged(shifted, wine["target"]))
    report = drift.drift_report(ref, inputs, predictions=predictions)
    assert report.dataset_drift is True
    assert report.drifted_share == 1.0
    for feature in report.features:
        assert feature.distance == pytest.approx(0.5, rel=1e-6)
