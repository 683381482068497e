"""Independent NumPy references for each cell's equations, one time step at a time.

Written from the equations in the notes (not from the library code): separate gate matrices are
sliced out of the fused params, and time is a plain Python loop.
"""

import numpy as np


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


PHI = {"tanh": np.tanh, "relu": lambda a: np.maximum(a, 0.0), "identity": lambda a: a}


def vanilla(params, xs, activation="tanh"):
    """a(t) = b + W s(t-1) + U x(t); s(t) = phi(a(t)). xs: [time, in] -> [time, hidden]."""
    U, W, b = (np.asarray(p) for p in params)
    s = np.zeros(W.shape[0])
    out = []
    for x in np.asarray(xs):
        s = PHI[activation](b + s @ W + x @ U)
        out.append(s)
    return np.stack(out)


def output_feedback(params, xs, activation="tanh"):
    """a(t) = b + W o(t-1) + U x(t); s = phi(a); o(t) = c + V s(t). Emits o(t)."""
    U, W, b, V, c = (np.asarray(p) for p in params)
    o = np.zeros(V.shape[1])
    out = []
    for x in np.asarray(xs):
        s = PHI[activation](b + o @ W + x @ U)
        o = c + s @ V
        out.append(o)
    return np.stack(out)


def gru(params, xs):
    """The notes' GRU with gate order (r, z, n) in the fused matrices."""
    U, W, W_n, b = (np.asarray(p) for p in params)
    H = W_n.shape[0]
    U_r, U_z, U_n = U[:, :H], U[:, H : 2 * H], U[:, 2 * H :]
    W_r, W_z = W[:, :H], W[:, H:]
    b_r, b_z, b_n = b[:H], b[H : 2 * H], b[2 * H :]
    h = np.zeros(H)
    out = []
    for x in np.asarray(xs):
        r = sigmoid(x @ U_r + h @ W_r + b_r)
        z = sigmoid(x @ U_z + h @ W_z + b_z)
        candidate = np.tanh(x @ U_n + (r * h) @ W_n + b_n)
        h = z * h + (1 - z) * candidate
        out.append(h)
    return np.stack(out)


def lstm(params, xs):
    """The notes' LSTM with gate order (i, f, g, o) in the fused matrices."""
    U, W, b = (np.asarray(p) for p in params)
    H = W.shape[0]
    gate = lambda M, k: M[..., k * H : (k + 1) * H]
    h, c = np.zeros(H), np.zeros(H)
    out = []
    for x in np.asarray(xs):
        pre = [gate(U, k).T @ x + gate(W, k).T @ h + gate(b, k) for k in range(4)]
        i, f, g, o = sigmoid(pre[0]), sigmoid(pre[1]), np.tanh(pre[2]), sigmoid(pre[3])
        c = f * c + i * g
        h = o * np.tanh(c)
        out.append(h)
    return np.stack(out)


# cell registry name (+ options) -> reference function
REFERENCES = {
    ("vanilla", "tanh"): lambda p, xs: vanilla(p, xs, "tanh"),
    ("vanilla", "relu"): lambda p, xs: vanilla(p, xs, "relu"),
    ("vanilla", "identity"): lambda p, xs: vanilla(p, xs, "identity"),
    ("irnn", None): lambda p, xs: vanilla(p, xs, "relu"),
    ("output_feedback", "tanh"): lambda p, xs: output_feedback(p, xs, "tanh"),
    ("gru", None): gru,
    ("lstm", None): lstm,
}
