"""Decoding cost: greedy and beam search against a teacher-forced forward pass of the same length.

    python -m benchmarks.decoding --keep_host_memory     # the table in benchmarks/README.md
    python -m benchmarks.decoding --rounds 3 --steps 3   # no process-wide settings

Each case is jitted as a whole from the source tokens: encode, then either the teacher-forced
decoder (`seq2seq.model.forward`: one `unroll` over the target, attention over all steps at
once, logits) or a search of as many steps as the target has (`seq2seq.decode.greedy`,
`beam_search`; one `lax.scan` each, a decoder step with attention and the readout per step).
Reversal pairs of `rnn_jax.data.translation` (vocabulary of 71), float32, GRU encoder and
decoder. Cases run in `--rounds` interleaved rounds of `--steps` calls (`benchmarks.timing`);
"vs teacher forcing" is the median (range) over rounds of the case's time over the teacher-
forced forward of the same model in the same round. Targets (issue 18): greedy <= 2x, beam
width 8 <= 10x.
"""

import statistics
from typing import Callable, NamedTuple

import jax

from benchmarks import timing
from benchmarks.train_step import rounds_arguments
from rnn_jax.cells import get_cell
from rnn_jax.data import translation
from rnn_jax.seq2seq import Decoder, Encoder, Seq2Seq, decode, decoder, model


class Case(NamedTuple):
    attention: str
    hidden: int = 128
    length: int = 20  # source length; targets have length + 1 steps (EOS)
    batch: int = 64


CASES = [Case("none"), Case("additive")]
MODES = ("teacher forcing", "greedy", "beam 8")


def make_calls(case: Case, seed: int = 0) -> dict[str, Callable[[], object]]:
    """`{mode: call() -> blocks until done}` for one model and one batch."""
    net = Seq2Seq(Encoder(get_cell("gru")), Decoder(get_cell("gru"), case.attention))
    key_init, key_data = jax.random.split(jax.random.key(seed))
    params = model.init(key_init, net, translation.VOCAB_SIZE, embed_size=32,
                        hidden_size=case.hidden)
    batch = translation.sample("reversal", key_data, case.batch, case.length, case.length)
    steps = batch.target.shape[1]

    def teacher_forced(p, b):
        return model.forward(net, p, b.source, b.source_lengths, decoder.shift_right(b.target),
                             b.target_lengths)[0]

    def greedy(p, b):
        carry, memory = model.start(net, p, b.source, b.source_lengths)
        return decode.greedy(net.decoder, p.decoder, carry, memory, steps).tokens

    def beam(p, b):
        carry, memory = model.start(net, p, b.source, b.source_lengths)
        return decode.beam_search(net.decoder, p.decoder, carry, memory, steps, 8).tokens

    calls = {}
    for mode, fn in zip(MODES, (teacher_forced, greedy, beam)):
        jitted = jax.jit(fn)
        calls[mode] = lambda jitted=jitted: jax.block_until_ready(jitted(params, batch))
    return calls


def label(case: Case) -> str:
    return f"attention={case.attention} H{case.hidden} S{case.length} B{case.batch}"


def measure(cases: list[Case], rounds: int, steps: int) -> list[dict]:
    calls = {(label(c), mode): call for c in cases for mode, call in make_calls(c).items()}
    for call in calls.values():
        timing.time_first(call)  # compile outside the rounds
    results = timing.run_rounds(calls, rounds, steps)
    walls = {name: [wall for wall, _, _ in per_round] for name, per_round in results.items()}
    rows = []
    for (case_label, mode) in calls:
        reference = (case_label, MODES[0])
        ratio = None if mode == MODES[0] else timing.paired_ratio(
            walls[(case_label, mode)], walls[reference])  # this case's time / teacher forcing
        rows.append({"case": case_label, "mode": mode,
                     "median_ms": 1e3 * statistics.median(walls[(case_label, mode)]),
                     "ratio": ratio})
    return rows


def format_rows(rows: list[dict]) -> str:
    lines = ["| model | mode | ms/batch | vs teacher forcing (paired rounds) |",
             "|---|---|---|---|"]
    for row in rows:
        ratio = "reference" if row["ratio"] is None else "{:.2f}x ({:.2f}-{:.2f})".format(
            *row["ratio"])
        lines.append(f"| {row['case']} | {row['mode']} | {row['median_ms']:.1f} | {ratio} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    args = rounds_arguments(__doc__.splitlines()[0], argv, unit="calls")
    print(format_rows(measure(CASES, args.rounds, args.steps)))


if __name__ == "__main__":
    main()
