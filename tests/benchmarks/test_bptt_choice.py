"""benchmarks/bptt_choice.py: the compiled truncated-BPTT step's memory against the chunk
length k (experiments/char_lm/README.md's truncated-BPTT table)."""

import pytest

from benchmarks import bptt_choice

pytestmark = pytest.mark.slow


def test_step_memory_grows_with_the_chunk_by_at_least_the_saved_states():
    """At a fixed batch, every extra step of the chunk keeps at least its hidden state
    [batch, hidden] float32 for the backward pass; the stream carried between chunks is
    [batch, hidden] per LSTM state (h, c), so at equal characters per update the smaller k
    (more rows) has the larger arguments."""
    batch, hidden = 4, 32
    temps = {}
    for k in (8, 32):
        step, state, sample = bptt_choice.build_step(
            ["--quick", f"--seq_len={k}", f"--batch={batch}", f"--hidden={hidden}"])
        memory = bptt_choice.step_memory(step, state, sample)
        assert memory["peak"] == (memory["temp"] + memory["argument"] + memory["output"]
                                  - memory["alias"])
        temps[k] = memory["temp"]
    assert temps[32] - temps[8] >= batch * (32 - 8) * hidden * 4
    many_rows = bptt_choice.step_memory(*bptt_choice.build_step(
        ["--quick", "--seq_len=8", f"--batch={4 * batch}", f"--hidden={hidden}"]))
    few_rows = bptt_choice.step_memory(*bptt_choice.build_step(
        ["--quick", "--seq_len=32", f"--batch={batch}", f"--hidden={hidden}"]))
    assert many_rows["argument"] - few_rows["argument"] >= 2 * 3 * batch * hidden * 4
