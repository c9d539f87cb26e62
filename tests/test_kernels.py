"""The cpu backend's building blocks: float32 activations and the matrix products."""
import numpy as np
import pytest
from numba import njit

import rnnbench as rb
from rnnbench.backends.cpu import activations, matmul


@njit(**activations.KERNEL_OPTIONS)  # as the kernels compile them
def _apply(x, out, which):
    for i in range(x.size):
        out[i] = activations.tanh(x[i]) if which == 0 else activations.sigmoid(x[i])


def _grid(dtype):
    x = np.linspace(-12, 12, 400_001)
    tiny = 10.0 ** np.linspace(-8, 1, 20_001)
    return np.concatenate([x, tiny, -tiny]).astype(dtype)


def test_float32_activations_are_accurate_to_a_few_ulp():
    x = _grid(np.float32)
    exact_t = np.tanh(x.astype(np.float64))
    exact_s = 1 / (1 + np.exp(-x.astype(np.float64)))
    t, s = np.empty_like(x), np.empty_like(x)
    _apply(x, t, 0)
    _apply(x, s, 1)
    ulp = np.spacing(np.abs(exact_t).astype(np.float32)).astype(np.float64)
    assert (np.abs(t - exact_t) / ulp).max() <= 6
    assert (np.abs(t - exact_t) / np.maximum(np.abs(exact_t), 1e-30)).max() < 4e-7
    assert np.abs(s - exact_s).max() < 2.5e-7
    # the Python twins are the kernels' functions, but for the rounding of fused multiply-adds
    # (3e-7 at most, where tanh saturates: 0.99999976 in the kernels against 1)
    eps = np.spacing(np.float32(1))
    assert np.abs(activations.tanh(x) - t).max() <= 4 * eps
    assert np.abs(activations.sigmoid(x) - s).max() <= 4 * eps


def test_float64_activations_are_accurate_to_a_few_ulp():
    x = np.concatenate([_grid(np.float64), np.linspace(-700, 700, 20_001)])
    t, s = np.empty_like(x), np.empty_like(x)
    _apply(x, t, 0)
    _apply(x, s, 1)
    # numpy's own tanh and exp are the reference (libm is 4.2e-16 from them)
    np.testing.assert_allclose(t, np.tanh(x), rtol=6e-16, atol=0)
    np.testing.assert_allclose(s, 1 / (1 + np.exp(-x)), rtol=6e-16, atol=0)
    assert (np.abs(t) <= 1).all() and ((s >= 0) & (s <= 1)).all()


@njit
def _recurrent(a, b, out, parallel):
    matmul.recurrent(a, b, out, 0, a.shape[0], parallel)


@pytest.mark.parametrize("dtype, rtol", [(np.float32, 2e-6), (np.float64, 1e-14)])
@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("M, N, K", [(1, 1, 1), (1, 3, 5), (3, 7, 2), (5, 13, 33), (2, 4, 8), (30, 64, 40),
                                     (9, 70, 17), (16, 32, 3), (13, 100, 6), (8, 16, 1)])
def test_recurrent_product_at_every_edge(M, N, K, parallel, dtype, rtol):
    """Every row tile (8, 4, 2, 1 and clamped) and panel edge; nothing written past out's end."""
    rng = np.random.default_rng(M * 100 + N)
    a, b = rng.standard_normal((M, K)).astype(dtype), rng.standard_normal((K, N)).astype(dtype)
    buf = np.full(M * N + 64, np.nan, dtype)
    out = buf[: M * N].reshape(M, N)
    rb.set_num_threads(2)
    packed = matmul.pack(b, transpose=False)
    np.testing.assert_array_equal(matmul.pack(np.ascontiguousarray(b.T), transpose=True), packed)
    _recurrent(a, packed, out, parallel)
    expected = a.astype(np.float64) @ b.astype(np.float64)
    np.testing.assert_allclose(out, expected, rtol=rtol, atol=rtol * np.abs(expected).max())
    assert np.isnan(buf[M * N:]).all()


@pytest.mark.parametrize("parallel", [False, True])
def test_recurrent_product_of_a_part_of_the_rows(parallel):
    """Rows lo .. hi-1 only (a part of the batch: threads.batch_split), no row of another part."""
    rng = np.random.default_rng(7)
    a, b = rng.standard_normal((21, 40)), rng.standard_normal((40, 70))
    packed = matmul.pack(b, transpose=False)
    for lo, hi in ((0, 12), (12, 21), (4, 8), (8, 20)):
        out = np.full((21, 70), np.nan)
        _recurrent_rows(a, packed, out, lo, hi, parallel)
        np.testing.assert_allclose(out[lo:hi], a[lo:hi] @ b, rtol=1e-13, atol=1e-12)
        assert np.isnan(out[:lo]).all() and np.isnan(out[hi:]).all()


@njit
def _recurrent_rows(a, b, out, lo, hi, parallel):
    matmul.recurrent(a, b, out, lo, hi, parallel)


def test_panels_of_another_width_than_the_compiled_tiles_are_refused():
    a, out = np.ones((2, 3), np.float32), np.empty((2, 5), np.float32)
    with pytest.raises(ValueError, match="packed panels of another width than the compiled tiles"):
        _recurrent(a, np.zeros((1, 3, 7), np.float32), out, False)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])  # blocks of 8 and 16 transposed in registers
def test_packing_both_ways_on_one_thread_and_on_all(dtype):
    rb.set_num_threads(2)
    for w in (np.arange(6.0 * 7).reshape(6, 7), np.arange(300.0 * 290).reshape(300, 290)):  # serial, parallel
        w = w.astype(dtype)
        for transpose, b in ((False, w), (True, w.T)):
            packed = matmul.pack(w, transpose)
            nr = packed.shape[2]
            padded = np.zeros((b.shape[0], packed.shape[0] * nr), dtype)
            padded[:, : b.shape[1]] = b
            np.testing.assert_array_equal(packed, padded.reshape(b.shape[0], -1, nr).transpose(1, 0, 2))


@pytest.mark.parametrize("K", [3, 33, 160])
def test_packing_a_matrix_beside_another(K):
    """[W_ih | W_hh]^T packed in one: the rows of the first, then those of the second."""
    rng = np.random.default_rng(K)
    w_ih, w_hh = rng.standard_normal((100, K)).astype(np.float32), rng.standard_normal((100, 37)).astype(np.float32)
    np.testing.assert_array_equal(matmul.pack(w_ih, True, beside=w_hh), matmul.pack(np.hstack([w_ih, w_hh]), True))


@pytest.mark.parametrize("dtype, K, rows, tiles", [(np.float32, 512, 37, True), (np.float32, 40, 37, False),
                                                   (np.float32, 160, 37, True), (np.float32, 160, 400, False),
                                                   (np.float64, 512, 37, False)])
def test_projection_by_a_transposed_view(dtype, K, rows, tiles):
    """x W^T: through the tiles with W packed by its rows for float32 from K = 512, or from K = 128
    for at most 320 rows of x; else BLAS."""
    rb.set_num_threads(2)
    rng = np.random.default_rng(K)
    x, w = rng.standard_normal((rows, K)).astype(dtype), rng.standard_normal((70, K)).astype(dtype)
    assert matmul._transposed_tiles(x, w.T) == tiles
    out = np.empty((rows, 70), dtype)
    matmul.gemm(x, w.T, out)
    expected = x.astype(np.float64) @ w.T.astype(np.float64)
    tol = 1e-5 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(out, expected, rtol=tol, atol=tol * np.abs(expected).max())


@pytest.mark.parametrize("rows", [1, 2, 37, 300])  # 300: on both threads
@pytest.mark.parametrize("width", [9, 40])  # narrower than a panel: BLAS; wider: the tiles
def test_whole_sequence_products(rows, width):
    rb.set_num_threads(2)
    rng = np.random.default_rng(rows)
    x, w = rng.standard_normal((rows, width)), rng.standard_normal((width, width + 3))
    g = rng.standard_normal((rows, width + 3))
    out = np.empty((rows, width + 3))
    matmul.gemm(x, w, out)
    np.testing.assert_allclose(out, x @ w, rtol=1e-13, atol=1e-13 * np.abs(x @ w).max())
    acc = np.ones((width + 3, width))
    matmul.gemm_tn_add(g, x, acc)  # summed in per-thread parts or tiles: rounding against one product
    np.testing.assert_allclose(acc, 1 + g.T @ x, rtol=1e-13, atol=1e-13 * np.abs(g.T @ x).max())


def test_weight_gradients_of_a_large_float64_input_in_slices_of_it(monkeypatch):
    """A float64 a over TILES_BYTES runs through the tiles slice by slice of its rows."""
    monkeypatch.setattr(matmul, "TILES_BYTES", 40 * 8 * 7)  # slices of 7 rows of a
    rb.set_num_threads(2)
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((30, 40)), rng.standard_normal((30, 50))
    acc = np.ones((40, 50))
    matmul.gemm_tn_add(a, b, acc)
    np.testing.assert_allclose(acc, 1 + a.T @ b, rtol=1e-13, atol=1e-13 * np.abs(a.T @ b).max())


def test_batch_split_into_parts_of_whole_row_tiles():
    from rnnbench.backends.cpu.threads import SHARED_BYTES, batch_split
    from rnnbench.runtime import pinned_threads

    with pinned_threads(2):
        assert batch_split(21, 256, 64, 4) == (12, False)  # parts of 12 and 9 rows, one a thread
        assert batch_split(8, 1024, 256, 4) == (4, False)
        assert batch_split(1, 1024, 256, 4) == (1, True)  # one sequence: each step's panels split
        assert batch_split(6, 1024, 256, 4) == (4, False)  # 4 + 2
        assert batch_split(3, 1024, 256, 4) == (3, True)  # fewer than 4 rows a part: split by panels
        side = int((SHARED_BYTES // 8) ** 0.5) + 1  # a W_hh too large to read whole in every part
        assert batch_split(32, side, side, 8) == (32, True)
        assert batch_split(32, 8, 8, 4) == (32, False)  # small work stays on one thread
    with pinned_threads(1):
        assert batch_split(21, 256, 64, 4) == (21, False)


def test_input_projection_joins_the_step_where_the_batch_reuses_small_weights():
    from rnnbench.backends.cpu.threads import FUSED_BYTES, fuses

    assert fuses(16, 1024, 512, 4)  # LSTM 256: [W_ih | W_hh]^T of 2 MiB
    assert not fuses(4, 1024, 512, 4)  # a part of a few rows: a matrix-vector product per weight read
    assert not fuses(16, 2048, 1024, 4)  # LSTM 512: 8 MiB, reread from L3 every step
    assert fuses(8, FUSED_BYTES // 64, 16, 4) and not fuses(8, FUSED_BYTES // 64, 17, 4)
