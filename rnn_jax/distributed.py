"""Data parallelism on JAX's own runtime: a `("data",)` mesh, shardings, several processes.

    mesh = distributed.make_mesh(4)                          # the first 4 of jax.devices()
    train_step = train.make_train_step(loss_fn, optimizer, mesh=mesh)   # batch split, state
                                                                        # replicated

The recipe of big_vision, nanodo and the JAX training cookbook: one mesh axis `"data"`, the
parameters and optimiser state replicated on every device, the batch split along its batch
axis, XLA's SPMD partitioner adding the gradient all-reduce. The same code runs on one device,
on N CPU devices (`set_cpu_device_count`, before JAX starts its backends), on GPUs and TPUs,
and over several processes (`initialize`, then the mesh spans every process's devices).

Splitting a batch changes the order of the floating-point sums in the loss and gradient
(per-device partial sums, then an all-reduce), so a run on N devices equals the one-device run
to float rounding, not bit for bit.
"""

import itertools
import socket
import time
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"
_BARRIERS = itertools.count()


def count(devices: int | str, available: int) -> int:
    """`--devices` (a count, or "all") as a number of devices, checked against `available`.

    Raises:
      ValueError: not a positive count or "all", or more devices than are present.
    """
    text = str(devices).strip().lower()
    if text == "all":
        return available
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1 or str(number) != text.lstrip("+"):
        raise ValueError(f"--devices: expected a positive count or 'all', received {devices!r}")
    if number > available:
        raise ValueError(f"--devices: expected at most the {available} device(s) present "
                         f"({jax.default_backend()}), received {number}")
    return number


def set_cpu_device_count(number: int) -> None:
    """Splits the host CPU into `number` XLA devices (`jax_num_cpu_devices`).

    Call it before the first JAX computation: JAX reads it when it starts its CPU backend.
    Fake CPU devices test correctness on one machine (the same program runs on GPUs); on a
    CPU with few cores they share those cores, so speed-ups are small or negative.
    """
    if number < 1:
        raise ValueError(f"expected a positive number of CPU devices, received {number}")
    try:
        jax.config.update("jax_num_cpu_devices", number)
    except RuntimeError:  # JAX refuses a change once its backends are initialized
        if len(jax.devices("cpu")) == number:
            return
        raise RuntimeError(
            f"expected set_cpu_device_count({number}) before the first JAX computation, but "
            f"JAX's backends are already initialized (with {len(jax.devices('cpu'))} CPU "
            "device(s)); call it at the start of the program") from None


def make_mesh(num_devices: int | None = None) -> Mesh:
    """A one-axis `("data",)` mesh over the first `num_devices` of `jax.devices()` (all of
    them, every process's, when None)."""
    devices = jax.devices()
    number = len(devices) if num_devices is None else count(num_devices, len(devices))
    return Mesh(np.asarray(devices[:number]), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    """Every device holds the whole array (parameters, optimiser state, metrics)."""
    return NamedSharding(mesh, PartitionSpec())


def split(mesh: Mesh, axis: int = 0) -> NamedSharding:
    """Arrays split along `axis` over the data axis (a batch; a population's members)."""
    return NamedSharding(mesh, PartitionSpec(*([None] * axis), DATA_AXIS))


def check_divisible(tree: Any, mesh: Mesh, axis: int, what: str = "batch") -> None:
    """Raises ValueError unless every leaf's size along `axis` divides over the mesh."""
    devices = mesh.devices.size
    for leaf in jax.tree.leaves(tree):
        shape = np.shape(leaf)
        if len(shape) <= axis or shape[axis] % devices:
            received = shape[axis] if len(shape) > axis else f"an array of shape {shape}"
            raise ValueError(
                f"expected a {what} size divisible by the {devices} devices of the mesh "
                f"(axis {axis} of every array), received {what} size {received}")


def place(tree: Any, sharding: NamedSharding) -> Any:
    """`tree` on `sharding`; leaves already there are kept as they are (no copy).

    With several processes every process passes the same values (they are computed from the
    same keys), and each keeps only the shards of its own devices.
    """
    def one(leaf):
        if isinstance(leaf, jax.Array) and leaf.sharding.is_equivalent_to(sharding, leaf.ndim):
            return leaf
        if jax.process_count() == 1:
            return jax.device_put(leaf, sharding)
        if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:  # a global array
            return jax.jit(lambda x: x, out_shardings=sharding)(leaf)
        if jax.dtypes.issubdtype(getattr(leaf, "dtype", None), jax.dtypes.prng_key):
            data = place(jax.random.key_data(leaf), sharding)
            return jax.random.wrap_key_data(data, impl=jax.random.key_impl(leaf))
        host = np.asarray(leaf)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree.map(one, tree)


def barrier(name: str, timeout_s: float = 600) -> None:
    """Waits until every process reaches `barrier(name)` (no-op in one process).

    Why: XLA:CPU's gloo collectives give the processes 30 s to meet at their first collective,
    and compiling a step can take one process longer than that on a loaded machine; meeting
    here first, after compiling, keeps the two apart. Uses the coordination service's barrier
    through orbax (`ocp.multihost.get_barrier_sync_fn`): JAX has no public barrier that is not
    itself a collective.
    """
    if jax.process_count() > 1:  # ids must be unique: number them in call order (the same
        # in every process, which all run the same program)
        wait = ocp.multihost.get_barrier_sync_fn()  # the coordination service's barrier
        wait(key=f"{name} #{next(_BARRIERS)}", timeout_ms=int(1000 * timeout_s))


def is_writer() -> bool:
    """Whether this process writes logs, run directories and checkpoints (process 0)."""
    return jax.process_index() == 0


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, *, timeout_s: int = 60) -> None:
    """`jax.distributed.initialize` with its inputs checked and a bounded wait.

    All three None: the cluster's environment says them (SLURM, Open MPI, TPU pods); outside
    such a cluster that is a ValueError naming `--coordinator_address=auto`. With an address
    the processes first meet in a handshake of our own (`_gather` on process 0, `_join` on the
    others) and only then start JAX's coordination service. Why: XLA aborts the interpreter
    (SIGABRT, "Fatal Python error") when process 0's client times out waiting for the others,
    and a process whose coordinator does not answer; no Python exception can be caught there.
    So a missing peer or coordinator is a `ConnectionError` after `timeout_s` seconds
    (`--distributed_timeout_s`), naming who was missing. Call it before the first JAX
    computation.

    Raises:
      ValueError: a process id outside [0, num_processes), fewer than one process, an address
        without a port, a non-positive timeout, or 'auto' outside a cluster.
      ConnectionError: the other processes (or the coordinator) did not answer in time.
    """
    if timeout_s <= 0:
        raise ValueError(f"expected a positive timeout in seconds, received {timeout_s}")
    if num_processes is not None and num_processes < 1:
        raise ValueError(f"--num_processes: expected a positive count, received {num_processes}")
    if process_id is not None and num_processes is not None and not (
            0 <= process_id < num_processes):
        raise ValueError(f"--process_id: expected an id in [0, {num_processes}) for "
                         f"--num_processes={num_processes}, received {process_id}")
    if coordinator_address is not None and not _has_port(coordinator_address):
        raise ValueError(f"--coordinator_address: expected host:port, received "
                         f"{coordinator_address!r}")
    if coordinator_address is None:
        try:
            jax.distributed.initialize(initialization_timeout=int(timeout_s))
        except ValueError as error:  # no cluster environment names the processes
            raise ValueError(
                "--coordinator_address=auto: expected a cluster environment that names the "
                "processes (SLURM, Open MPI, a TPU pod), received none (JAX: "
                f"{error}); outside a cluster pass --coordinator_address=host:port "
                "--num_processes=N --process_id=i") from None
        return
    if num_processes is not None and num_processes > 1 and process_id is not None:
        if process_id == 0:
            _gather(coordinator_address, num_processes, timeout_s)
        else:
            _join(coordinator_address, process_id, num_processes, timeout_s)
    jax.distributed.initialize(coordinator_address, num_processes, process_id,
                               initialization_timeout=int(timeout_s))


_HELLO, _GO = b"rnn_jax join ", b"go\n"


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def _gather(address: str, num_processes: int, timeout_s: float) -> None:
    """Process 0: waits on the coordinator's port until processes 1..N-1 have said hello,
    then tells them to go on and frees the port for JAX's coordination service.

    Raises ConnectionError after `timeout_s` seconds, naming the processes that did not come.
    """
    deadline = time.monotonic() + timeout_s
    peers: dict[int, socket.socket] = {}
    with socket.socket(socket.AF_INET6 if ":" in _host_port(address)[0] else socket.AF_INET,
                       socket.SOCK_STREAM) as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            server.bind(("", _host_port(address)[1]))
        except OSError as error:
            raise ConnectionError(f"--coordinator_address: expected a free port for process 0 "
                                  f"at {address}, received {error}") from None
        server.listen(num_processes)
        try:
            while len(peers) < num_processes - 1:
                server.settimeout(max(deadline - time.monotonic(), 0.01))
                try:
                    connection, _ = server.accept()
                except (socket.timeout, TimeoutError):
                    missing = sorted(set(range(1, num_processes)) - set(peers))
                    raise ConnectionError(
                        f"--distributed_timeout_s: expected the other {num_processes - 1} "
                        f"process(es) to reach process 0 at {address} within {timeout_s} s, "
                        f"received {len(peers)}; missing process id(s) {missing}. Start every "
                        "process with the same --coordinator_address and --num_processes, or "
                        "raise --distributed_timeout_s") from None
                peer = _hello(connection, num_processes)
                if peer is None or peer in peers:
                    connection.close()
                else:
                    peers[peer] = connection
            for connection in peers.values():
                connection.sendall(_GO)
            for connection in peers.values():  # the peer closes first: the port stays free
                connection.settimeout(5.0)
                try:
                    connection.recv(1)
                except OSError:
                    pass
        finally:
            for connection in peers.values():
                connection.close()


def _hello(connection: socket.socket, num_processes: int) -> int | None:
    """The process id a peer sends (`rnn_jax join <id>`), or None for anything else."""
    connection.settimeout(5.0)
    try:
        line = connection.recv(64)
    except OSError:
        return None
    if not line.startswith(_HELLO) or not line.endswith(b"\n"):
        return None
    text = line[len(_HELLO):].strip()
    return int(text) if text.isdigit() and 0 < int(text) < num_processes else None


def _join(address: str, process_id: int, num_processes: int, timeout_s: float) -> None:
    """Processes 1..N-1: says hello to process 0 and waits for its go (`_gather`), retrying
    until process 0 listens; ConnectionError after `timeout_s` seconds."""
    who = f"process {process_id} of {num_processes}"
    deadline = time.monotonic() + timeout_s
    error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(_host_port(address), timeout=1.0) as connection:
                connection.sendall(_HELLO + f"{process_id}\n".encode())
                connection.settimeout(max(deadline - time.monotonic(), 0.01))
                if connection.recv(len(_GO)) == _GO:
                    return
                error = ConnectionError("process 0 closed the connection (it gave up waiting "
                                        "for the others, or is another program)")
        except OSError as failure:
            error = failure
        time.sleep(0.25)
    raise ConnectionError(
        f"expected the coordinator (process 0) at {address} to answer within {timeout_s} s "
        f"({who}), received no answer ({error}): is process 0 running, and is the address "
        f"reachable from here? (waited --distributed_timeout_s={timeout_s})")


def _has_port(address: str) -> bool:
    host, sep, port = address.rpartition(":")
    return bool(sep and host and port.isdigit())
