"""One long token stream cut into B contiguous streams and chunks of k steps (truncated BPTT).

Layout (Zaremba et al. 2014's batching). The pairs (input ids[t], target ids[t+1]),
t = 0..N-2, are laid out row-major in a `[B, L]` grid with L = ceil((N-1) / B): row b is the
contiguous piece t in [b*L, (b+1)*L). The grid is padded at the end to a multiple of the chunk
length k, and padded positions have `mask` 0. Chunk j of an epoch is the columns
[j*k, (j+1)*k) of every row. So in one epoch of `num_chunks` steps every pair is seen exactly
once, each row in order, and row b's chunk j+1 continues exactly where its chunk j ended.

Carried state (truncated BPTT). The loss function keeps the recurrent state of every row in
`TrainState.stream`: chunk j+1 starts from the state chunk j ended in, and the training loop
passes it on through `stop_gradient`, so gradients flow back at most k steps (within a chunk)
while the forward state is carried forever. The carried state is reset to zeros exactly when a
batch's `reset` flag is True, i.e. at the first chunk of every epoch (step % num_chunks == 0),
where each row jumps back to the start of its piece; the loss function applies
`rnn_jax.sequence.reset_state(stream, batch["reset"])` before unrolling. Padded positions
exist only at the end of an epoch (after which the state is reset), so they never feed real ones.
"""

from typing import NamedTuple

import numpy as np


class Streams(NamedTuple):
    """Host arrays `[batch, num_chunks * chunk_length]`, laid out as in the module docstring."""

    inputs: np.ndarray  # int32 token at t
    targets: np.ndarray  # int32 token at t + 1
    mask: np.ndarray  # float32, 1 on real pairs, 0 on padding
    chunk_length: int

    @property
    def num_chunks(self) -> int:
        """Batches (training steps) per epoch."""
        return self.inputs.shape[1] // self.chunk_length

    @property
    def num_tokens(self) -> int:
        """Real (input, target) pairs in one epoch."""
        return int(self.mask.sum())


def make_streams(ids: np.ndarray, batch_size: int, chunk_length: int) -> Streams:
    """Lays out the token stream `ids: [N]` as `batch_size` contiguous rows cut into chunks.

    Args:
      ids: `[N]` integer token ids, N >= 2.
      batch_size: B, the number of parallel streams (rows).
      chunk_length: k, the truncated-BPTT length (steps per chunk).
    """
    ids = np.asarray(ids)
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"expected a 1-D integer token stream, received {ids.dtype} {ids.shape}")
    if batch_size < 1 or chunk_length < 1:
        raise ValueError(
            f"expected batch_size >= 1 and chunk_length >= 1, received {batch_size} and "
            f"{chunk_length}"
        )
    num_pairs = len(ids) - 1
    if num_pairs < batch_size:
        raise ValueError(
            f"expected at least batch_size + 1 = {batch_size + 1} tokens, received {len(ids)}"
        )
    row_length = -(-num_pairs // batch_size)  # ceil
    padded_length = -(-row_length // chunk_length) * chunk_length
    grid_size = batch_size * row_length

    def grid(values: np.ndarray, dtype) -> np.ndarray:
        flat = np.zeros(grid_size, dtype)
        flat[:num_pairs] = values
        rows = flat.reshape(batch_size, row_length)
        return np.pad(rows, ((0, 0), (0, padded_length - row_length)))

    return Streams(
        inputs=grid(ids[:-1], np.int32),
        targets=grid(ids[1:], np.int32),
        mask=grid(np.ones(num_pairs), np.float32),
        chunk_length=chunk_length,
    )


def get_chunk(streams: Streams, step: int) -> dict[str, np.ndarray]:
    """The batch for training step `step` (a pure function of it, so resuming replays it).

    Returns:
      dict with `inputs`, `targets` int32 `[batch, k]`, `mask` float32 `[batch, k]`, and
      `reset`: a bool scalar, True on the first chunk of an epoch (reset the carried state).
    """
    j = int(step) % streams.num_chunks
    columns = slice(j * streams.chunk_length, (j + 1) * streams.chunk_length)
    return {
        "inputs": streams.inputs[:, columns],
        "targets": streams.targets[:, columns],
        "mask": streams.mask[:, columns],
        "reset": np.asarray(j == 0),
    }


def all_chunks(streams: Streams) -> dict[str, np.ndarray]:
    """Every chunk of one epoch stacked on a leading axis `[num_chunks, batch, k]` (for
    evaluation with one `lax.scan` over chunks, carrying the state)."""
    def stack(a: np.ndarray) -> np.ndarray:
        return np.swapaxes(a.reshape(a.shape[0], streams.num_chunks, streams.chunk_length), 0, 1)

    reset = np.zeros(streams.num_chunks, bool)
    reset[0] = True
    return {
        "inputs": stack(streams.inputs),
        "targets": stack(streams.targets),
        "mask": stack(streams.mask),
        "reset": reset,
    }
