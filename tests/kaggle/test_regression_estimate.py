"""regression_estimate: a method's mean over a whole dataset from a sample, corrected by a
baseline scored on every image."""

from __future__ import annotations

import numpy as np
import pytest

from napari_segkit.kaggle.evaluation import regression_estimate


def test_an_exact_linear_relation_is_extrapolated_without_error():
    baseline = np.array([0.2, 0.3, 0.5, 0.6])
    scores = 0.1 + 0.8 * baseline
    fit = regression_estimate(scores, baseline, baseline_mean=0.7, population=40)
    assert fit["estimate"] == pytest.approx(0.1 + 0.8 * 0.7)
    assert fit["slope"] == pytest.approx(0.8) and fit["r"] == pytest.approx(1.0)
    assert fit["se"] == pytest.approx(0.0, abs=1e-12)
    assert fit["sample_mean"] == pytest.approx(scores.mean())


def test_a_census_has_no_error_and_needs_no_correction():
    rng = np.random.default_rng(0)
    baseline = rng.random(20)
    scores = baseline + rng.normal(0, 0.1, 20)
    fit = regression_estimate(scores, baseline, baseline.mean(), population=20)
    assert fit["estimate"] == pytest.approx(scores.mean()) and fit["se"] == 0.0


def test_it_corrects_a_hard_sample_and_its_error_is_honest():
    """Over many random samples of a dataset the estimate centres on the dataset's true
    mean, varies less than the plain sample mean, and its reported standard error
    matches its spread; on a sample of the hardest images it moves towards the truth."""
    rng = np.random.default_rng(1)
    population = 2000
    baseline = rng.beta(2, 3, population)
    scores = 0.3 + 0.6 * baseline + rng.normal(0, 0.05, population)
    truth, baseline_mean = scores.mean(), baseline.mean()
    estimates, plain, errors = [], [], []
    for _ in range(400):
        pick = rng.choice(population, 60, replace=False)
        fit = regression_estimate(scores[pick], baseline[pick], baseline_mean, population)
        estimates.append(fit["estimate"])
        plain.append(fit["sample_mean"])
        errors.append(fit["se"])
    assert np.mean(estimates) == pytest.approx(truth, abs=0.002)
    assert np.std(estimates) < 0.5 * np.std(plain)
    assert np.mean(errors) == pytest.approx(np.std(estimates), rel=0.2)
    # a sample that favours the images the baseline finds hard
    odds = (1 - baseline) ** 3
    hard = rng.choice(population, 80, replace=False, p=odds / odds.sum())
    fit = regression_estimate(scores[hard], baseline[hard], baseline_mean, population)
    assert fit["sample_mean"] < truth - 4 * fit["se"]  # the plain mean is far off
    assert abs(fit["estimate"] - truth) < 3 * fit["se"]


def test_without_a_slope_to_fit_it_is_the_plain_mean():
    two = regression_estimate([0.4, 0.6], [0.1, 0.3], 0.9, population=10)
    assert two["estimate"] == pytest.approx(0.5) and two["slope"] == 0.0
    assert np.isnan(two["r"]) and two["se"] > 0
    flat = regression_estimate([0.4, 0.6, 0.8], [0.2, 0.2, 0.2], 0.9, population=10)
    assert flat["estimate"] == pytest.approx(0.6)
    assert np.isnan(regression_estimate([0.5], [0.1], 0.2, 3)["se"])


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="as many baseline scores"):
        regression_estimate([0.1, 0.2, 0.3], [0.1, 0.2], 0.5, 10)
    with pytest.raises(ValueError, match="as many baseline scores"):
        regression_estimate([], [], 0.5, 10)
    with pytest.raises(ValueError, match="smaller than its sample"):
        regression_estimate([0.1, 0.2, 0.3], [0.1, 0.2, 0.3], 0.5, 2)
