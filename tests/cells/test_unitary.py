"""uRNN cell: unitarity, the dense W from its pieces, the dense and factored forms, modReLU at 0,
gradients, traceable init (vmap), composition; the benchmark's cases; plus the registry entries
the long-memory study compares it with (IRNN, orthogonal tanh RNN)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.test_util import check_grads

from rnn_jax import get_cell, init_stack, readout, unroll, unroll_bidirectional, unroll_stack
from rnn_jax.cells import CELLS, unitary

DENSE = get_cell("urnn", dense_W=True)


def random_params(key, input_size=3, hidden=8, dtype=jnp.float32, bias_scale=0.1):
    """Init, then every trained leaf redrawn (nonzero biases and wide phases); Pi kept."""
    params = unitary.init(key, input_size, hidden, dtype=dtype)
    trained = params._replace(Pi=None)
    leaves, tree = jax.tree.flatten(trained)
    keys = jax.random.split(jax.random.fold_in(key, 1), len(leaves))
    leaves = [jax.random.normal(k, leaf.shape, dtype) for k, leaf in zip(keys, leaves)]
    redrawn = tree.unflatten(leaves)
    return redrawn._replace(b=bias_scale * redrawn.b, Pi=params.Pi)


def random_complex(key, shape, dtype=jnp.complex64):
    re, im = jax.random.normal(key, (2, *shape))
    return jax.lax.complex(re, im).astype(dtype)


def reference_W(params):
    """`D3 R2 F^-1 D2 Pi R1 F D1` as a dense NumPy matrix, from the definitions alone."""
    w = np.asarray(params.w, np.float64)
    v = np.asarray(params.v_re, np.float64) + 1j * np.asarray(params.v_im, np.float64)
    n = w.shape[1]
    j = np.arange(n)
    F = np.exp(-2j * np.pi * np.outer(j, j) / n) / np.sqrt(n)  # unitary DFT
    D = [np.diag(np.exp(1j * w[k])) for k in range(3)]
    R = [np.eye(n) - 2 * np.outer(v[k], v[k].conj()) / np.vdot(v[k], v[k]).real for k in range(2)]
    Pi = np.eye(n)[np.asarray(params.Pi.indices)]  # (Pi h)_j = h_{Pi[j]}
    return D[2] @ R[1] @ F.conj().T @ D[1] @ Pi @ R[0] @ F @ D[0]


def reference_unroll(params, xs):
    """NumPy loop over time with the dense W: h(t) = modReLU(W h(t-1) + V x(t))."""
    W = reference_W(params)
    V = np.asarray(params.V_re) + 1j * np.asarray(params.V_im)
    b = np.asarray(params.b)
    h = np.asarray(params.h0_re) + 1j * np.asarray(params.h0_im)
    out = []
    for x in np.asarray(xs):
        z = W @ h + x @ V
        h = np.maximum(np.abs(z) + b, 0) * z / np.abs(z)
        out.append(np.concatenate([h.real, h.imag]))
    return np.stack(out)


@pytest.mark.parametrize("hidden", [13, 64])
def test_W_preserves_norm_float32(hidden, key):
    params = random_params(key, hidden=hidden)
    h = random_complex(jax.random.fold_in(key, 100), (8, hidden))
    Wh = unitary.apply_W(params, h)
    assert Wh.dtype == jnp.complex64
    np.testing.assert_allclose(jnp.linalg.norm(Wh, axis=-1), jnp.linalg.norm(h, axis=-1), rtol=1e-5)


@pytest.mark.parametrize("hidden", [6, 8])
def test_dense_W_from_pieces_is_unitary_and_matches_fast_apply(hidden, key, x64):
    params = random_params(key, hidden=hidden, dtype=jnp.float64)
    W = reference_W(params)
    np.testing.assert_allclose(W.conj().T @ W, np.eye(hidden), atol=1e-12)
    h = random_complex(jax.random.fold_in(key, 2), (4, hidden), jnp.complex128)
    np.testing.assert_allclose(unitary.apply_W(params, h), np.asarray(h) @ W.T, atol=1e-12)
    W_T = unitary.dense_matrix(params)  # [in, out]: the dense form's matrix is W^T
    assert W_T.dtype == jnp.complex128
    np.testing.assert_allclose(W_T, W.T, atol=1e-12)
    np.testing.assert_allclose(W_T.conj().T @ W_T, np.eye(hidden), atol=1e-12)


def test_dense_matrix_is_unitary_float32(key):
    W_T = unitary.dense_matrix(random_params(key, hidden=64))
    assert W_T.dtype == jnp.complex64
    np.testing.assert_allclose(W_T.conj().T @ W_T, np.eye(64), atol=1e-5)


@pytest.mark.parametrize("cell", [unitary.make_cell(), DENSE], ids=["factored", "dense"])
def test_unroll_matches_numpy_dense_reference(cell, key, x64):
    params = random_params(key, dtype=jnp.float64)
    xs = jax.random.normal(jax.random.fold_in(key, 3), (2, 7, 3), jnp.float64)
    ys, _ = unroll(cell, params, xs)
    assert ys.shape == (2, 7, 16) and ys.dtype == jnp.float64
    for b in range(2):
        np.testing.assert_allclose(ys[b], reference_unroll(params, xs[b]), atol=1e-10)


def dense_and_factored(params, xs, lengths):
    """Outputs, final carries and gradients of one loss through both forms of W."""

    def run(cell):
        def loss(params, xs):
            ys, h = unroll(cell, params, xs, lengths=lengths)
            return jnp.sum(jnp.sin(ys)) + jnp.sum(jnp.abs(h) ** 2), (ys, h)

        grad_fn = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))
        (_, outputs), grads = grad_fn(params, xs)
        return outputs, grads

    return run(unitary.make_cell()), run(DENSE)


@pytest.mark.parametrize("dtype,tol", [(jnp.float32, 2e-4), (jnp.float64, 1e-10)])
def test_dense_form_equals_factored_form(dtype, tol, key, x64):
    params = random_params(key, hidden=16, dtype=dtype)
    xs = jax.random.normal(jax.random.fold_in(key, 3), (3, 9, 3), dtype)
    factored, dense = dense_and_factored(params, xs, jnp.array([9, 4, 0]))
    chex.assert_trees_all_close(dense, factored, rtol=tol, atol=tol)
    assert float(jnp.abs(factored[1][0].w).sum()) > 0  # the phases do get gradients


def test_step_takes_prepared_or_raw_params(key):
    """`prepare` is only a saving: both step params give the step of the raw params."""
    params = random_params(key)
    h = random_complex(jax.random.fold_in(key, 2), (4, 8))
    x_proj = random_complex(jax.random.fold_in(key, 3), (4, 8))
    expected = unitary.step(params, h, x_proj)
    for prepared in (unitary.prepare(params, (4,)), unitary.prepare_dense(params, (4,))):
        chex.assert_trees_all_close(unitary.step(prepared, h, x_proj), expected, rtol=1e-5,
                                    atol=1e-5)


def test_unroll_matches_python_loop_over_step(key):
    cell = get_cell("urnn")
    params = random_params(key)
    xs = jax.random.normal(jax.random.fold_in(key, 2), (2, 6, 3))
    ys, final = unroll(cell, params, xs)
    carry = cell.initial_carry(params, (2,))
    for t in range(6):
        carry, h = cell.step(params, carry, cell.project_inputs(params, xs[:, t]))
        np.testing.assert_allclose(ys[:, t], h, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(final, carry, rtol=1e-5, atol=1e-6)
    ys_jit, _ = jax.jit(lambda p, x: unroll(cell, p, x))(params, xs)
    np.testing.assert_allclose(ys_jit, ys, rtol=1e-5, atol=1e-6)


def test_zero_input_zero_bias_keeps_norm_over_long_sequences(key):
    """With V x = 0 and b = 0, modReLU is the identity and h(t) = W^t h0: ||h(t)|| = ||h0||."""
    params = random_params(key, hidden=16)._replace(b=jnp.zeros(16))
    ys, _ = unroll(unitary.make_cell(), params, jnp.zeros((2, 300, 3)))
    norms = jnp.linalg.norm(ys, axis=-1)  # ||[Re h, Im h]|| = ||h||
    h0 = jnp.sqrt(jnp.sum(params.h0_re**2 + params.h0_im**2))
    np.testing.assert_allclose(norms, jnp.broadcast_to(h0, norms.shape), rtol=1e-4)


def test_modrelu_closed_form_and_zero(key):
    z = random_complex(key, (4, 5))
    b = jnp.array([-3.0, -0.5, 0.0, 0.5, 2.0])
    expected = np.maximum(np.abs(z) + np.asarray(b), 0) * np.asarray(z) / np.abs(z)
    np.testing.assert_allclose(unitary.modrelu(z, b), expected, rtol=1e-6, atol=1e-6)
    zero = jnp.zeros((5,), jnp.complex64)
    np.testing.assert_array_equal(unitary.modrelu(zero, b), zero)

    def loss(z, b):
        out = unitary.modrelu(z, b)
        return jnp.sum(out.real + 2 * out.imag + jnp.abs(out))

    grad_z, grad_b = jax.grad(loss, argnums=(0, 1))(zero, b)
    assert np.all(np.isfinite(grad_z)) and np.all(np.isfinite(grad_b))


def autodiff_modrelu(z, b):
    """modReLU differentiated by autodiff (safe denominators), the custom JVP's reference."""
    nonzero = z != 0
    safe_z = jnp.where(nonzero, z, jnp.ones_like(z))
    scale = jax.nn.relu(jnp.abs(safe_z) + jnp.broadcast_to(b, z.shape)) / jnp.abs(safe_z)
    return jnp.where(nonzero, scale * safe_z, jnp.zeros_like(z))


def test_modrelu_custom_derivative_matches_finite_differences_and_autodiff(key, x64):
    z = random_complex(key, (3, 6), jnp.complex128).at[0, 0].set(0.0)
    b = jnp.array([-0.4, -0.1, 0.0, 0.2, 0.7, 1.5], jnp.float64)
    check_grads(unitary.modrelu, (z[1:], b), order=1, modes=["fwd", "rev"], atol=1e-6,
                rtol=1e-6)
    weights = jax.random.normal(jax.random.fold_in(key, 1), z.shape, jnp.float64)

    def second_order(modrelu):  # a Hessian-vector product of a smooth loss of the output
        loss = lambda z, b: jnp.sum(weights * jnp.abs(modrelu(z, b)) ** 2 + modrelu(z, b).real)
        grad = lambda z, b: jax.grad(loss, argnums=(0, 1))(z, b)
        return grad(z, b), jax.jvp(grad, (z, b), (jnp.ones_like(z), jnp.ones_like(b)))[1]

    chex.assert_trees_all_close(second_order(unitary.modrelu), second_order(autodiff_modrelu),
                                rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("cell", [unitary.make_cell(), DENSE], ids=["factored", "dense"])
def test_gradients_match_finite_differences(cell, key, x64):
    params = random_params(key, hidden=5, dtype=jnp.float64)
    xs = jax.random.normal(jax.random.fold_in(key, 4), (2, 4, 3), jnp.float64)
    lengths = jnp.array([4, 2])

    def loss(params, xs):
        ys, h = unroll(cell, params, xs, lengths=lengths)
        return jnp.sum(jnp.sin(ys)) + jnp.sum(jnp.abs(h) ** 2)

    check_grads(loss, (params, xs), order=1, modes=["fwd", "rev"], atol=1e-6, rtol=1e-6)
    grads = jax.grad(loss)(params, xs)
    assert float(jnp.abs(grads.h0_re).sum()) > 0  # h0 is learned


def test_permutation_is_a_float_leaf_with_zero_gradient(key):
    cell = get_cell("urnn")
    params = cell.init(key, 3, 8)
    assert all(jnp.issubdtype(leaf.dtype, jnp.floating) for leaf in jax.tree.leaves(params))
    trained = 2 * 3 * 8 + 3 * 8 + 4 * 8 + 3 * 8
    assert sum(leaf.size for leaf in jax.tree.leaves(params)) == trained + 8  # + Pi's keys
    assert sorted(params.Pi.indices.tolist()) == list(range(8))
    xs = jax.random.normal(key, (2, 5, 3))
    grads = jax.grad(lambda p: jnp.sum(unroll(cell, p, xs)[0] ** 2))(params)
    np.testing.assert_array_equal(grads.Pi.keys, 0.0)
    for optimizer in (optax.rmsprop(1e-2, decay=0.9), optax.adam(1e-2),
                      optax.chain(optax.clip_by_global_norm(1e-3), optax.sgd(1e-2, 0.9))):
        updates, _ = optimizer.update(grads, optimizer.init(params), params)
        new_params = optax.apply_updates(params, updates)
        np.testing.assert_array_equal(new_params.Pi.keys, params.Pi.keys)
        assert not np.array_equal(new_params.w, params.w)
    other = cell.init(jax.random.key(7), 3, 8)
    assert not np.array_equal(other.Pi.indices, params.Pi.indices)  # drawn from the init key


@pytest.mark.parametrize("optimizer", [optax.adam(1e-2), optax.sgd(1e-2)], ids=["adam", "sgd"])
def test_weight_decay_keeps_the_permutation(optimizer, key):
    """Weight decay moves Pi's keys without a gradient: their order (Pi) must survive it."""
    params = unitary.init(key, 3, 64)
    optimizer = optax.chain(optax.add_decayed_weights(0.5), optimizer)
    zero_grads = jax.tree.map(jnp.zeros_like, params)

    def update(_, state):
        params, opt_state = state
        updates, opt_state = optimizer.update(zero_grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    decayed, _ = jax.lax.fori_loop(0, 2000, update, (params, optimizer.init(params)))
    assert not np.allclose(decayed.Pi.keys, params.Pi.keys)
    np.testing.assert_array_equal(decayed.Pi.indices, params.Pi.indices)


def test_vmapped_init_equals_separate_inits_and_unrolls(key):
    cell = get_cell("urnn")
    keys = jax.random.split(key, 3)
    members = jax.jit(jax.vmap(lambda k: cell.init(k, 3, 8)))(keys)
    separate = [cell.init(k, 3, 8) for k in keys]
    chex.assert_trees_all_equal(members, jax.tree.map(lambda *a: jnp.stack(a), *separate))
    assert len({tuple(np.asarray(p.Pi.indices)) for p in separate}) == 3  # one Pi per member
    xs = jax.random.normal(jax.random.fold_in(key, 1), (3, 2, 6, 3))  # [member, batch, time, in]
    ys, carry = jax.vmap(lambda p, x: unroll(cell, p, x))(members, xs)
    for m, params in enumerate(separate):
        ys_m, carry_m = unroll(cell, params, xs[m])
        np.testing.assert_allclose(ys[m], ys_m, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(carry[m], carry_m, rtol=1e-5, atol=1e-6)


def test_bad_inputs_raise(key):
    with pytest.raises(ValueError, match="whole numbers reach 2\\*hidden_size = 512"):
        unitary.init(key, 3, 256, dtype=jnp.bfloat16)
    params = unitary.init(key, 3, 8)
    with pytest.raises(ValueError, match="expected URNNParams shapes"):
        unitary.input_size(params._replace(Pi=unitary.Permutation(jnp.arange(7.0))))
    with pytest.raises(ValueError, match="expected Pi a Permutation"):
        unitary.input_size(params._replace(Pi=jnp.arange(8.0)))


def test_initial_carry_is_learned_h0(key):
    params = unitary.init(key, 3, 8)
    carry = unitary.initial_carry(params, (4,))
    assert carry.shape == (4, 8) and carry.dtype == jnp.complex64
    np.testing.assert_array_equal(carry[2], params.h0_re + 1j * params.h0_im)
    assert unitary.initial_carry(params).shape == (8,)


def test_composes_with_lengths_unbatched_bidirectional_stacks_readout(key):
    cell = get_cell("urnn")
    params = random_params(key)
    xs = jax.random.normal(jax.random.fold_in(key, 5), (2, 6, 3))
    lengths = jnp.array([6, 3])
    ys, final = unroll(cell, params, xs, lengths=lengths)  # padding keeps the complex carry
    ys_short, final_short = unroll(cell, params, xs[1:, :3])
    np.testing.assert_allclose(ys[1, :3], ys_short[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(ys[1, 3:], 0.0)
    np.testing.assert_allclose(final[1], final_short[0], rtol=1e-5, atol=1e-6)
    ys_single, _ = unroll(cell, params, xs[0])  # unbatched [time, features]
    np.testing.assert_allclose(ys_single, ys[0], rtol=1e-5, atol=1e-6)

    from rnn_jax import init_bidirectional

    bi = init_bidirectional(cell, key, 3, 8)
    ys_bi, _ = unroll_bidirectional(cell, bi, xs, lengths=lengths)
    assert ys_bi.shape == (2, 6, 32)
    ys_bw, _ = unroll(cell, bi.backward, jnp.flip(xs[:1], axis=1))
    np.testing.assert_allclose(ys_bi[0, :, 16:], jnp.flip(ys_bw[0], axis=0), rtol=1e-5, atol=1e-6)

    cells = [cell, get_cell("lstm"), cell]
    stack = init_stack(key, cells, 3, [8, 5, 4])
    ys_stack, carries = unroll_stack(cells, stack, xs, lengths=lengths)
    assert ys_stack.shape == (2, 6, 8) and carries[0].dtype == jnp.complex64
    logits = readout.linear(readout.init_linear(key, 8, 9), readout.last_valid(ys_stack, lengths))
    assert logits.shape == (2, 9) and bool(jnp.all(jnp.isfinite(logits)))


def test_registry_has_urnn_irnn_and_orthogonal_tanh_rnn(key):
    assert {"urnn", "irnn", "vanilla", "lstm"} <= set(CELLS)
    # IRNN (Le, Jaitly & Hinton 2015): relu, identity recurrent init, zero bias.
    irnn = get_cell("irnn")
    params = irnn.init(key, 3, 6)
    np.testing.assert_array_equal(params.W, np.eye(6))
    np.testing.assert_array_equal(params.b, 0.0)
    x = jnp.array([[-1.0, 2.0, 0.5]])
    h, _ = irnn.step(params, -jnp.ones((1, 6)), irnn.project_inputs(params, x))
    np.testing.assert_allclose(h, np.maximum(np.asarray(x @ params.U) - 1.0, 0), rtol=1e-6)
    # "vanilla" is the tanh RNN with an orthogonal recurrent init.
    vanilla = get_cell("vanilla")
    params = vanilla.init(key, 3, 6)
    np.testing.assert_allclose(params.W.T @ params.W, np.eye(6), atol=1e-5)
    h, _ = vanilla.step(params, jnp.zeros((1, 6)), jnp.full((1, 6), 0.5))
    np.testing.assert_allclose(h, np.tanh(0.5), rtol=1e-6)
