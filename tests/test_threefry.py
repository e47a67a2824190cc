"""The unrolled Threefry lowering (gradstudy._threefry) gives JAX's bits exactly."""

import subprocess
import sys
import textwrap

import numpy as np

SCRIPT = textwrap.dedent("""
    import sys
    import jax, jax.numpy as jnp, numpy as np
    if sys.argv[1] == "unrolled":
        from gradstudy._threefry import use_unrolled_threefry
        assert use_unrolled_threefry()
    key = jax.random.key(7)
    draws = jax.jit(lambda k: (jax.random.normal(k, (1001,)),
                               jax.random.bits(jax.random.fold_in(k, 3), (2, 333)),
                               jax.random.split(k, 5),
                               jax.vmap(lambda kk: jax.random.uniform(kk, (17,)))(
                                   jax.random.split(k, 4))))(key)
    flat = [np.asarray(jax.random.key_data(d) if jnp.issubdtype(d.dtype, jax.dtypes.prng_key)
                       else d).view(np.uint32).ravel() for d in draws]
    np.save(sys.argv[2], np.concatenate(flat))
""")


def _draws(tmp_path, mode):
    out = tmp_path / f"{mode}.npy"
    subprocess.run([sys.executable, "-c", SCRIPT, mode, str(out)], check=True,
                   env={"JAX_PLATFORMS": "cpu", "PATH": "/usr/bin:/bin"})
    return np.load(out)


def test_unrolled_threefry_is_bit_identical(tmp_path):
    # separate processes: a lowering registered once applies to every later program
    default, unrolled = _draws(tmp_path, "default"), _draws(tmp_path, "unrolled")
    assert default.size == 1001 + 666 + 5 * 2 + 4 * 17
    np.testing.assert_array_equal(unrolled, default)


def test_unrolled_threefry_is_used_on_cpu():
    from jax._src.interpreters import mlir
    from jax._src.random import threefry2x32 as threefry

    from gradstudy._threefry import use_unrolled_threefry

    use_unrolled_threefry()
    entry = mlir._platform_specific_lowerings["cpu"][threefry.threefry2x32_p]
    assert entry.rule is threefry._threefry2x32_lowering_rule
