"""char_lm's samples: text from one member of a trained population, read from its checkpoint.

A population directory holds what sampling needs without the corpus: config.json (the model
and its members), vocab.json, prime.txt and checkpoints/ (the stacked members' train states).
The report samples `--sample_len` tokens from member `--sample_member` after training
(`--sample_at` also during training, at chosen updates, into samples.jsonl);
`--sample_only --checkpoint=DIR` does the same later, in a new process, from DIR (a population
directory, or an invocation directory with one population).
"""

import dataclasses
import functools
import json
from pathlib import Path

import jax
import jax.numpy as jnp

from experiments.char_lm.data import Model, build_model, check_prime, flag_errors
from experiments.harness import template
from experiments.harness.population_state import load_member, member_keys
from experiments.harness.records import Task
from rnn_jax import sampling, training
from rnn_jax.data import text
from rnn_jax.training import Checkpointer

FILES = ("config.json", "vocab.json", "prime.txt")
SAMPLES = "samples.jsonl"  # --sample_at: {step, member, seed, temperature, sample} per line


def write_files(pop_dir: Path, vocab: text.Vocabulary, prime: str) -> None:
    """vocab.json and prime.txt, next to the population's checkpoints."""
    text.save_vocabulary(vocab, pop_dir / "vocab.json")
    (pop_dir / "prime.txt").write_text(prime, "utf-8")


def has_checkpoint(pop_dir: Path) -> bool:
    directory = pop_dir / "checkpoints"
    if not directory.is_dir():
        return False
    checkpointer = Checkpointer(directory)
    try:
        return checkpointer.latest_step() is not None
    finally:
        checkpointer.close()


def sample_text(config, model: Model, params, vocab: text.Vocabulary, prime: str,
                seed: int) -> str:
    """`prime` and `--sample_len` tokens sampled after it (one lax.scan), from the member's
    own key (`seed`)."""
    run = jax.jit(functools.partial(
        sampling.sample, functools.partial(model.step, params), length=config.sample_len,
        temperature=config.temperature, top_k=config.top_k, greedy=config.greedy))
    key = jax.random.fold_in(member_keys(seed)["eval"], 1)
    tokens = run(model.initial_stream(params, 1), jnp.asarray(text.encode(vocab, prime)), key)
    return prime + (" " if vocab.level == "word" else "") + text.decode(vocab, tokens)


def sample_population(config, pop_dir: Path, members: list[dict], vocab: text.Vocabulary,
                      prime: str) -> str:
    """The sample of member `config.sample_member` (sampling flags of `config`)."""
    model = build_model(config, vocab.size)
    task = Task(init=model.init, loss_fn=None, sample=None,
                stream=lambda params: model.initial_stream(params, config.batch))
    with flag_errors("checkpoint"):
        params = load_member(task, config, members, pop_dir, config.sample_member)
    return sample_text(config, model, params, vocab, prime,
                       members[config.sample_member]["seed"])


def parse_sample_at(config) -> tuple[int, ...]:
    """`--sample_at` ('100,300,1000') as updates: positive, increasing, at most --steps;
    FlagError naming --sample_at otherwise. '' gives ()."""
    expected = f"comma-separated updates, positive, increasing and <= --steps ({config.steps})"
    if not config.sample_at.strip():
        return ()
    parts = [part.strip() for part in config.sample_at.split(",")]
    template.check(all(p.isdigit() for p in parts), "sample_at", expected, config.sample_at)
    steps = tuple(int(p) for p in parts)
    template.check(steps[0] >= 1 and all(a < b for a, b in zip(steps, steps[1:]))
                   and steps[-1] <= config.steps, "sample_at", expected, config.sample_at)
    return steps


def sample_hook(config, model: Model, vocab: text.Vocabulary, prime: str):
    """`Task.on_update` for `--sample_at`: at each listed update and the last, member
    `--sample_member`'s sample (`sample_text`, the member's own fixed key, so the texts differ
    only by the parameters) goes into the population directory's samples.jsonl."""
    steps = set(parse_sample_at(config)) | {config.steps}

    def on_update(step: int, params, run) -> None:
        if step not in steps or run is None:
            return
        member = config.sample_member
        seed = json.loads((run.path / training.CONFIG).read_text())["members"][member]["seed"]
        sample = sample_text(config, model, jax.tree.map(lambda leaf: leaf[member], params),
                             vocab, prime, seed)
        write_sample(run.path, {"step": step, "member": member, "seed": seed,
                                "temperature": config.temperature, "sample": sample})

    return on_update


def write_sample(pop_dir: Path, row: dict) -> None:
    """Adds `row` to samples.jsonl, dropping rows at its step or later (a resumed run samples
    those steps again)."""
    rows = [r for r in read_samples(pop_dir) if r["step"] < row["step"]] + [row]
    path = pop_dir / SAMPLES
    path.with_suffix(".tmp").write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    path.with_suffix(".tmp").replace(path)


def read_samples(pop_dir: Path) -> list[dict]:
    """samples.jsonl's rows (`[]` when absent), in step order."""
    path = pop_dir / SAMPLES
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line]


def samples_markdown(rows: list[dict], excerpt: int = 0) -> str:
    """samples.md: one fenced block per step (the first `excerpt` characters; 0: all)."""
    return "\n".join(f"update {r['step']} (member {r['member']}, temperature "
                     f"{r['temperature']}):\n\n```\n{r['sample'][:excerpt or None]}\n```\n"
                     for r in rows)


def _population_dir(path: Path) -> Path:
    """`path` if it is a population directory, or the one population of an invocation."""
    def fail(received: str):
        return template.FlagError(
            "--checkpoint: expected a char_lm population directory (config.json, vocab.json, "
            f"prime.txt, checkpoints/) or an invocation directory with one, received "
            f"'{path}'{received}")

    if not path.is_dir():
        raise fail(", not a directory")
    if not (path / "checkpoints").exists():
        inner = [p for p in path.iterdir() if p.is_dir() and (p / "config.json").is_file()]
        if len(inner) > 1:
            names = ", ".join(sorted(p.name for p in inner))
            raise fail(f" with {len(inner)} populations ({names})"
                       "; name one")
        path = inner[0] if inner else path
    missing = [name for name in FILES if not (path / name).is_file()]
    if missing:
        raise fail(f" without {', '.join(missing)}")
    if not has_checkpoint(path):
        raise template.FlagError(f"--checkpoint: expected a run directory with a saved "
                                 f"checkpoint (trained with --checkpoint_every > 0), received "
                                 f"'{path}', which has none")
    return path


def saved_config(config_cls: type, pop_dir: Path):
    """The population's config (config.json, JSON lists as tuples) and its members."""
    try:
        saved = json.loads((pop_dir / "config.json").read_text("utf-8"))
        names = {f.name for f in dataclasses.fields(config_cls)}
        own = sorted(names - {f.name for f in dataclasses.fields(template.Base)})
        missing = [name for name in own if name not in saved]  # e.g. another experiment's run
        if missing:
            raise KeyError(f"no {', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in saved.items()
                  if k in names}
        return config_cls(**values), saved["members"]
    except (ValueError, TypeError, KeyError) as error:  # JSON, or another experiment's config
        raise template.FlagError(f"--checkpoint: expected a char_lm population's config.json, "
                                 f"received {pop_dir / 'config.json'} ({type(error).__name__}: "
                                 f"{error})") from error


def sample_only(config) -> dict:
    """--sample_only: the model and members from --checkpoint, the sampling flags from
    `config`; prints the sample and returns `{"sample": ...}`."""
    pop_dir = _population_dir(Path(config.checkpoint).expanduser())
    saved, members = saved_config(type(config), pop_dir)
    template.check(config.sample_member < len(members), "sample_member",
                   f"a member of the {len(members)} in {pop_dir}", config.sample_member)
    vocab = text.load_vocabulary(pop_dir / "vocab.json")
    prime = check_prime(vocab, config.prime or (pop_dir / "prime.txt").read_text("utf-8"))
    sampling_flags = {name: getattr(config, name) for name in
                      ("sample_len", "temperature", "top_k", "greedy", "sample_member")}
    sample = sample_population(dataclasses.replace(saved, **sampling_flags), pop_dir, members,
                               vocab, prime)
    print(sample)
    return {"sample": sample, "checkpoint": str(training.Run(pop_dir).path)}
