"""The training-step benchmark runs end to end in a tiny configuration (no timing asserts)."""

from benchmarks import jax_models, torch_models, train_step


def test_speed_table_has_a_row_per_variant(capsys):
    train_step.main(["--full", "--sizes", "2x8", "--time", "4", "--steps", "2"])
    out = capsys.readouterr().out
    for name in jax_models.VARIANTS:
        assert f"| {name} | 2 | 8 | 4 |" in out
    for name in torch_models.VARIANTS:
        if torch_models.available():
            assert f"| {name} | 2 | 8 | 4 |" in out
        else:
            assert f"{name}: skipped, torch is not installed" in out
    assert "matmul peak" in out and "load average" in out


def test_memory_case_runs_in_a_child_process(capsys):
    case = "rnn_jax lstm gather+fast:sqrt"
    train_step.main(["--memory", "--memory_time", "9", "--batch", "2", "--hidden", "8",
                     "--memory_cases", case])
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith(f"| {case} |"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[1:4] == ["2", "8", "9"]
    assert float(cells[4]) > 0  # peak RSS in GB, read from the child's rusage


def test_model_flops_counts_the_dense_matmuls():
    # LSTM, B=1, T=1, H=1, V=1: forward 2*1*4*1 (input) + 2*1*4*1 (recurrent) + 2*1*1 = 18
    assert train_step.model_flops("lstm", 1, 1, 1, 1) == 3 * 18
    assert train_step.model_flops("gru", 2, 3, 4, 5) == 3 * (2 * 4 * 12 * 2 + 2 * 4 * 5) * 6
