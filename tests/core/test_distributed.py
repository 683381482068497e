"""Data-parallel training (rnn_jax.distributed, training.make_train_step(mesh=...)): 4 fake CPU
devices against one device, two real processes against one, resume on another device count,
bad inputs.

Fake CPU devices (`jax_num_cpu_devices`) must be set before JAX starts its backends, so the
multi-device runs happen in child processes (one script, run once per module), never in this
test session. The one-device reference is the plain (mesh-free) step, tested in
tests/training/test_loop.py.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from experiments.harness import driver, template
from experiments.parity import experiment as parity
from rnn_jax import distributed

pytestmark = pytest.mark.slow  # several-device and several-process runs in child processes
ROOT = Path(__file__).resolve().parents[2]
# Float32 rounding of a mean over 16 sequences summed in another order, after a few Adam
# steps: differences of a few ulps of O(1) values.
FLOAT32_TOL = 1e-5

# Runs in a child process with 4 fake CPU devices; prints one JSON object.
FOUR_DEVICES = """
import json, sys
from rnn_jax import distributed
distributed.set_cpu_device_count(4)
import jax, jax.numpy as jnp, numpy as np, optax
from experiments.harness import driver
from experiments.parity import experiment as parity
from rnn_jax import readout, training
from rnn_jax.training import population
from rnn_jax.cells import get_cell
from rnn_jax.unroll import unroll

jax.config.update("jax_compilation_cache_dir", sys.argv[1] + "/xla")  # same programs once
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
CELL, out_dir, opt = get_cell("vanilla"), sys.argv[1], optax.adam(1e-2)

def loss_fn(params, batch, key, stream):  # predict the previous input
    xs, ys = batch
    hs, _ = unroll(CELL, params[0], xs)
    loss = jnp.mean((readout.linear(params[1], hs) - ys) ** 2)
    return loss, ({}, stream)

def batch_of(step, size=16, dtype=jnp.float32):
    xs = jax.random.normal(jax.random.fold_in(jax.random.key(1), step), (size, 4, 1), dtype)
    return xs, jnp.pad(xs[:, :-1], ((0, 0), (1, 0), (0, 0)))

def state_of(seed, dtype=jnp.float32):
    k1, k2 = jax.random.split(jax.random.key(seed))
    params = (CELL.init(k1, 1, 4, dtype=dtype), readout.init_linear(k2, 4, 1, dtype=dtype))
    return training.init_state(params, opt, jax.random.key(seed + 2))

def flat(tree):
    return [np.asarray(x, np.float64).ravel().tolist() for x in jax.tree.leaves(tree)]

STEPS = {n: training.make_train_step(loss_fn, opt, mesh=distributed.make_mesh(n) if n > 1
                                  else None) for n in (1, 4)}

def single(devices, steps=6, dtype=jnp.float32, run=None, get_batch=None):
    state, history = training.fit(state_of(0, dtype), STEPS[devices], get_batch or (
        lambda s: batch_of(s, dtype=dtype)), num_steps=steps, log_every=1, run=run,
        checkpoint_every=3 if run else 0, plot=False)
    return {"loss": [h["loss"] for h in history], "params": flat(state.params),
            "devices": len(jax.tree.leaves(state.params)[0].sharding.device_set)}

def members(devices, shard_members):
    state = population.create(jax.tree.map(lambda *v: jnp.stack(v), *map(state_of, range(4))))
    get_batch = lambda s: jax.tree.map(lambda *v: jnp.stack(v),
                                       *[batch_of(s + 100 * m, size=8) for m in range(4)])
    step = training.make_train_step(loss_fn, opt, mesh=distributed.make_mesh(devices) if
                                 devices > 1 else None, shard_members=shard_members)
    state, history = training.fit(state, step, get_batch, num_steps=4, log_every=1)
    return {"loss": [h["loss"] for h in history], "params": flat(state.members.params)}

def error(fn):
    try:
        fn()
    except ValueError as e:
        return str(e)
    return None

out = {"one": single(1), "four": single(4), "traces": STEPS[4].num_traces()}
with jax.enable_x64(True):
    out["one64"], out["four64"] = single(1, dtype=jnp.float64), single(4, dtype=jnp.float64)
out["pop_one"], out["pop_batch"] = members(1, False), members(4, False)
out["pop_members"] = members(4, True)
out["indivisible"] = error(lambda: STEPS[4](state_of(0), batch_of(0, size=18)))
out["flag_batch"] = error(lambda: driver.parse(parity.EXPERIMENT, ["--quick", "--devices=3"]))
out["flag_members"] = error(lambda: driver.call(parity.EXPERIMENT, [
    "--quick", "--devices=4", "--shard=members", "--seeds=3", f"--out_dir={out_dir}/m"]))

def interrupted(step):  # after the step-3 checkpoint
    if step == 4:
        raise KeyboardInterrupt
    return batch_of(step)
run = training.Run.create(out_dir, "resume", "run", {})
try:
    single(4, run=run, get_batch=interrupted)
except KeyboardInterrupt:
    pass
out["resumed"] = single(1, run=run)  # on one device
out["resumed"]["from"] = run.summary()["resumed_from_step"]
# the experiment on 2 devices in one process: the reference of the two-process run
driver.call(parity.EXPERIMENT, [*sys.argv[2:], "--devices=2", f"--out_dir={out_dir}/one_process"])
print(json.dumps(out))
"""

# Runs as process argv[1] of 2 (coordinator on 127.0.0.1:argv[2]), the experiment argv[4:].
PROCESS = """
import sys
from rnn_jax import distributed
distributed.initialize(f"127.0.0.1:{sys.argv[2]}", 2, int(sys.argv[1]), timeout_s=120)
from experiments.harness import driver
from experiments.parity import experiment as parity
print(driver.call(parity.EXPERIMENT, [*sys.argv[4:], "--devices=all", f"--out_dir={sys.argv[3]}"]))
"""
# The experiment argv[2:] in one process on one device, into out_dir argv[1].
ONE_PROCESS = """
import sys
from experiments.harness import driver
from experiments.parity import experiment as parity
print(driver.call(parity.EXPERIMENT, [*sys.argv[2:], "--devices=1", f"--out_dir={sys.argv[1]}"]))
"""
TINY_PARITY = ["--quick", "--hidden=4", "--seq_len=4", "--test_seq_len=4", "--batch=8",
               "--steps=4", "--log_every=2", "--eval_every=4", "--checkpoint_every=2"]
RUN = "parity/quick_lstm_hidden4_seq_len4_seed0"


def _python(script: str, *args: str, cwd: Path = ROOT) -> subprocess.Popen:
    """A child Python running `script`; its stdout and stderr go to files (a full pipe would
    block the child, and a blocked process keeps its peers waiting at their barriers)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    files = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
    process = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script), *map(str, args)],
                               cwd=cwd, env=env, stdout=files[0], stderr=files[1])
    process.files = files
    return process


def _finish(*processes: subprocess.Popen, timeout: float = 900) -> list[str]:
    """Every child's stdout, after all have ended; a failure shows each child's stderr."""
    for process in processes:
        process.wait(timeout=timeout)
    outputs = []
    for i, process in enumerate(processes):
        streams = []
        for stream in process.files:
            stream.seek(0)
            streams.append(stream.read())
        outputs.append(streams)
    failed = [f"child {i} (exit {p.returncode}):\n{err[-2000:]}"
              for i, (p, (_, err)) in enumerate(zip(processes, outputs)) if p.returncode]
    assert not failed, "\n".join(failed)
    return [out for out, _ in outputs]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _close(a, b, tol=FLOAT32_TOL):
    for x, y in zip(a, b):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=tol, atol=tol)


@pytest.fixture(scope="module")
def children(tmp_path_factory):
    """The 4-device script and the two processes, started together, awaited once."""
    out_dir = tmp_path_factory.mktemp("distributed")
    port = _free_port()
    four = _python(FOUR_DEVICES, out_dir, *TINY_PARITY)
    (out_dir / "two").mkdir()  # the processes run there with --out_dir=results: a copy of
    # the directory holds a run of the same config (which names --out_dir as given)
    processes = [_python(PROCESS, i, port, "results", *TINY_PARITY, cwd=out_dir / "two")
                 for i in range(2)]
    outputs = _finish(four, *processes)
    return json.loads(outputs[0].strip().splitlines()[-1]), outputs[1:], out_dir


@pytest.fixture(scope="module")
def resumed(children):
    """The two-process run as if killed after its step-2 checkpoint, resumed twice: by two
    processes again, and by one process on one device."""
    out_dir = children[2]
    for copy in ("two_again", "one_device"):
        shutil.copytree(out_dir / "two", out_dir / copy)
        run = out_dir / copy / "results" / RUN
        (run / "summary.json").unlink()
        (run / "population" / "summary.json").unlink()
        shutil.rmtree(run / "population" / "checkpoints" / "4")
    port = _free_port()
    children_ = [_python(PROCESS, i, port, "results", *TINY_PARITY, cwd=out_dir / "two_again")
                 for i in range(2)]
    children_.append(_python(ONE_PROCESS, "results", *TINY_PARITY, cwd=out_dir / "one_device"))
    return _finish(*children_), out_dir


def _metrics(path: Path) -> list[dict]:
    return [json.loads(line) for line in
            (path / RUN / "population" / "metrics.jsonl").read_text().splitlines()]


def _same_metrics(runs: list[dict], reference: list[dict]) -> None:
    assert [r["step"] for r in runs] == [r["step"] for r in reference] == [2, 4]
    for a, b in zip(runs, reference):
        assert set(a) == set(b)
        names = sorted(set(a) - {"wall_s", "step", "member"})
        _close([a[k] for k in names], [b[k] for k in names])


@pytest.fixture
def four(children):
    return children[0]


def test_four_devices_match_one_to_float_rounding(four):
    out = four
    assert (out["one"]["devices"], out["four"]["devices"]) == (1, 4)
    assert out["traces"] == 1  # the state is placed on the mesh once: no retrace
    _close(out["four"]["loss"], out["one"]["loss"])
    _close(out["four"]["params"], out["one"]["params"])
    # Not bit for bit in general: each device sums its quarter of the batch, then the
    # all-reduce adds the partial sums, another order of float additions. In float64 the same
    # runs agree to float64 rounding, so the difference is summation order, not the algorithm.
    _close(out["four64"]["loss"], out["one64"]["loss"], tol=1e-12)
    _close(out["four64"]["params"], out["one64"]["params"], tol=1e-12)


def test_population_split_by_batch_or_by_members_matches_one_device(four):
    out = four
    for run in ("pop_batch", "pop_members"):
        _close(out[run]["loss"], out["pop_one"]["loss"])
        _close(out[run]["params"], out["pop_one"]["params"])


def test_resume_on_another_device_count_equals_uninterrupted(four):
    out = four
    assert out["resumed"]["from"] == 3  # saved on 4 devices, resumed on 1
    _close(out["resumed"]["params"], out["one"]["params"])
    _close(out["resumed"]["loss"], out["one"]["loss"])


def test_batches_that_do_not_divide_name_both_numbers(four):
    out = four
    assert "divisible by the 4 devices" in out["indivisible"]
    assert "received batch size 18" in out["indivisible"]
    assert out["flag_batch"] == ("--batch: expected a multiple of the 3 devices (--devices=3) "
                                 "to split each batch evenly, received 16")
    assert out["flag_members"].startswith("--seeds: expected a population whose size divides "
                                          "over the 4 devices") and "3 members" in \
        out["flag_members"]


def test_two_processes_train_like_one_and_only_process_0_writes(children):
    _, outputs, out_dir = children
    assert "'trained': 1" in outputs[1]
    # one record per step (process 1 logged nothing), equal to the one-process run's
    _same_metrics(_metrics(out_dir / "two" / "results"), _metrics(out_dir / "one_process"))
    # each process wrote its own shards of every checkpoint (orbax), process 0 the rest
    steps = out_dir / "two" / "results" / RUN / "population" / "checkpoints"
    assert sorted(p.name for p in steps.iterdir()) == ["2", "4"]
    assert {p.name for p in (steps / "4" / "arrays").glob("ocdbt.process_*")} == {
        "ocdbt.process_0", "ocdbt.process_1"}


def test_a_two_process_checkpoint_resumes_on_two_processes_or_one_device(resumed):
    outputs, out_dir = resumed
    assert "'trained': 1" in outputs[1]
    reference = _metrics(out_dir / "one_process")
    for copy in ("two_again", "one_device"):
        run = out_dir / copy / "results"
        summary = json.loads((run / RUN / "population" / "summary.json").read_text())
        assert summary["resumed_from_step"] == 2 and summary["finished"]
        _same_metrics(_metrics(run), reference)


@pytest.mark.parametrize("devices, message", [
    ("0", "expected a positive count or 'all', received '0'"),
    ("-1", "expected a positive count or 'all', received '-1'"),
    ("two", "expected a positive count or 'all', received 'two'"),
    ("5", "expected at most the 4 device(s) present (cpu), received 5"),
])
def test_device_counts_are_checked(devices, message):
    with pytest.raises(ValueError, match="^--devices: " + message.replace("(", r"\(")
                       .replace(")", r"\)")):
        distributed.count(devices, 4)
    assert distributed.count("all", 4) == 4 and distributed.count("3", 4) == 3


def test_devices_flag_beyond_those_present():
    with pytest.raises(template.FlagError, match=r"--devices: expected at most the 1 device"):
        driver.parse(parity.EXPERIMENT, ["--quick", "--devices=2"])
    with pytest.raises(template.FlagError, match=r"received '-1'"):
        driver.parse(parity.EXPERIMENT, ["--quick", "--devices=-1"])
    assert template.num_devices(driver.parse(parity.EXPERIMENT, ["--quick", "--devices=all"])) == 1


@pytest.mark.parametrize("kwargs, message", [
    (dict(num_processes=2, process_id=2), r"--process_id: expected an id in \[0, 2\)"),
    (dict(num_processes=2, process_id=-1), r"received -1"),
    (dict(num_processes=0, process_id=0), r"--num_processes: expected a positive count"),
])
def test_process_ids_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        distributed.initialize("127.0.0.1:1234", **kwargs)
    with pytest.raises(ValueError, match="expected host:port, received 'localhost'"):
        distributed.initialize("localhost", 2, 1)


def test_unreachable_coordinator_fails_within_the_timeout():
    port = _free_port()  # nothing listens there
    start = time.monotonic()
    with pytest.raises(ConnectionError, match=f"coordinator \\(process 0\\) at 127.0.0.1:"
                       f"{port} to answer within 1 s \\(process 1 of 2\\)"):
        distributed.initialize(f"127.0.0.1:{port}", 2, 1, timeout_s=1)
    assert time.monotonic() - start < 30


def test_process_flags_without_a_coordinator_fail_in_one_line(tmp_path):
    child = subprocess.run(
        [sys.executable, "-m", "experiments.parity", "--quick", "--num_processes=2",
         "--process_id=1", f"--out_dir={tmp_path}", "--compilation_cache_dir="],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert child.returncode == 1
    assert child.stderr.strip().splitlines()[-1].startswith(
        "error: --coordinator_address: expected host:port")
    assert not any(tmp_path.iterdir())
