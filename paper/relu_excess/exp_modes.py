"""Cotangent modes at paper scale (width 256, depth 64, batch 32): relu He and Gaussian 3.

Per mode: excess (decades, batch-summed norms, per seed) mean ± SE, median; log10 of the mean
of squared-norm ratio (log E) vs mean of log (E log); fraction of the excess in the top 8 layers.
"""
import sys
import time
import numpy as np
import core

S = int(sys.argv[1]) if len(sys.argv) > 1 else 128
width = int(sys.argv[2]) if len(sys.argv) > 2 else 256
batch = int(sys.argv[3]) if len(sys.argv) > 3 else 32
inits = sys.argv[4].split(",") if len(sys.argv) > 4 else ["he", "gauss3"]
for init in inits:
    spec = core.make_spec(width, 64, "relu", init)
    c = core.chi(spec)
    for mode, s in [("mse", 1.0), ("mse", 0.0), ("mse", 1000.0), ("indep", 0.0),
                    ("indep_matched", 1.0)]:
        t0 = time.time()
        out = core.run(spec, batch, S, mode, s)
        sq = out["sq"].sum(-1)  # (S, L)
        ex = core.excess_decades(out, spec)
        m, se = core.mean_se(ex)
        # log E: ratio of seed-means of squared norms relative to chi^(L-1)
        logE = 0.5 * np.log10(np.mean(sq[:, 0] / sq[:, -1]) / c**63)
        # per-layer excess (decades of norm per transition), top 8 transitions vs rest
        step = 0.5 * np.log10(sq[:, :-1] / sq[:, 1:] / c)  # (S, 63): transition l+1 -> l
        top = step[:, -8:].sum(1)
        rest = step[:, :-8].sum(1)
        print(f"w{width} b{batch} {init:6s} {mode:14s} s={s:<6g} excess mean {m:+.3f}±{se:.3f} "
              f"median {np.median(ex):+.3f} logE {logE:+.3f} | top8 {top.mean():+.3f}±"
              f"{top.std(ddof=1)/np.sqrt(S):.3f} rest55 {rest.mean():+.3f}±"
              f"{rest.std(ddof=1)/np.sqrt(S):.3f}  ({time.time()-t0:.0f}s)", flush=True)
