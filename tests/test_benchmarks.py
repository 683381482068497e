"""The training-step benchmark runs end to end in a tiny configuration (no timing asserts)."""

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import (
    dispatch_probe,
    dot_layout,
    jax_models,
    slice_probe,
    torch_models,
    train_step,
)


# one variant per code path (the others differ only in the cell or the backward option)
JAX_VARIANTS = ["rnn_jax lstm gather+fast", "rnn_jax gru fast", "rnn_jax lstm autodiff",
                "flax OptimizedLSTMCell", "lax.scan lstm (hoisted)"]
TORCH_VARIANTS = ["torch nn.LSTM", "torch nn.GRU"]


def test_speed_table_has_a_row_per_variant(capsys):
    assert set(JAX_VARIANTS) <= set(jax_models.VARIANTS)
    assert set(TORCH_VARIANTS) <= set(torch_models.VARIANTS)
    variants = ",".join(JAX_VARIANTS + TORCH_VARIANTS)
    train_step.main(["--variants", variants, "--sizes", "2x8", "--time", "4", "--steps", "2",
                     "--rounds", "2", "--default_malloc"])
    out = capsys.readouterr().out
    for name in JAX_VARIANTS:
        assert f"| {name} | 2 | 8 | 4 |" in out
    for name in TORCH_VARIANTS:
        if torch_models.available():
            assert f"| {name} | 2 | 8 | 4 |" in out
        else:
            assert f"{name}: skipped, torch is not installed" in out
    assert "matmul peak" in out and "load average" in out


def test_paired_ratio_is_the_median_of_per_round_ratios(monkeypatch):
    # scripted step times (ms) per round: the machine slows 2x in round 2, both variants alike
    script = {"rnn_jax lstm gather+fast": [10.0, 20.0, 12.0], "torch nn.LSTM": [11.0, 22.0, 18.0]}
    calls = {name: iter(times) for name, times in script.items()}

    def fake_time_variant(name, *args):
        ms = next(calls[name]) / 1e3
        return 0.5, [ms, ms], [ms, ms], [0, 0]

    monkeypatch.setattr(train_step, "time_variant", fake_time_variant)
    monkeypatch.setattr(train_step, "matmul_peak", lambda: 100.0)
    rows, _ = train_step.run_speed(list(script), [(2, 8)], 4, 5, 2, rounds=3)
    ours = next(r for r in rows if r["variant"] == "rnn_jax lstm gather+fast")
    # per round 11/10, 22/20, 18/12: median 1.1, fastest 1.1, slowest 1.5
    np.testing.assert_allclose(ours["vs_torch_paired"], (1.1, 1.1, 1.5))
    np.testing.assert_allclose(ours["vs_torch"], 18.0 / 12.0)  # ratio of the medians
    assert "| 1.10x (1.10-1.50) |" in train_step.format_speed(rows)


def test_memory_case_runs_in_a_child_process(capsys):
    case = "rnn_jax lstm gather+fast:sqrt"
    train_step.main(["--memory", "--memory_time", "9", "--batch", "2", "--hidden", "8",
                     "--memory_cases", case, "--default_malloc"])
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith(f"| {case} |"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[1:4] == ["2", "8", "9"]
    assert float(cells[4]) > 0  # peak RSS in GB, read from the child's rusage


def test_model_flops_counts_the_dense_matmuls():
    # LSTM, B=1, T=1, H=1, V=1: forward 2*1*4*1 (input) + 2*1*4*1 (recurrent) + 2*1*1 = 18
    assert train_step.model_flops("lstm", 1, 1, 1, 1) == 3 * 18
    assert train_step.model_flops("gru", 2, 3, 4, 5) == 3 * (2 * 4 * 12 * 2 + 2 * 4 * 5) * 6


def test_dispatch_probe_has_a_row_per_setting(capsys):
    dispatch_probe.main(["--sizes", "2x8", "--rounds", "1", "--steps", "2"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert [row.split(" | ")[0][2:] for row in rows[1:]] == list(dispatch_probe.SETTINGS)
    for row in rows[1:]:
        first, step = row.split(" | ")[3:5]
        assert 0 < float(first.split("-")[0]) and 0 < float(step.split(" ")[0])


def test_slice_probe_cases_compute_the_same_recurrence(capsys):
    # the layouts differ, the arithmetic must not: same a(t), b(t) -> same final carry
    cases = slice_probe._cases(batch=3, hidden=4, steps=5)
    carry = jnp.zeros((3, 4))
    finals = {name: slice_probe.make_run(read)(carry, xs) for name, (read, xs) in cases.items()}
    reference = finals.pop("two [T, B, H] arrays")
    finals.pop("one [T, B, H] array, read once (b = 1)")
    for name, value in finals.items():
        np.testing.assert_array_equal(value, reference, err_msg=name)
    slice_probe.main(["--batch", "2", "--hidden", "8", "--time", "4", "--repeats", "1"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert [row.split(" | ")[0][2:] for row in rows[1:]] == list(cases)
    assert all(float(row.split(" | ")[1].rstrip(" |")) > 0 for row in rows[1:])


def test_dot_layout_cases_agree_and_print_a_row_each(capsys):
    # the two backward layouts hold the same W^T: same carry after the scan
    cases = dot_layout._cases(batch=3, hidden=4)
    finals = {name: dot_layout.make_run(step, 5)(c, w) for name, (step, c, w) in cases.items()}
    transposed, materialised = (v for k, v in finals.items() if k.startswith("backward"))
    np.testing.assert_allclose(transposed, materialised, rtol=1e-6)
    assert transposed.shape == (3, 16)
    dot_layout.main(["--batch", "2", "--hidden", "8", "--time", "3", "--repeats", "1", "--rounds", "2"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert [row.split(" | ")[0][2:] for row in rows[1:]] == list(cases)
    assert all(float(row.split(" | ")[1]) > 0 for row in rows[1:])


def test_previous_kernel_variant_has_the_library_kernels_gradients():
    # kept to re-measure the saved-gate layout change: it must compute the same gradients
    key_params, key_tokens = jax.random.split(jax.random.key(0))
    params, previous_loss = jax_models.VARIANTS["rnn_jax lstm gather+fast (previous kernel)"][0](
        key_params, 7, 8
    )
    _, library_loss = jax_models.rnn_jax_model(key_params, 7, 8, cell_name="lstm", mode="gather")
    tokens = jax.random.randint(key_tokens, (3, 6), 0, 7)
    previous = jax.grad(previous_loss)(params, tokens[:, :-1], tokens[:, 1:])
    library = jax.grad(library_loss)(params, tokens[:, :-1], tokens[:, 1:])
    for a, b in zip(jax.tree.leaves(previous), jax.tree.leaves(library)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert any(float(jnp.abs(a).max()) > 0 for a in jax.tree.leaves(library))
