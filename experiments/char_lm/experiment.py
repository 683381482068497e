"""Character-level (or word-level) language modelling with truncated BPTT, sampling, baselines.

Headline (numbers, command and budget in experiments/char_lm/README.md):

    python -m experiments.char_lm --data=tinyshakespeare --data_path="$TINYSHAKESPEARE" \
        --seeds=3 --steps=1600 --eval_every=100 --baselines

three seeds, as one population, of one LSTM layer of 512 units, embedding 64, 64 streams x
64-step chunks (the recurrent state carried from chunk to chunk, `TrainState.stream`), Adam
2e-3, clip 1; validation nats/char over the last 10 % of the text.
Other modes:
    --data=hello --steps=150 --lr=0.05 --batch=1 --hidden=16 --seq_len=4 --greedy
                                    the notes' toy: vocabulary [h, e, l, o], learns "hello"
    --model=window --window=8       the fixed-window neural LM baseline (same loop)
    --baselines                     n-gram table (n = 1..--ngram_max, add-k and Kneser-Ney)
    --sample_only --checkpoint=DIR  sample from a finished population (--sample_member=i)
    --sample_at=100,300             samples at those updates too (samples.jsonl, samples.md)
"""

import dataclasses
import json
import math
from pathlib import Path

from experiments.char_lm import data as lm_data
from experiments.char_lm import sampling as lm_sampling
from experiments.char_lm import table_rows
from experiments.harness import driver, reporting, template
from experiments.harness.records import Experiment, Report, Task
from rnn_jax import language_model, population_plots
from rnn_jax.data import streams, text

NAME = "char_lm"
DATA = (*text.CORPORA, "hello")
EVAL_ROWS = 64  # validation streams (fewer when the validation text is short)


@dataclasses.dataclass(frozen=True)
class Config(template.Base):
    # Training (Base fields with this experiment's defaults).
    steps: int = template.field(2000, "Training steps (updates) per member.")
    lr: float = template.field(2e-3, "Learning rate (peak rate under a schedule).")
    batch: int = template.field(64, "Parallel streams of the training text (rows).")
    hidden: int = template.field(512, "Hidden units per layer.")
    seq_len: int = template.field(64, "Truncated-BPTT chunk: steps per batch (gradients reach "
                                  "back at most this far; the state is carried on).")
    log_every: int = template.field(50, "Log and record metrics every this many steps.")
    eval_every: int = template.field(200, "Evaluate every this many steps (0: only at the end).")
    checkpoint_every: int = template.field(500, "Checkpoint every this many steps (0: never; "
                                           "sampling reads the last checkpoint).")
    # Data.
    data: str = template.field("pydoc", "Corpus: pydoc (built in), tinyshakespeare "
                               "(downloaded), hello (the notes' toy).", choices=DATA)
    data_path: str = template.field("", "A UTF-8 text file to model instead of --data.")
    cache_dir: str = template.field("", "Download cache (default ~/.cache/rnn_jax).")
    text_chars: int = template.field(0, "Use only the first this many characters of the "
                                     "text (0: all).")
    level: str = template.field("char", "Model characters or words.", choices=("char", "word"))
    vocab_cap: int = template.field(10000, "Word level: most frequent words kept; others "
                                    "<unk>.")
    valid_fraction: float = template.field(0.1, "The last this fraction of the text is "
                                           "validation.")
    # Model.
    model: str = template.field("rnn", "Recurrent LM or fixed-window neural LM.",
                                choices=("rnn", "window"))
    layers: int = template.field(1, "Recurrent layers.")
    embed: int = template.field(64, "Embedding size (0: one-hot inputs).")
    dropout: float = template.field(0.0, "Dropout rate between layers (and before the "
                                    "readout).")
    window: int = template.field(8, "--model=window: the previous K tokens it sees.")
    success_nats: float = template.field(1.55, "Validation nats/token that counts as reached "
                                         "(the table's success rate and steps to reach it).")
    # Sampling and baselines.
    sample_len: int = template.field(500, "Tokens sampled after training (and with "
                                     "--sample_only).")
    temperature: float = template.field(0.8, "Sampling temperature (> 0).")
    top_k: int = template.field(0, "Sample among the k most likely tokens (0: all).")
    greedy: bool = template.field(False, "Greedy decoding (most likely token every step).")
    prime: str = template.field("", "Priming text (default: the first token of the corpus).")
    sample_member: int = template.field(0, "The population member the sample comes from.")
    sample_at: str = template.field("", "Updates at which member --sample_member's sample is "
                                    "also written, e.g. 100,300 (and the last update always; "
                                    "samples.jsonl, samples.md; same key every time).")
    sample_only: bool = template.field(False, "Only sample from --checkpoint (no training).")
    checkpoint: str = template.field("", "--sample_only: a population directory (or an "
                                     "invocation directory with one population).")
    baselines: bool = template.field(False, "Also fit the n-gram baselines on the same split.")
    ngram_max: int = template.field(8, "--baselines: n-gram orders 1..ngram_max.")

    def validate(self):
        check = template.check
        check(self.layers >= 1, "layers", "at least 1 layer", self.layers)
        check(0 <= self.dropout < 1, "dropout", "a rate in [0, 1)", self.dropout)
        check(self.embed >= 0, "embed", "a size >= 0", self.embed)
        check(not (self.model == "window" and self.embed == 0), "embed",
              "an embedding size > 0 for --model=window", self.embed)
        check(0 < self.valid_fraction < 1, "valid_fraction", "a fraction in (0, 1)",
              self.valid_fraction)
        check(self.vocab_cap >= 2, "vocab_cap", "an integer >= 2 (<unk> and one word)",
              self.vocab_cap)
        check(self.text_chars >= 0, "text_chars", "an integer >= 0 (0: all)", self.text_chars)
        check(self.window >= 1, "window", "an integer >= 1 (tokens seen)", self.window)
        check(self.ngram_max >= 1, "ngram_max", "an integer >= 1", self.ngram_max)
        check(self.sample_len >= 1, "sample_len", "an integer >= 1", self.sample_len)
        check(math.isfinite(self.temperature) and self.temperature > 0, "temperature",
              "a finite temperature > 0", self.temperature)
        check(self.top_k >= 0, "top_k", "an integer >= 0 (0: all tokens)", self.top_k)
        check(self.success_nats > 0, "success_nats", "a positive loss", self.success_nats)
        check(self.sample_member >= 0, "sample_member", "an integer >= 0", self.sample_member)
        lm_sampling.parse_sample_at(self)
        check(not self.checkpoint or self.sample_only, "checkpoint", "no value without "
              "--sample_only (a run resumes from its own run directory)", self.checkpoint)
        check(bool(self.checkpoint) or not self.sample_only, "checkpoint",
              "a run directory with --sample_only", self.checkpoint)
        cache = Path(self.cache_dir).expanduser()
        check(not self.cache_dir or cache.is_dir() or not cache.exists(), "cache_dir",
              "a directory (made if absent)", self.cache_dir)
        if not self.sample_only:
            grid = template.grid_of(self)
            members = len(template.seeds_of(self)) * math.prod(
                len(v) for n, v in grid.items() if n in self.MEMBER_FIELDS)
            check(self.sample_member < members, "sample_member",
                  f"one of the {members} members (0..{members - 1})", self.sample_member)


QUICK = dict(steps=30, batch=8, hidden=32, seq_len=16, log_every=10, eval_every=0,
             checkpoint_every=0, text_chars=20000)


def default_prime(config: Config, split: lm_data.Split) -> str:
    """--prime, or the first token of the training text; FlagError unless it encodes."""
    return lm_data.check_prime(split.vocab, config.prime or split.vocab.tokens[
        split.train_ids[0]])


def task(config: Config) -> Task:
    """One member: the language model on the training streams (the state carried from chunk
    to chunk, reset at every epoch start), evaluated over the whole validation stream
    (`val_nats`) and, the same way, over the last as many training tokens (`train_nats`:
    the model's fit to text it trained on, without dropout; the gap to `val_nats` is
    overfitting)."""
    split = lm_data.load_split(config)
    lm_data.check_split(config, split)
    prime = default_prime(config, split)
    model = lm_data.build_model(config, split.vocab.size)
    data = streams.make_streams(split.train_ids, config.batch, config.seq_len)
    rows = max(1, min(EVAL_ROWS, (len(split.valid_ids) - 1) // config.seq_len))
    held_out = {prefix: streams.all_chunks(streams.make_streams(ids, rows, config.seq_len))
                for prefix, ids in (("val_", split.valid_ids),
                                    ("train_", split.train_ids[-len(split.valid_ids):]))}

    def evaluate(params, key):
        stream = model.initial_stream(params, rows)
        return {k: v for prefix, chunks in held_out.items() for k, v in
                language_model.make_eval_fn(model.apply, chunks, stream, prefix)(params).items()}

    return Task(
        init=lambda key: model.init(key),
        loss_fn=language_model.make_loss_fn(model.apply),
        sample=lm_data.chunk_sampler(data), evaluate=evaluate,
        stream=lambda params: model.initial_stream(params, config.batch),
        on_update=lm_sampling.sample_hook(config, model, split.vocab, prime)
        if config.sample_at else None)


def command(config: Config) -> dict | None:
    """--sample_only: sample from a saved population instead of training."""
    return lm_sampling.sample_only(config) if config.sample_only else None


def population_files(config: Config, members: list, pop_run) -> dict:
    """vocab.json, prime.txt, the n-gram baselines (computed once), the sample of member
    --sample_member (from the last checkpoint) and samples.md (--sample_at) in the population
    directory; words: the validation text's rate of <unk>."""
    split = lm_data.load_split(config)
    prime = default_prime(config, split)
    lm_sampling.write_files(pop_run.path, split.vocab, prime)
    out = {} if config.level == "char" else {"val_unknown": lm_data.unknown_rate(split)}
    if samples := lm_sampling.read_samples(pop_run.path):
        (pop_run.path / "samples.md").write_text(lm_sampling.samples_markdown(samples), "utf-8")
    if config.baselines:
        path = pop_run.path / "ngram.json"
        if not path.exists():
            path.write_text(json.dumps(lm_data.ngram_table(split, config.ngram_max), indent=1))
        out["ngram"] = json.loads(path.read_text())
    if lm_sampling.has_checkpoint(pop_run.path):
        out["sample"] = lm_sampling.sample_population(config, pop_run.path, members,
                                                      split.vocab, prime)
        (pop_run.path / "sample.txt").write_text(out["sample"], "utf-8")
    return out


def report(run, config: Config, done: list) -> Report:
    """table.md (a row per population), curve.md (validation at each evaluation), ngram.md
    (--baselines), sample.txt and the validation curve figure."""
    rows, curves, ngrams, samples = [], [], [], {}
    for pop_config, members, pop_run in done:
        rows.append(table_rows.population_row(pop_config, pop_run))
        curves += [{"model": rows[-1]["model"], **r} for r in table_rows.curve_rows(pop_run)]
        files = population_files(pop_config, members, pop_run)
        rows[-1].update({k: files[k] for k in ("val_unknown",) if k in files})
        if "ngram" in files:
            ngrams += lm_data.ngram_rows(files["ngram"])
        if "sample" in files:
            samples[pop_run.path.name] = files["sample"]
    columns = ["model", "members", "params", "steps", "val_nats_mean", "val_nats_ci95",
               "val_bits_mean", "train_nats_mean", "train_nats_ci95", "best_val_nats_mean",
               "best_val_nats_ci95", "solved", "wilson95", "steps_to_success",
               "median_steps_to_success", "median_wall_s_to_success", "wall_s",
               "tokens_per_s"] + (["val_unknown"] if config.level == "word" else [])
    shown = lambda rs: [{k: f"{v:.4f}" if isinstance(v, float) else v  # noqa: E731
                         for k, v in r.items()} for r in rs]
    tables = {"table": reporting.write_table(run, "table", shown(rows), columns),
              "curve": reporting.write_table(run, "curve", shown(curves), [
                  "model", "step", "wall_s", "train_nats_mean", "train_nats_ci95",
                  "val_nats_mean", "val_nats_ci95", "gap_nats_mean", "gap_nats_ci95"])}
    if ngrams:
        tables["ngram"] = reporting.write_table(run, "ngram", shown(ngrams), list(ngrams[0]))
    if samples:
        (run.path / "sample.txt").write_text("\n\n".join(samples.values()), "utf-8")
    return Report(
        {"table": [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows],
         "ngram": ngrams, "samples": samples}, tables,
        (plot_train_and_validation(run, config, done),),
        tuple(f"sample ({name}, member {config.sample_member}):\n{sample}"
              for name, sample in samples.items()))


def plot_train_and_validation(run, config: Config, done: list):
    """curves.png: training and validation nats/token against updates (median and IQR over
    each population's members), one pair of lines per population."""
    fields = [f for f in template.grid_of(config) if f not in type(config).MEMBER_FIELDS]
    data = {}
    for metric, name in (("train_nats", "training"), ("val_nats", "validation")):
        for label, curve in reporting.curves(done, metric, fields).items():
            data[name if label == "all" else f"{label} {name}"] = curve
    if not data:
        return None
    return population_plots.plot_population_curves(
        run.path / "curves.png", data, f"nats/{config.level}",
        f"{NAME}: training and validation nats/{config.level}, evaluated every "
        f"{config.eval_every or config.steps} updates")


def run_name(config: Config) -> str:
    parts = ("data", "model", "window", "hidden", "seq_len") if config.model == "window" else \
        ("data", "cell", "layers", "hidden", "seq_len")
    named = dataclasses.replace(config, data=lm_data.data_id(config))  # --data_path's text
    return driver.run_name(named, parts[:1] + (("level",) if config.level == "word"
                                                    else ()) + parts[1:])


EXPERIMENT = Experiment(NAME, Config, QUICK, task, report, command=command, run_name=run_name)
