"""Check core.py against gradstudy's own engine (backprop_norm) and predictions."""
import time
import jax
import numpy as np
import core
from gradstudy.families.mlp import init_and_probe
from gradstudy._seeds import seed_keys
from gradstudy.theory import backprop_profile

for act, init in [("relu", "he"), ("relu", "gauss3"), ("leaky_relu", "he")]:
    spec = core.make_spec(256, 64, act, init)
    t0 = time.time()
    out = core.run(spec, 32, 16)
    t1 = time.time()
    keys = seed_keys(0, 16)
    ref = jax.vmap(lambda k: init_and_probe(spec.static_key(), (64,), 32, 1.0, k,
                                            spec.kernel_scales(), 0.0))(keys)
    bp = np.asarray(ref["backprop_norm"])[:, 0]  # (S, L)
    mine = np.sqrt(out["sq"].sum(-1))
    pred = np.log10(backprop_profile(spec, 1.0, 64)[0])
    ex = core.excess_decades(out, spec)
    print(act, init, "max rel diff vs gradstudy", np.max(np.abs(mine / bp - 1)),
          "pred", pred, "core pred", 0.5 * 63 * np.log10(core.chi(spec)),
          "excess median %.3f mean %.3f se %.3f" % (np.median(ex), ex.mean(), ex.std(ddof=1) / 4),
          "npos", (ex > 0).sum(), "time %.1fs" % (t1 - t0))
