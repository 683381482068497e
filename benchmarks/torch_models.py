"""PyTorch peers (optional): nn.LSTM / nn.GRU char-LM training step on CPU.

torch is not a dependency of rnn_jax: `pip install -r benchmarks/requirements.txt` adds it.
"""

import time

try:
    import torch
except ImportError:  # the benchmark skips the PyTorch rows with a note
    torch = None

VARIANTS = {"torch nn.LSTM": "lstm", "torch nn.GRU": "gru"}


def available() -> bool:
    return torch is not None


def version() -> str:
    return torch.__version__ if torch is not None else "absent"


def time_train_step(kind, batch, time_steps, hidden, vocab, steps, seed=0, threads=2):
    """Times `steps` Adam steps; returns (first-step seconds, list of later step seconds)."""
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    rnn_class = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind]
    embedding = torch.nn.Embedding(vocab, hidden)
    rnn = rnn_class(hidden, hidden, batch_first=True)
    readout = torch.nn.Linear(hidden, vocab)
    modules = torch.nn.ModuleList([embedding, rnn, readout])
    optimizer = torch.optim.Adam(modules.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, vocab, (batch, time_steps + 1), generator=generator)
    inputs, targets = tokens[:, :-1], tokens[:, 1:]

    def step():
        optimizer.zero_grad(set_to_none=True)
        ys, _ = rnn(embedding(inputs))
        logits = readout(ys)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab), targets.reshape(-1))
        loss.backward()
        optimizer.step()
        return loss.item()

    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return times[0], times[1:]
