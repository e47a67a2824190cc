"""Measured excess vs the Euler-component prediction, for one setting per command line.

usage: exp_theory.py WIDTH BATCH MODE TARGET_SCALE SEEDS [OUT_DIM] [INIT] [DEPTH]

Prints, in decades of ||d_1||/||d_L|| relative to mean field (L-1)/2 log10 chi:
  logE  = 1/2 log10 mean_seeds(||d_1||^2/||d_L||^2 / chi^(L-1))   (± delta-method SE)
  Elog  = mean_seeds of 1/2 log10(...)                               (± SE), and median
  pred  = 1/2 log10[(1-2/n)^(L-1) + rho (1-(1-2/n)^(L-1))],
          rho = (n/2) E[sum_b (g_b.y_b)^2/||a_L,b||^2] / E||d_L||^2   (top-layer quantities only)
  Euler check: max |<d_l,h_l> - <g,y>| relative, per example (exact for relu/leaky, sigma_b=0)
  per-transition excess profile (measured log E ratio vs recursion prediction), 8 layer bins.
"""
import sys
import time

import numpy as np

import core

n, B, mode, s, S = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], float(sys.argv[4]), int(
    sys.argv[5])
m = int(sys.argv[6]) if len(sys.argv) > 6 else 10
init = sys.argv[7] if len(sys.argv) > 7 else "he"
L = int(sys.argv[8]) if len(sys.argv) > 8 else 64
spec = core.make_spec(n, L, "relu", init, out_dim=m)
c = core.chi(spec)
t0 = time.time()
out = core.run(spec, B, S, mode, s, chunk=min(16, S))
sq = out["sq"].sum(-1)  # (S, L)
r = sq[:, 0] / sq[:, -1] / c ** (L - 1)
logE = 0.5 * np.log10(r.mean())
logE_se = 0.5 * r.std(ddof=1) / np.sqrt(S) / r.mean() / np.log(10)
el = 0.5 * np.log10(r)
A = np.mean(np.sum(out["gy"] ** 2 / out["asq"][:, -1], -1))  # E sum_b (g.y)^2/||a_L||^2
uL = sq[:, -1].mean()
rho = (n / 2) * A / uL
att = (1 - 2 / n) ** (L - 1)
pred = 0.5 * np.log10(att + rho * (1 - att))
eul = np.max(np.abs(out["euler"] - out["gy"][:, None, :]) / np.abs(out["gy"][:, None, :]))
# per-transition profile: measured mean ratio E||d_l||^2 / (chi E||d_l+1||^2); predicted from
# u_l = (1-2/n) u_{l+1} + A_l with A_l = E sum_b (g.y)^2 / (||a_l||^2 chi^(L-l))
msq = sq.mean(0)
meas_step = 0.5 * np.log10(msq[:-1] / msq[1:] / c)  # index l-1: transition l+1 -> l
Al = np.mean(np.sum(out["gy"][:, None, :] ** 2 / out["asq"], -1), 0) / c ** (L - 1 - np.arange(L))
u = np.empty(L)
u[-1] = uL
for l in range(L - 2, -1, -1):
    u[l] = (1 - 2 / n) * u[l + 1] + Al[l]
pred_step = 0.5 * np.log10(u[:-1] / u[1:])
pred_rec = 0.5 * np.log10(u[0] / u[-1])
bins = np.array_split(np.arange(L - 1), 8)
prof = " ".join(f"{meas_step[b].sum():+.3f}/{pred_step[b].sum():+.3f}" for b in bins)
print(f"n={n} B={B} m={m} L={L} {init} {mode} s={s:g} S={S}: logE {logE:+.3f}±{logE_se:.3f} "
      f"Elog {el.mean():+.3f}±{el.std(ddof=1)/np.sqrt(S):.3f} med {np.median(el):+.3f} | "
      f"rho {rho:.2f} pred {pred:+.3f} rec {pred_rec:+.3f} | euler {eul:.1e} "
      f"({time.time()-t0:.0f}s)\n  profile meas/pred per 8 bins (bottom->top): {prof}", flush=True)
