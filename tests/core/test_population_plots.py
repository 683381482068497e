"""Population plots: PNGs are written from stats summaries; bad input raises."""

import pytest

from rnn_jax import population_plots, stats
from tests.figures import assert_figure


def test_plot_population_curves_writes_a_png(tmp_path):
    curves = {
        "gru": stats.curve_quantiles([[0, 10, 20], [0, 10]], [[0.5, 0.7, 0.9], [0.6, 1.0]]),
        "lstm": stats.curve_quantiles([[0, 10, 20]], [[0.4, float("nan"), 0.8]]),
    }
    path = population_plots.plot_population_curves(tmp_path / "curves.png", curves,
                                                   "accuracy", "parity")
    assert path == tmp_path / "curves.png"
    assert_figure(path)


def test_plot_success_vs_length_writes_a_png(tmp_path):
    data = {
        "gru": [(50, stats.success_summary([True, False, True], [120, None, 90])),
                (10, stats.success_summary([True, True, True], [20, 30, 25]))],
        "vanilla": [(10, stats.success_summary([False, False], [None, None]))],
    }
    path = population_plots.plot_success_vs_length(tmp_path / "success.png", data, "parity")
    assert_figure(path)


def test_bad_input_raises(tmp_path):
    with pytest.raises(ValueError, match="expected a non-empty dict of label -> data"):
        population_plots.plot_population_curves(tmp_path / "x.png", {}, "loss", "t")
    with pytest.raises(ValueError, match="expected .* pairs for 'gru', received none"):
        population_plots.plot_success_vs_length(tmp_path / "x.png", {"gru": []}, "t")
    bad_curve = {"steps": [0, 10], "median": [1.0], "q25": [1.0], "q75": [1.0], "n": [1]}
    with pytest.raises(ValueError, match="expected non-empty 1-D columns of one length"):
        population_plots.plot_population_curves(tmp_path / "x.png", {"a": bad_curve}, "loss", "t")
    summary = stats.success_summary([True], [5]) | {"wilson_high": 0.5}
    with pytest.raises(ValueError, match="expected 0 <= low <= rate <= high <= 1"):
        population_plots.plot_success_vs_length(tmp_path / "x.png", {"gru": [(5, summary)]}, "t")
    assert not (tmp_path / "x.png").exists()
