"""PyTorch peers: `nn.LSTM` / `nn.GRU` char-LM training step on CPU, PyTorch's defaults.

torch is not a dependency of rnn_jax (`pip install -r benchmarks/requirements.txt` adds it).
This module imports it, so `benchmarks.implementations` imports this module only when a PyTorch
row runs: the memory table's JAX-only child processes do not carry torch in their peak RSS.
"""

from typing import Callable

import numpy as np
import torch

from benchmarks import model


def _tensor(array) -> torch.Tensor:
    return torch.from_numpy(np.array(array, dtype=np.float32))


def make_train_step(weights, cell_name: str, inputs, targets) -> Callable[[], float]:
    """`step() -> loss` (forward, backward, Adam lr 1e-3) of the PyTorch char-LM holding
    `weights` on the batch `(inputs, targets)` ([batch, time] ints)."""
    model.check_weights(weights, cell_name)
    vocab, hidden = weights.embedding.shape
    embedding = torch.nn.Embedding(vocab, hidden)
    rnn = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell_name](hidden, hidden, batch_first=True)
    readout = torch.nn.Linear(hidden, vocab)
    bias_hh = np.zeros(weights.b.shape, np.float32)
    if cell_name == "gru":  # PyTorch's b_hn sits inside the reset product
        bias_hh[2 * hidden:] = np.asarray(weights.b_hn)
    with torch.no_grad():  # PyTorch stores [out, in]; gate orders are the same as ours
        embedding.weight.copy_(_tensor(weights.embedding))
        rnn.weight_ih_l0.copy_(_tensor(weights.U).T)
        rnn.weight_hh_l0.copy_(_tensor(weights.W).T)
        rnn.bias_ih_l0.copy_(_tensor(weights.b))
        rnn.bias_hh_l0.copy_(_tensor(bias_hh))
        readout.weight.copy_(_tensor(weights.V).T)
        readout.bias.copy_(_tensor(weights.c))
    modules = torch.nn.ModuleList([embedding, rnn, readout])
    optimizer = torch.optim.Adam(modules.parameters(), lr=1e-3)
    inputs = torch.from_numpy(np.asarray(inputs, dtype=np.int64))
    targets = torch.from_numpy(np.asarray(targets, dtype=np.int64)).reshape(-1)

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        ys, _ = rnn(embedding(inputs))
        logits = readout(ys)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab), targets)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def version() -> str:
    return torch.__version__
