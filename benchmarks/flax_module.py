"""A flax char-LM with rnn_jax's module against the same model with flax's own LSTM.

    python -m benchmarks.flax_module                       # B32 H256 T100, 5 rounds x 10 steps
    python -m benchmarks.flax_module --sizes 32x256,64x512 --rounds 8

Models (`benchmarks.model`'s char-LM, LSTM, all mapped from one set of weights, so their first
losses agree): `flax` = `nn.Embed -> nn.RNN(nn.OptimizedLSTMCell) -> nn.Dense`
(`benchmarks.flax_models`, the reference); `linen` = `nn.Embed -> LinenRNN("lstm") -> nn.Dense`;
`linen tokens` = `LinenRNN("lstm", vocab_size=V) -> nn.Dense` (the module owns the embedding,
so embedding and input projection are one table gather); `nnx tokens` = the same as an nnx
model (`NnxRNN` + `nnx.Linear`), trained through `nnx.split` / `nnx.merge`. Every model runs
the same jitted Adam step with the state donated (`benchmarks.jax_models.make_train_step`),
in interleaved rounds (`benchmarks.timing`); `vs flax` is the median (range) over rounds of
flax's step time over this row's within the round: above 1 is faster.
"""

import argparse
import statistics

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import nnx

from benchmarks import flax_models, jax_models, model, timing
from benchmarks.implementations import versions
from benchmarks.train_step import machine, parse_sizes
from rnn_jax.cells.lstm import LSTMParams
from rnn_jax.interop.flax_modules import LinenRNN, NnxRNN

REFERENCE = "flax"


class LinenCharLM(nn.Module):
    """Embedding -> rnn_jax's linen module -> readout; `tokens` lets the module embed."""

    vocab: int
    hidden: int
    tokens: bool

    @nn.compact
    def __call__(self, tokens):
        if self.tokens:
            ys = LinenRNN("lstm", self.hidden, vocab_size=self.vocab, name="rnn")(tokens)
        else:
            xs = nn.Embed(self.vocab, self.hidden, name="embed")(tokens)
            ys = LinenRNN("lstm", self.hidden, name="rnn")(xs)
        return nn.Dense(self.vocab, name="readout")(ys)


class NnxCharLM(nnx.Module):
    def __init__(self, weights: model.LSTMWeights):
        vocab, hidden = weights.embedding.shape
        layers = (LSTMParams(weights.U, weights.W, weights.b),)
        self.rnn = NnxRNN.from_layers("lstm", layers, embedding=weights.embedding)
        self.readout = nnx.Linear(hidden, vocab, rngs=nnx.Rngs(0))
        self.readout.kernel[...] = weights.V
        self.readout.bias[...] = weights.c

    def __call__(self, tokens):
        return self.readout(self.rnn(tokens))


def linen_model(weights: model.LSTMWeights, tokens: bool):
    """`(params, loss_fn)` of `LinenCharLM` holding `weights`."""
    vocab, hidden = weights.embedding.shape
    module = LinenCharLM(vocab, hidden, tokens)
    rnn = {"layers": (LSTMParams(weights.U, weights.W, weights.b),)}
    params = {"rnn": rnn, "readout": {"kernel": weights.V, "bias": weights.c}}
    if tokens:
        rnn["embedding"] = weights.embedding
    else:
        params["embed"] = {"embedding": weights.embedding}
    return model.init_apply_model(module.init, module.apply, {"params": params}, "linen")


def nnx_model(weights: model.LSTMWeights):
    """`(state, loss_fn)`: the nnx model split into its graph and its params."""
    graph, state = nnx.split(NnxCharLM(weights))

    def loss_fn(state, tokens, targets):
        return model.cross_entropy(nnx.merge(graph, state)(tokens), targets)

    return state, loss_fn


BUILDERS = {
    "flax": ("flax nn.RNN(OptimizedLSTMCell)", lambda w: flax_models.flax_rnn(w, "lstm")),
    "linen": ("nn.Embed -> LinenRNN", lambda w: linen_model(w, tokens=False)),
    "linen tokens": ("LinenRNN(vocab_size)", lambda w: linen_model(w, tokens=True)),
    "nnx tokens": ("NnxRNN(vocab_size)", nnx_model),
}


def make_step(builder, weights, inputs, targets):
    """`step() -> loss`: one Adam step, blocking; the first call compiles."""
    params, loss_fn = builder(weights)
    params = jax.tree.map(jnp.array, params)  # own buffers: the step donates them
    train_step, opt_state = jax_models.make_train_step(loss_fn, params)
    state = [params, opt_state]

    def step() -> float:
        state[0], state[1], loss = train_step(state[0], state[1], inputs, targets)
        return float(loss)

    return step


def measure(keys, batch, hidden, time_steps, vocab, rounds, steps, seed=0):
    """Rows for the models `keys` at one size, timed in interleaved rounds."""
    key_weights, key_batch = jax.random.split(jax.random.key(seed))
    weights = model.init_weights(key_weights, "lstm", vocab, hidden)
    inputs, targets = model.make_batch(key_batch, batch, time_steps, vocab)
    steps_by_key = {k: make_step(BUILDERS[k][1], weights, inputs, targets) for k in keys}
    firsts = {k: timing.time_first(step) for k, step in steps_by_key.items()}
    results = timing.run_rounds(steps_by_key, rounds, steps)
    reference = [wall for wall, _, _ in results[REFERENCE]]
    rows = []
    for k in keys:
        round_s = [wall for wall, _, _ in results[k]]
        median_s = statistics.median(round_s)
        rows.append({"key": k, "name": BUILDERS[k][0], "batch": batch, "hidden": hidden,
                     "median_ms": 1e3 * median_s, "tokens_per_s": batch * time_steps / median_s,
                     "vs_flax": timing.paired_ratio(reference, round_s),
                     "first_step_s": firsts[k][0], "first_loss": firsts[k][1]})
    return rows


def format_rows(rows) -> str:
    lines = ["| model | ms/step | tokens/s | vs flax (paired rounds) | first step s | first loss |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        ratio = ("1 (reference)" if r["key"] == REFERENCE
                 else "{:.2f}x ({:.2f}-{:.2f})".format(*r["vs_flax"]))
        lines.append(f"| {r['name']} | {r['median_ms']:.1f} | {r['tokens_per_s']:,.0f} | {ratio} "
                     f"| {r['first_step_s']:.2f} | {r['first_loss']:.5f} |")
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="32x256", help="comma-separated BATCHxHIDDEN")
    parser.add_argument("--models", default=",".join(BUILDERS),
                        help=f"comma-separated, from {list(BUILDERS)} (flax always runs)")
    parser.add_argument("--time", type=int, default=100, help="sequence length T")
    parser.add_argument("--vocab", type=int, default=65)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per round")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.steps < 1:
        parser.error(f"expected --rounds and --steps >= 1, received {args.rounds} and {args.steps}")
    unknown = sorted(set(args.models.split(",")) - set(BUILDERS))
    if unknown:
        parser.error(f"expected models from {list(BUILDERS)}, received {unknown}")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    keys = [REFERENCE] + [k for k in args.models.split(",") if k != REFERENCE]
    print(f"# {machine()}\n# {versions()}\n# T = {args.time}, vocabulary {args.vocab}; "
          f"{args.rounds} rounds x {args.steps} steps; no process-wide settings")
    for batch, hidden in parse_sizes(args.sizes):
        rows = measure(keys, batch, hidden, args.time, args.vocab, args.rounds, args.steps)
        print(f"\nB = {batch}, H = {hidden}:\n\n{format_rows(rows)}")


if __name__ == "__main__":
    main()
