"""The register tile of the recurrent product, written in LLVM's vector IR.

    out[i:i+MR, panel p] = a[i:i+MR, :] @ w[p]      w packed as (N / NR, K, NR): NR columns a panel

An outer-product (BLIS-style) micro-kernel: for each k, NR weights load as vectors, each of the MR
rows' a[i, k] is broadcast, and MR x NR sums stay in vector registers for the whole of k, so no
sum is reduced across lanes (the dot-product form pays a horizontal sum per output). Numba cannot
express it: LLVM's vectorisers leave a loop of scalar sums scalar once Numba's index arithmetic is
in it (measured: 5-14 GFLOP/s), so ``tile`` emits the vector loads, broadcasts and fused
multiply-adds itself (``numba.extending.intrinsic``). The sums live in stack slots that LLVM's
mem2reg turns into registers; NR is two vectors of the host's width (AVX-512: 32 float32 or 16
float64). A tile's rows past ``a``'s last are read from the last (and not stored); the columns of
the last panel past out's last are computed on the packing's zeros and not stored. The same tile
makes the weight gradients, out += a^T b, from a transposed view of a.
"""
from functools import lru_cache

import llvmlite.binding as llb
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

AVX512 = bool(llb.get_host_cpu_features().get("avx512f"))
VECTOR_BYTES = 64 if AVX512 else 32
PER_PANEL = 2  # vectors of columns in a panel
# rows of the largest tile: its 2 x MR sums, the panel's 2 vectors and a broadcast fit the vector
# registers (32 with AVX-512, 16 without)
MAX_ROWS = 8 if AVX512 else 6


def lanes(itemsize: int) -> int:
    return VECTOR_BYTES // itemsize


def panel_width(itemsize: int) -> int:
    """NR: the columns of one packed panel."""
    return PER_PANEL * lanes(itemsize)


def _store(builder, acc, base, offset, vec, n, add):
    """The panel's vectors of sums of one row, stored from base[offset] on (added to what is there
    when ``add``, an i1)."""
    start = builder.gep(base, [offset])
    for v, slot in enumerate(acc):
        ptr = builder.bitcast(builder.gep(start, [ir.Constant(offset.type, v * n)]), vec.as_pointer())
        value = builder.load(slot)
        with builder.if_then(add):
            builder.store(builder.fadd(value, builder.load(ptr, align=1)), slot)
        builder.store(builder.load(slot), ptr, align=1)


def _elements(builder, array, itemsize, ndim=2):
    """An array's strides in elements."""
    return [builder.sdiv(s, ir.Constant(s.type, itemsize)) for s in cgutils.unpack_tuple(builder, array.strides, ndim)]


def _sums(context, builder, a_rows, a_k, panel, w_k, K, vec, n, rows):
    """The k loop: per k, the panel's vectors loaded and each row's a[i, k] broadcast into its
    multiply-adds. Returns the stack slots of the rows' vector sums."""
    zero = ir.Constant(vec, [0.0] * n)
    acc = [[cgutils.alloca_once_value(builder, zero) for _ in range(PER_PANEL)] for _ in range(rows)]
    fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec] * 3),
                                         f"llvm.fma.v{n}f{8 * context.get_abi_sizeof(vec.element)}")
    undef = ir.Constant(vec, ir.Undefined)
    splat = ir.Constant(ir.VectorType(ir.IntType(32), n), [0] * n)
    with cgutils.for_range(builder, K) as loop:
        k = loop.index
        wk = builder.gep(panel, [builder.mul(k, w_k)])
        wv = [builder.load(builder.bitcast(builder.gep(wk, [ir.Constant(K.type, v * n)]), vec.as_pointer()), align=1)
              for v in range(PER_PANEL)]
        ak = builder.mul(k, a_k)
        for r in range(rows):
            x = builder.load(builder.gep(a_rows[r], [ak]))
            xb = builder.shuffle_vector(builder.insert_element(undef, x, ir.Constant(ir.IntType(32), 0)), undef, splat)
            for v in range(PER_PANEL):
                builder.store(builder.call(fma, [xb, wv[v], builder.load(acc[r][v])]), acc[r][v])
    return acc


def _write(builder, acc, out, starts, real, col, N, vec, n, add):
    """Each real row's sums into out from starts[r] (its row's offset + col): as vectors where the
    panel lies inside out, else through a buffer, as many columns as out has."""
    nr = PER_PANEL * n
    inside = builder.icmp_signed("<=", builder.add(col, ir.Constant(col.type, nr)), N)
    spill = cgutils.alloca_once(builder, ir.ArrayType(vec.element, nr))
    with builder.if_else(inside) as (whole, edge):
        with whole:
            for r, start in enumerate(starts):
                with builder.if_then(real[r]):
                    _store(builder, acc[r], out.data, start, vec, n, add)
        with edge:
            buf = builder.bitcast(spill, vec.element.as_pointer())
            for r, start in enumerate(starts):
                with builder.if_then(real[r]):
                    _store(builder, acc[r], buf, ir.Constant(col.type, 0), vec, n, ir.Constant(ir.IntType(1), 0))
                    row = builder.gep(out.data, [start])
                    with cgutils.for_range(builder, builder.sub(N, col)) as loop:
                        value = builder.load(builder.gep(buf, [loop.index]))
                        old = builder.select(add, builder.load(builder.gep(row, [loop.index])),
                                             ir.Constant(vec.element, 0.0))
                        builder.store(builder.fadd(value, old), builder.gep(row, [loop.index]))


def _int64(builder, value):
    return builder.sext(value, ir.IntType(64)) if value.type.width < 64 else value


@lru_cache(maxsize=None)
def tile(rows: int):
    """The intrinsic ``tile(a, w, out, i, p, add)`` for MR = ``rows``: out's rows i .. i+rows-1
    (those a has) and panel p's columns (those out has) of a @ b, from a (M, K) in any strides (a
    transposed view reads each k's rows from one cache line) and w = b packed (P, K, NR) (or a
    slice of its k); out's rows contiguous. ``add``: out += instead of out =."""

    @intrinsic
    def _tile(typingctx, a, w, out, i, p, add):
        sig = types.void(a, w, out, i, p, add)

        def codegen(context, builder, signature, args):
            aa, ww, oo = (context.make_array(t)(context, builder, v) for t, v in zip(signature.args[:3], args[:3]))
            i0, p0 = _int64(builder, args[3]), _int64(builder, args[4])
            scalar = context.get_value_type(signature.args[0].dtype)
            itemsize = context.get_abi_sizeof(scalar)
            n = lanes(itemsize)
            vec = ir.VectorType(scalar, n)
            M, K = cgutils.unpack_tuple(builder, aa.shape, 2)
            a_row, a_k = _elements(builder, aa, itemsize)
            w_panel, w_k = _elements(builder, ww, itemsize, 3)[:2]
            N = cgutils.unpack_tuple(builder, oo.shape, 2)[1]
            o_row = _elements(builder, oo, itemsize)[0]
            # rows past a's last: read from the last, never stored
            real = [builder.icmp_signed("<", builder.add(i0, ir.Constant(i0.type, r)), M) for r in range(rows)]
            last = builder.sub(M, ir.Constant(M.type, 1))
            row = [builder.select(real[r], builder.add(i0, ir.Constant(i0.type, r)), last) for r in range(rows)]
            a_rows = [builder.gep(aa.data, [builder.mul(r, a_row)]) for r in row]
            acc = _sums(context, builder, a_rows, a_k, builder.gep(ww.data, [builder.mul(p0, w_panel)]), w_k, K,
                        vec, n, rows)
            col = builder.mul(p0, ir.Constant(p0.type, PER_PANEL * n))
            _write(builder, acc, oo, [builder.add(builder.mul(r, o_row), col) for r in row], real, col, N, vec, n,
                   args[5])
            return context.get_dummy_value()

        return sig, codegen

    return _tile
