"""Distributed start-up fails in one line, never by aborting the interpreter: process 0 alone
(its peers never come) and `--coordinator_address=auto` outside a cluster."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rnn_jax import distributed

pytestmark = pytest.mark.slow  # experiments in child processes that wait for their peers
ROOT = Path(__file__).resolve().parents[2]
CLUSTER_VARIABLES = ("SLURM_", "OMPI_", "PMI_", "TPU_", "MEGASCALE_")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _experiment(tmp_path, *flags: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(CLUSTER_VARIABLES)}
    env.update(PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
    return subprocess.run(
        [sys.executable, "-m", "experiments.parity", "--quick", f"--out_dir={tmp_path}",
         "--compilation_cache_dir=", *flags],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)


def test_process_0_alone_fails_in_one_line_after_the_timeout(tmp_path):
    port = _free_port()
    start = time.monotonic()
    child = _experiment(tmp_path, f"--coordinator_address=127.0.0.1:{port}",
                        "--num_processes=2", "--process_id=0", "--distributed_timeout_s=2")
    assert time.monotonic() - start < 200
    assert child.returncode == 1, child.stderr
    assert "Fatal Python error" not in child.stderr and "Traceback" not in child.stderr
    line = child.stderr.strip().splitlines()[-1]
    assert line.startswith("error: --distributed_timeout_s: expected the other 1 process(es) "
                           f"to reach process 0 at 127.0.0.1:{port} within 2 s"), line
    assert "missing process id(s) [1]" in line
    assert not any(tmp_path.iterdir())


def test_auto_outside_a_cluster_names_the_flag(tmp_path):
    child = _experiment(tmp_path, "--coordinator_address=auto", "--distributed_timeout_s=2")
    assert child.returncode == 1, child.stderr
    assert "Traceback" not in child.stderr
    line = child.stderr.strip().splitlines()[-1]
    assert line.startswith("error: --coordinator_address=auto: expected a cluster environment "
                           "that names the processes"), line


def test_a_peer_whose_process_0_gives_up_fails_within_its_timeout():
    port = _free_port()
    with socket.socket() as stranger:  # something that listens but never says go
        stranger.bind(("127.0.0.1", port))
        stranger.listen(1)
        start = time.monotonic()
        with pytest.raises(ConnectionError, match=r"within 1 s \(process 1 of 2\), received "
                           r"no answer .*--distributed_timeout_s=1\)"):
            distributed.initialize(f"127.0.0.1:{port}", 2, 1, timeout_s=1)
    assert time.monotonic() - start < 30
