"""Per-layer profile of the excess from an exp_scan npz: measured vs the recursion.

usage: profile.py scan_n256_B32_m10_L64_S64.npz
Per bin of 8 transitions (bottom -> top): measured excess = 1/2 log10 of the ratio of seed-means
of ||d_l||^2 / (chi ||d_{l+1}||^2) summed over the bin (± bootstrap SE over seeds), and the
predicted value from predict.profile with the closed-form rho (He, v = 2, m = 10).
"""
import re
import sys

import numpy as np

import predict

f = sys.argv[1]
n, B, m, L = (int(x) for x in re.findall(r"n(\d+)_B(\d+)_m(\d+)_L(\d+)", f)[0])
o = np.load(f)
G = o["gram"]
S = G.shape[0]
rng = np.random.default_rng(0)
boot = rng.integers(0, S, (400, S))
bins = np.array_split(np.arange(L - 1), 8)


def binned(sq):  # sq (S, L), chi = 1 for He
    msq = sq.mean(0)
    step = 0.5 * np.log10(msq[:-1] / msq[1:])
    return np.array([step[b].sum() for b in bins])


for name, s in [("s=0", 0.0), ("s=1", 1.0), ("indep", None)]:
    sq = G[..., 2, 2] if s is None else G[..., 0, 0] - 2 * s * G[..., 0, 1] + s**2 * G[..., 1, 1]
    meas = binned(sq)
    se = np.std([binned(sq[b]) for b in boot], axis=0)
    rho = 1.0 if s is None else predict.rho_mse(m, 2.0, s)
    pstep = predict.profile(n, L, rho)
    pred = np.array([pstep[b].sum() for b in bins])
    print(f"n={n} B={B} {name:5s} bins bottom->top, measured ± SE / predicted:")
    print("   " + "  ".join(f"{a:+.3f}±{e:.3f}/{p:+.3f}" for a, e, p in zip(meas, se, pred)))
    print(f"   total {meas.sum():+.3f} / {pred.sum():+.3f};  top bin share measured "
          f"{meas[-1] / meas.sum():.2f} predicted {pred[-1] / pred.sum():.2f}")
