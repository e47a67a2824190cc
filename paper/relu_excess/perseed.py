"""Per-seed test of the Euler-term formula from an exp_scan npz.

For each seed, from top-layer quantities only (readout residual, ||a_L||, ||d_L||):
  rho_seed = (n/2) sum_b <g_b,y_b>^2/||a_L,b||^2 / ||d_L||^2,   r_pred = att + rho_seed (1 - att)
and the measured r = ||d_1||^2 / (chi^(L-1) ||d_L||^2) through the whole stack. Prints
  logE:   1/2 log10 mean(r)            vs 1/2 log10 mean(r_pred)          (± SE of the difference)
  RoM:    1/2 log10 E||d_1||^2/E(chi^(L-1)||d_L||^2)  vs the same weighting of r_pred
  corr(log r, log r_pred) across seeds.
"""
import re
import sys

import numpy as np

for f in sys.argv[1:]:
    n, B, m, L = (int(x) for x in re.findall(r"n(\d+)_B(\d+)_m(\d+)_L(\d+)", f)[0])
    o = np.load(f)
    G = o["gram"]
    S = G.shape[0]
    att = (1 - 2 / n) ** (L - 1)
    for name, s in [("s=0", 0.0), ("s=0.1", 0.1), ("s=1", 1.0), ("s=10", 10.0), ("s=1000", 1e3),
                    ("indep", None)]:
        if s is None:
            sq, gy = G[..., 2, 2], o["uy"] / B
        else:
            sq = G[..., 0, 0] - 2 * s * G[..., 0, 1] + s**2 * G[..., 1, 1]
            gy = (o["yy"] - s * o["ty"]) / B
        rho = (n / 2) * np.sum(gy**2 / o["aL2"], -1) / sq[:, -1]
        rp = att + rho * (1 - att)
        r = sq[:, 0] / sq[:, -1]  # chi = 1 (He)
        d = r - rp
        logE, logEp = 0.5 * np.log10(r.mean()), 0.5 * np.log10(rp.mean())
        se = 0.5 * d.std(ddof=1) / np.sqrt(S) / r.mean() / np.log(10)
        w = sq[:, -1]
        rom, romp = 0.5 * np.log10((w * r).sum() / w.sum()), 0.5 * np.log10((w * rp).sum() / w.sum())
        c = np.corrcoef(np.log(r), np.log(rp))[0, 1]
        print(f"n={n} B={B} S={S} {name:6s} mean rho_seed {rho.mean():6.2f} | logE meas {logE:+.3f} "
              f"pred {logEp:+.3f} diff {logE - logEp:+.3f}±{se:.3f} | RoM meas {rom:+.3f} "
              f"pred {romp:+.3f} | corr {c:.2f}")
