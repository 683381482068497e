"""Random weight guessing on the notes' parity, the baseline gradient descent was measured against.

    python -m experiments.parity.guessing --seeds=20 --grid=seq_len=25,50,100,500

Hochreiter & Schmidhuber ("LSTM can solve hard long time lag problems", NIPS 1996; "Bridging
long time lags by weight guessing and LSTM", 1996) showed that Bengio, Simard & Frasconi's
(1994) parity task (inputs +1/-1, target at the end: 1 if the number of +1s is odd) is solved
faster by drawing random weights until a net classifies a training set than by the gradient
methods it was used to promote (about 2,906 draws of Bengio's architecture at lengths 25-50,
250 without hidden self-connections; about 54,000 trials for discrete-error BP).

Here, as in their fully recurrent nets: the library's vanilla tanh cell with `--hidden` units,
all recurrent, the first of them the output unit (odd when its last state is > 0; the default
2 units are one hidden unit and the output unit, our reading of "n = 1, Bengio et al.'s
architecture"). Every weight and bias is drawn uniformly from [-w, w] (`--weight_range`);
`--noself_connections` zeroes W's diagonal. A draw *solves* the task
when it classifies all `--train_sequences` random sequences of length T. Each member (seed) is
one repeat: it draws `--draws_per_batch` nets at a time (one vmapped forward pass) until one
solves, up to `--max_draws` (then it is censored: counted, not dropped). Draws are Bernoulli
trials, so the expected draws to a solution is 1/p with p = solutions / draws over all repeats
(Clopper-Pearson interval). The solving net is then tested on fresh sequences at T and at
`--test_seq_len` (does it compute parity, or only fit the training set?).
"""

import dataclasses
import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats

from experiments.harness import driver, reporting, template
from experiments.harness.population_state import member_keys
from experiments.harness.records import Experiment, Measurement, Report
from rnn_jax import stats, training
from rnn_jax.cells import get_cell
from rnn_jax.cells.vanilla import VanillaParams
from rnn_jax.data import parity
from rnn_jax.unroll import unroll

NAME = "parity_guessing"
MEASUREMENT = "guessing.json"
TEST_SEQUENCES = 1000


@dataclasses.dataclass(frozen=True)
class Config(template.Base):
    cell: str = template.field("vanilla", "The guessed cell: the vanilla tanh RNN only.",
                               choices=("vanilla",))
    hidden: int = template.field(2, "Units of the guessed fully recurrent tanh RNN, the "
                                 "output unit included.")
    seq_len: int = template.field(50, "Sequence length T of the training set.")
    weight_range: float = template.field(100.0, "Every weight and bias is drawn uniformly "
                                         "from [-w, w].")
    self_connections: bool = template.field(True, "Hidden self-connections (W's diagonal); "
                                            "off: zeroed in every draw.")
    train_sequences: int = template.field(100, "Random sequences a draw must classify.")
    draws_per_batch: int = template.field(8192, "Nets drawn and evaluated at once.")
    max_draws: int = template.field(32768, "Draws per repeat before it is censored.")
    test_seq_len: int = template.field(500, "Length of the fresh test sequences (plus one if "
                                       "needed to share T's parity: see test_length).")

    def validate(self):
        template.check(self.weight_range > 0, "weight_range", "a positive range",
                       self.weight_range)
        for name in ("train_sequences", "draws_per_batch", "test_seq_len"):
            template.check(getattr(self, name) > 0, name, "a positive integer",
                           getattr(self, name))
        template.check(self.max_draws >= self.draws_per_batch, "max_draws",
                       f"at least --draws_per_batch={self.draws_per_batch}", self.max_draws)


QUICK = dict(seq_len=3, train_sequences=8, draws_per_batch=256, max_draws=2048,
             test_seq_len=20)


def test_length(config: Config) -> int:
    """`--test_seq_len`, made the same parity as T: a net may count the -1s instead of the +1s,
    which gives the right answer exactly when the length's parity is T's."""
    return config.test_seq_len + (config.test_seq_len - config.seq_len) % 2


def sequences(key: jax.Array, count: int, length: int) -> tuple[jax.Array, jax.Array]:
    """Inputs in {-1, +1} `[count, length, 1]` and parity targets in {0, 1} `[count]`."""
    bits, odd = parity.sample(key, count, length, target="many_to_one")
    return 2.0 * bits - 1.0, odd


def draw(key: jax.Array, config: Config) -> VanillaParams:
    """One net: U, W and b uniform in [-w, w] (W's diagonal zero without self-connections)."""
    shapes = get_cell("vanilla").init(jax.random.key(0), 1, config.hidden)
    keys = jax.random.split(key, len(shapes))
    params = VanillaParams(*(jax.random.uniform(k, x.shape, x.dtype, -config.weight_range,
                                                config.weight_range)
                             for k, x in zip(keys, shapes)))
    if not config.self_connections:
        params = params._replace(W=params.W * (1 - jnp.eye(config.hidden)))
    return params


def accuracy(params: VanillaParams, xs: jax.Array, odd: jax.Array) -> jax.Array:
    """Fraction of sequences `xs [n, T, 1]` whose output unit (unit 0) ends > 0 exactly when
    the count of +1s is odd."""
    hs, _ = unroll(get_cell("vanilla"), params, xs)
    return jnp.mean((hs[:, -1, 0] > 0) == (odd > 0.5))


@functools.partial(jax.jit, static_argnames="config")
def batch_accuracy(keys: jax.Array, xs: jax.Array, odd: jax.Array, config: Config) -> jax.Array:
    """`accuracy` of the nets drawn from `keys` `[draws]`: one compile per config, shared by
    every repeat (the training set is an argument, not a constant)."""
    return jax.vmap(lambda k: accuracy(draw(k, config), xs, odd))(keys)


def search(config: Config, seed: int) -> dict:
    """One repeat: draws until one classifies the training set; its draws and test accuracies."""
    keys = member_keys(seed)
    xs, odd = sequences(keys["data"], config.train_sequences, config.seq_len)
    for start in range(0, config.max_draws, config.draws_per_batch):
        draw_keys = jax.random.split(jax.random.fold_in(keys["init"], start),
                                     config.draws_per_batch)
        solved = np.flatnonzero(np.asarray(batch_accuracy(draw_keys, xs, odd, config)) == 1.0)
        if solved.size:
            params = draw(draw_keys[solved[0]], config)
            tests = {f"test_accuracy_T{n}": float(accuracy(params, *sequences(
                jax.random.fold_in(keys["eval"], n), TEST_SEQUENCES, n)))
                for n in (config.seq_len, test_length(config))}
            return {"seed": seed, "draws": start + int(solved[0]) + 1, "solved": True, **tests}
    return {"seed": seed, "draws": config.max_draws, "solved": False}


def measure(config: Config, members: list[dict], run: training.Run) -> None:
    out = [search(config, m["seed"]) for m in members]
    (run.path / MEASUREMENT).write_text(json.dumps(out, indent=1) + "\n")


def task(config: Config) -> Measurement:
    return Measurement(lambda members, run: measure(config, members, run))


def expected_draws(repeats: list[dict]) -> dict:
    """1/p from solutions / draws over all repeats, with a Clopper-Pearson 95 % interval."""
    solutions, draws = sum(r["solved"] for r in repeats), sum(r["draws"] for r in repeats)
    low = scipy.stats.beta.ppf(0.025, solutions, draws - solutions + 1) if solutions else 0.0
    high = scipy.stats.beta.ppf(0.975, solutions + 1, draws - solutions)
    return {"draws_per_solution": draws / solutions if solutions else float("inf"),
            "draws_per_solution_ci95": f"[{1 / high:.4g}, "
                                       f"{(1 / low) if low else float('inf'):.4g}]"}


def report(run, config: Config, done: list) -> Report:
    """Per (T, hidden, self-connections): repeats solved, draws to a solution, test accuracy."""
    rows = []
    for pop_config, _, pop_run in done:
        repeats = json.loads((pop_run.path / MEASUREMENT).read_text())
        solved = [r for r in repeats if r["solved"]]
        test_key = f"test_accuracy_T{test_length(pop_config)}"
        test = stats.describe([r.get(test_key, np.nan) for r in solved] or [np.nan])
        rows.append({"seq_len": pop_config.seq_len, "hidden": pop_config.hidden,
                     "self_connections": pop_config.self_connections,
                     "solved": f"{len(solved)}/{len(repeats)}",
                     "median_draws": stats.describe([r["draws"] for r in solved] or [np.nan])[
                         "median"], **expected_draws(repeats),
                     "test_len": test_length(pop_config),
                     "exact_at_test_len": f"{sum(r.get(test_key) == 1.0 for r in solved)}/"
                                          f"{len(solved)}",
                     "test_accuracy_median": test["median"]})
    columns = ["seq_len", "hidden", "self_connections", "solved", "median_draws",
               "draws_per_solution", "draws_per_solution_ci95", "test_len", "exact_at_test_len",
               "test_accuracy_median"]
    return Report({"table": rows}, {"table": reporting.write_table(run, "table", rows, columns)})


def run_name(config: Config) -> str:
    """E.g. 'hidden2_grid-seq_len_seeds20', 'noself_hidden2_...' without self-connections."""
    name = driver.run_name(config, ("hidden", "seq_len"))
    return name if config.run_name or config.self_connections else f"noself_{name}"


EXPERIMENT = Experiment(NAME, Config, QUICK, task, report, run_name=run_name)

if __name__ == "__main__":
    driver.main(EXPERIMENT)
