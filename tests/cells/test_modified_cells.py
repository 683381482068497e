"""A cell whose functions were replaced runs those functions on every path, never the library's
hand-written kernel: each path equals a plain per-timestep Python loop over the modified step."""

import functools

import chex
import jax
import jax.numpy as jnp
import pytest

import rnn_jax
from rnn_jax import diagnostics, language_model
from rnn_jax.cells import gru, lstm
from rnn_jax.tokens import unroll_tokens

BATCH, TIME, IN, HIDDEN, VOCAB = 3, 5, 2, 4, 6
LENGTHS = jnp.array([5, 3, 0])


def _sin_step(params, s_prev, x_proj):  # vanilla with sin in place of tanh
    s = jnp.sin(x_proj + s_prev @ params.W)
    return s, s


def _coupled_gate_step(params, carry, x_proj):  # LSTM with the input gate tied to 1 - f
    i, f, g, o = lstm.split_gates(x_proj + carry.h @ params.W)
    del i
    forget = jax.nn.sigmoid(f)
    c = forget * carry.c + (1.0 - forget) * jnp.tanh(g)
    h = jax.nn.sigmoid(o) * jnp.tanh(c)
    return lstm.LSTMState(h=h, c=c), h


MODIFIED = {  # name -> a stock cell with one function replaced; the name is kept on purpose
    "vanilla_sin_step": lambda: rnn_jax.get_cell("vanilla")._replace(step=_sin_step),
    "lstm_coupled_step": lambda: rnn_jax.get_cell("lstm")._replace(step=_coupled_gate_step),
    "gru_scaled_inputs": lambda: rnn_jax.get_cell("gru")._replace(
        project_inputs=lambda params, xs: gru.project_inputs(params, 2.0 * xs)
    ),
}
REMATS = [False, True, 2, "sqrt"]


def _setup(name, key, dtype=jnp.float32):
    cell = MODIFIED[name]()
    key_p, key_x = jax.random.split(key)
    params = cell.init(key_p, IN, HIDDEN, dtype=dtype)
    params = jax.tree.map(lambda a: a + 0.3 * jnp.ones_like(a), params)  # nonzero biases
    xs = jax.random.normal(key_x, (BATCH, TIME, IN), dtype)
    return cell, params, xs


def python_loop(cell, params, xs, *, lengths=None, reverse=False):
    """Each example alone, one `cell.step` per valid step; padded outputs are zeros."""
    lengths = [TIME] * xs.shape[0] if lengths is None else [int(n) for n in lengths]
    outputs, carries = [], []
    for b, n in enumerate(lengths):
        carry = cell.initial_carry(params, (1,))
        order = range(n - 1, -1, -1) if reverse else range(n)
        ys = [None] * n
        for t in order:
            carry, h = cell.step(params, carry, cell.project_inputs(params, xs[b, t][None]))
            ys[t] = h[0]
        width = cell.step(params, carry, cell.project_inputs(params, xs[b, 0][None]))[1].shape[-1]
        pad = [jnp.zeros((width,), xs.dtype)] * (xs.shape[1] - n)
        outputs.append(jnp.stack(ys + pad))
        carries.append(carry)
    carry = jax.tree.map(lambda *leaves: jnp.concatenate(leaves), *carries)
    return jnp.stack(outputs), carry


def _close(a, b, rtol=1e-5, atol=1e-6):
    chex.assert_trees_all_close(a, b, rtol=rtol, atol=atol)


@pytest.mark.parametrize("name", sorted(MODIFIED))
def test_no_hand_written_kernel_for_a_modified_cell(name, key):
    cell, params, xs = _setup(name, key)
    assert cell.bptt_kernel is None
    jaxpr = str(jax.make_jaxpr(lambda p: rnn_jax.unroll(cell, p, xs)[0])(params))
    assert "custom_vjp" not in jaxpr


@pytest.mark.parametrize("name", ["lstm", "gru", "vanilla", "irnn"])
def test_stock_functions_under_another_name_keep_the_kernel(name, key):
    cell = rnn_jax.get_cell(name)._replace(name="renamed")
    params = cell.init(key, IN, HIDDEN)
    assert cell.bptt_kernel is not None  # carried by the cell, never chosen by name
    assert rnn_jax.get_cell(name).bptt_kernel is cell.bptt_kernel
    xs = jnp.zeros((BATCH, TIME, IN))
    assert "custom_vjp" in str(jax.make_jaxpr(lambda p: rnn_jax.unroll(cell, p, xs)[0])(params))


FAST_PATHS = ("prepare", "bptt_kernel", "jacobian_diagonal", "linear_form")


@pytest.mark.parametrize("name", sorted(rnn_jax.CELLS))
def test_replacing_step_drops_every_fast_path_written_for_it(name):
    """`_replace(step=...)` drops `prepare` and the three fast paths; `project_inputs` drops
    the kernel only; the same step, another name or a fast path given anew keeps them."""
    cell = rnn_jax.get_cell(name)
    modified = cell._replace(step=lambda p, c, x: cell.step(p, c, x))
    assert all(getattr(modified, field) is None for field in FAST_PATHS)
    assert isinstance(modified, rnn_jax.Cell) and modified.name == cell.name
    projected = cell._replace(project_inputs=lambda p, xs: cell.project_inputs(p, xs))
    assert projected.bptt_kernel is None
    assert all(getattr(projected, f) is getattr(cell, f) for f in FAST_PATHS if f != "bptt_kernel")
    for same in (cell._replace(step=cell.step), cell._replace(name="renamed")):
        assert all(getattr(same, field) is getattr(cell, field) for field in FAST_PATHS)
    given = cell._replace(step=lambda p, c, x: cell.step(p, c, x), bptt_kernel=cell.bptt_kernel)
    assert given.bptt_kernel is cell.bptt_kernel and given.jacobian_diagonal is None


def test_carried_fast_paths_by_cell():
    """Which registered cells carry which fast path (a fast path lost by a refactor fails)."""
    nonlinear, linear = {"bptt_kernel", "jacobian_diagonal"}, {"linear_form"}
    expected = {
        "vanilla": nonlinear, "irnn": nonlinear, "gru": nonlinear, "lstm": nonlinear,
        "mingru": linear, "minlstm": linear, "lru": linear,
        "urnn": {"prepare"}, "output_feedback": set(), "gru_torch": set(),
    }
    assert set(expected) == set(rnn_jax.CELLS)
    for name, fields in expected.items():
        cell = rnn_jax.get_cell(name)
        assert {f for f in FAST_PATHS if getattr(cell, f) is not None} == fields, name


@pytest.mark.parametrize("remat", REMATS)
@pytest.mark.parametrize("name", sorted(MODIFIED))
def test_unroll_runs_the_modified_step(name, remat, key):
    cell, params, xs = _setup(name, key)
    _close(rnn_jax.unroll(cell, params, xs, remat=remat), python_loop(cell, params, xs))
    for reverse in (False, True):
        _close(
            rnn_jax.unroll(cell, params, xs, lengths=LENGTHS, reverse=reverse, remat=remat),
            python_loop(cell, params, xs, lengths=LENGTHS, reverse=reverse),
        )


@pytest.mark.parametrize("name", sorted(MODIFIED))
def test_gradients_are_those_of_the_modified_step(name, key, x64):
    cell, params, xs = _setup(name, key, jnp.float64)

    def loss(run):
        return lambda p: jnp.sum(jnp.sin(run(p)[0])) + jnp.sum(jax.tree.leaves(run(p)[1])[0])

    reference = jax.grad(loss(lambda p: python_loop(cell, p, xs, lengths=LENGTHS)))(params)
    for remat in (False, True, 2):
        run = lambda p: rnn_jax.unroll(cell, p, xs, lengths=LENGTHS, remat=remat)
        _close(jax.jit(jax.grad(loss(run)))(params), reference, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("remat", [False, True, 2])
@pytest.mark.parametrize("name", sorted(MODIFIED))
def test_unroll_tokens_runs_the_modified_step(name, remat, key):
    cell, params, _ = _setup(name, key)
    embedding = jax.random.normal(jax.random.fold_in(key, 1), (VOCAB, IN))
    tokens = jax.random.randint(jax.random.fold_in(key, 2), (BATCH, TIME), 0, VOCAB)
    _close(
        unroll_tokens(cell, params, embedding, tokens, lengths=LENGTHS, remat=remat),
        python_loop(cell, params, embedding[tokens], lengths=LENGTHS),
    )


@pytest.mark.parametrize("name", sorted(MODIFIED))
def test_bidirectional_and_diagnostics_run_the_modified_step(name, key):
    cell, params, xs = _setup(name, key)
    both = rnn_jax.BidirectionalParams(params, params)
    ys, _ = rnn_jax.unroll_bidirectional(cell, both, xs, lengths=LENGTHS)
    forward, _ = python_loop(cell, params, xs, lengths=LENGTHS)
    backward, _ = python_loop(cell, params, xs, lengths=LENGTHS, reverse=True)
    _close(ys, jnp.concatenate([forward, backward], axis=-1))
    eps = jnp.zeros((BATCH, TIME + 1, diagnostics.carry_size(cell, params)))
    hs, _ = diagnostics.perturbed_unroll(cell, params, xs, eps)
    _close(hs, python_loop(cell, params, xs)[0])


@pytest.mark.parametrize("name", sorted(MODIFIED))
def test_language_model_training_and_sampling_run_the_modified_step(name, key):
    cells = (MODIFIED[name](),)
    params = language_model.init(key, cells, VOCAB, (HIDDEN,), embed_size=IN)
    tokens = jax.random.randint(jax.random.fold_in(key, 2), (BATCH, TIME), 0, VOCAB)
    hs, _ = python_loop(cells[0], params.layers[0], params.embed[tokens])
    expected = rnn_jax.readout.linear(params.readout, hs)
    logits, _ = jax.jit(functools.partial(language_model.apply, cells))(params, tokens)
    _close(logits, expected)  # the training path (unroll_tokens)
    stream = language_model.initial_stream(cells, params, BATCH)
    for t in range(TIME):  # the sampling path (one cell.step per token)
        stream, step_logits = language_model.step(cells, params, stream, tokens[:, t])
        _close(step_logits, expected[:, t])
