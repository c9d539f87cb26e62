"""The register transpose that packs W^T for the products' tiles, written in LLVM's vector IR.

    out[p, d + r, col + c] = w[row + c, k + r]      for r, c < L (a vector's lanes)

Packing W_hh^T (every forward: the arrays the model exposes may change in place between calls)
read w along its rows and stored one element at a time, a strided scalar store per element. Here an
L x L block of w loads as L vectors, is transposed in registers by log2(L) rounds of two-vector
shuffles (round b swaps the off-diagonal b x b blocks of every 2b x 2b block), and stores as L
vectors of a panel's rows.
"""
from functools import lru_cache

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from rnnbench.backends.cpu.microkernel import _elements, _int64, lanes


def _swap(builder, rows, b, n):
    """One round: rows i and i+b (i & b == 0) trade their off-diagonal b x b blocks."""
    i32 = ir.IntType(32)
    low = ir.Constant(ir.VectorType(i32, n), [l if l & b == 0 else n + l - b for l in range(n)])
    high = ir.Constant(ir.VectorType(i32, n), [l + b if l & b == 0 else n + l for l in range(n)])
    out = list(rows)
    for i in range(n):
        if i & b == 0:
            out[i] = builder.shuffle_vector(rows[i], rows[i + b], low)
            out[i + b] = builder.shuffle_vector(rows[i], rows[i + b], high)
    return out


@lru_cache(maxsize=None)
def block():
    """The intrinsic ``block(w, out, row, k, d, p, col)``: the L x L block above, for w (rows, K) with
    its rows contiguous and out (P, K, NR) C-contiguous."""

    @intrinsic
    def _block(typingctx, w, out, row, k, d, p, col):
        sig = types.void(w, out, row, k, d, p, col)

        def codegen(context, builder, signature, args):
            ww, oo = (context.make_array(t)(context, builder, v) for t, v in zip(signature.args[:2], args[:2]))
            row0, k0, d0, p0, col0 = (_int64(builder, a) for a in args[2:])
            scalar = context.get_value_type(signature.args[0].dtype)
            itemsize = context.get_abi_sizeof(scalar)
            n = lanes(itemsize)
            vec = ir.VectorType(scalar, n)
            w_row = _elements(builder, ww, itemsize)[0]
            o_p, o_k = _elements(builder, oo, itemsize, 3)[:2]
            i64 = row0.type
            src = builder.gep(ww.data, [builder.add(builder.mul(row0, w_row), k0)])
            rows = [builder.load(builder.bitcast(builder.gep(src, [builder.mul(ir.Constant(i64, c), w_row)]),
                                                 vec.as_pointer()), align=1) for c in range(n)]
            b = n // 2
            while b:
                rows = _swap(builder, rows, b, n)
                b //= 2
            dst = builder.gep(oo.data, [builder.add(builder.add(builder.mul(p0, o_p), builder.mul(d0, o_k)), col0)])
            for r in range(n):
                builder.store(rows[r], builder.bitcast(builder.gep(dst, [builder.mul(ir.Constant(i64, r), o_k)]),
                                                       vec.as_pointer()), align=1)
            return context.get_dummy_value()

        return sig, codegen

    return _block
