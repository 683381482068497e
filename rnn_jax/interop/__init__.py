"""rnn_jax in the models people already write: flax modules, and PyTorch and flax weights.

- `flax_modules`: `LinenRNN` (flax.linen) and `NnxRNN` (flax.nnx), any rnn_jax cell through
  `rnn_jax.unroll`, with flax's `nn.RNN` options and PyTorch's `num_layers`/`bidirectional`;
- `layers`: the pure function behind them, `apply_layers` (and `init_layers`);
- `torch_params`: `nn.LSTM` / `nn.GRU` / `nn.RNN` state_dicts and carries, both ways;
- `flax_params`: flax's `LSTMCell` / `OptimizedLSTMCell` / `GRUCell` params, both ways.

Nothing is imported here, so `import rnn_jax` never loads flax's module system or torch.
"""
