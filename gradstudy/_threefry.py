"""Faster, bit-identical random numbers on the CPU: JAX's unrolled Threefry lowering.

JAX lowers its Threefry-2x32 hash (every ``jax.random`` draw with the default key) in two
ways that compute the same bits: on GPU and TPU as 20 unrolled rounds, which XLA fuses into
one elementwise kernel; on the CPU as a rolled ``fori_loop`` of 5 steps, chosen upstream for
compile time, whose every step reads and writes the whole counter arrays.  Sweeps draw
millions of normals per program (16 width-256, depth-64 MLPs: 67 M), and with the rolled
loop sampling cost more than the whole gradient computation: 1.72 CPU-seconds against
0.52 unrolled for those 67 M normals, compilation no slower (0.56 against 0.23 s), measured
on a 2-core CPU with jax 0.10.2.

:func:`use_unrolled_threefry` registers JAX's own unrolled lowering for the CPU.  The bits
are identical by construction (the same function, ``_threefry2x32_lowering``, without the
loop; tested bit for bit in ``tests/test_threefry.py``), so no result changes: only
programs lowered afterwards are faster.  gradstudy's program builders call it;
``GRADSTUDY_XLA_DEFAULTS=0`` leaves JAX's choice alone.  Where a JAX version no longer has
the private names used here, it does nothing.
"""

from __future__ import annotations

import functools
import os


@functools.lru_cache(maxsize=None)
def use_unrolled_threefry() -> bool:
    """Lower Threefry-2x32 unrolled on the CPU from now on; True if it was done.

    Idempotent and cheap after the first call.  Not done if ``GRADSTUDY_XLA_DEFAULTS=0`` or
    this JAX lacks the lowering (then JAX's default stays, and results are the same).
    """
    if os.environ.get("GRADSTUDY_XLA_DEFAULTS", "1") == "0":
        return False
    try:
        from jax._src.interpreters import mlir
        from jax._src.random import threefry2x32 as threefry

        rule = threefry._threefry2x32_lowering_rule  # the unrolled one (GPU/TPU default)
        primitive = threefry.threefry2x32_p
    except (ImportError, AttributeError):
        return False
    mlir.register_lowering(primitive, rule, platform="cpu")
    return True
