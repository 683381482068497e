"""The process around an experiment's command line (`driver.main`): its runtime and
several-process flags, what happens before the first JAX computation (`start`), and the one
line that ends it on Ctrl-C or a full disk, with the command that resumes the run."""

import errno
import logging as std_logging
import shlex
import sys

from absl import flags, logging

from experiments.harness import runtime
from rnn_jax import distributed, training

FLAGS = flags.FLAGS


def start() -> None:
    """Before any JAX work: quiets JAX's logging, joins the other processes and splits a CPU
    (`start_devices`; ValueError or ConnectionError on bad flags or no coordinator), then
    applies `--keep_host_memory` and `--compilation_cache_dir`."""
    # absl prints INFO to stderr; JAX's (e.g. "Unable to initialize backend 'tpu'") is noise
    std_logging.getLogger("jax").setLevel(std_logging.WARNING)
    start_devices()
    if FLAGS.keep_host_memory:
        runtime.keep_host_memory()
    if FLAGS.compilation_cache_dir:
        try:
            runtime.enable_compilation_cache(FLAGS.compilation_cache_dir)
        except OSError as error:  # e.g. a read-only home: run without the cache
            logging.warning("compilation cache off (--compilation_cache_dir): %s", error)


def resume_command() -> str:
    """The command line of this process, to run again (`python -m experiments.x --flags`)."""
    return shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv]))


def interrupted(interrupt: KeyboardInterrupt) -> str:
    """The line for Ctrl-C: where the run stopped (`training.Interrupted` says it) and the command
    that resumes it (the same command: finished populations are kept)."""
    where = str(interrupt) if isinstance(interrupt, training.Interrupted) else \
        "stopped outside a training loop (populations already finished are kept)"
    return (f"interrupted: {where}. To resume, run the same command again: "
            f"{resume_command()}")


def os_error(error: OSError) -> str:
    """An OSError as one line; a full disk says what to do."""
    if error.errno != errno.ENOSPC:
        return str(error)
    detail = error.strerror if isinstance(error.strerror, str) else "no space left on device"
    detail += f": {error.filename}" if error.filename else ""
    return (f"{detail}. Free space (or move the run "
            f"directory to a larger disk and pass that --out_dir), then run the same command "
            f"again to resume: {resume_command()}")


def define_flags() -> None:
    """The flags of the process around an experiment's own: runtime settings and several
    processes."""
    flags.DEFINE_bool("keep_host_memory", True, "Keep freed host memory mapped between "
                      "training steps and run each step on the calling thread (experiments."
                      "harness.runtime): faster steps on XLA:CPU; resident memory stays at its "
                      "peak. Results are unchanged.")
    flags.DEFINE_string("compilation_cache_dir", "~/.cache/rnn_jax/xla", "Keep compiled XLA "
                        "programs here, so later runs with the same shapes start without "
                        "compiling (JAX's persistent cache); empty: off.")
    flags.DEFINE_string("coordinator_address", "", "Several processes (jax.distributed): "
                        "host:port of process 0, e.g. 127.0.0.1:12345; 'auto': from the "
                        "cluster's environment (SLURM, Open MPI); empty: one process.")
    flags.DEFINE_integer("num_processes", None, "Several processes: how many (with "
                         "--coordinator_address=host:port).")
    flags.DEFINE_integer("process_id", None, "Several processes: this one's id in "
                         "[0, --num_processes); process 0 logs and writes the run directory.")
    flags.DEFINE_integer("distributed_timeout_s", 60, "Several processes: seconds to wait for "
                         "the coordinator (and for the others) before failing.")


def start_devices() -> None:
    """Before JAX starts its backends: joins the other processes (`--coordinator_address`)
    and, for `--devices=N` > 1, splits a CPU into N XLA devices (N / processes each)."""
    address = FLAGS.coordinator_address
    processes = 1
    if address:
        auto = address == "auto"
        distributed.initialize(None if auto else address, FLAGS.num_processes,
                               FLAGS.process_id, timeout_s=FLAGS.distributed_timeout_s)
        processes = FLAGS.num_processes or 1
        if FLAGS.process_id not in (None, 0):
            logging.set_verbosity(logging.WARNING)  # process 0 logs
    elif FLAGS.num_processes not in (None, 1) or FLAGS.process_id not in (None, 0):
        raise ValueError(f"--coordinator_address: expected host:port (or 'auto') with "
                         f"--num_processes={FLAGS.num_processes} --process_id="
                         f"{FLAGS.process_id}, received ''")
    devices = FLAGS["devices"].value if "devices" in FLAGS else "1"
    if str(devices).isdigit() and int(devices) > 1 and int(devices) % processes == 0:
        distributed.set_cpu_device_count(int(devices) // processes)
