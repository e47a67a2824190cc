"""Closed-form prediction of the ReLU excess (no simulation).

excess(n, L, rho) = 1/2 log10[(1-2/n)^(L-1) + rho (1 - (1-2/n)^(L-1))]   decades of ||d_1||/||d_L||
rho = (v (m+2) + s^2) / (v + s^2):  MSE residual g = y - t, t ~ N(0, s^2 I_m), y_k ~ N(0, v)
     (v = Var y_k = readout sigma_w^2 * E[relu(h_L)^2] = q_L for He; -> huge for Gaussian sigma_w=3)
rho = 1 for an output cotangent independent of the forward pass (then excess = 0 exactly).
The readout layer's own Euler term also enters ||d_L||^2, so the rho that multiplies is
rho_eff = rho / (1 + 2 (rho - 1)/n)   (what excess() uses; rho_eff = 1 when rho = 1).

Recursion behind it (per example, chi-normalised u_l = E||d_l||^2 / chi^(L-l)):
  u_l = (1 - 2/n) u_{l+1} + A,   A = E<g,y>^2/||a_L||^2  (same at every l: Euler <d_l,h_l> = <g,y>)
"""
import numpy as np


def rho_mse(m, v, s):
    return (v * (m + 2) + s**2) / (v + s**2)


def rho_eff(n, rho):
    return rho / (1 + 2 * (rho - 1) / n)


def profile(n, L, rho):
    """Predicted per-transition excess (decades of the norm), index l-1 = transition l+1 -> l."""
    u = np.empty(L)
    u[-1] = 1 - 2 / n + 2 * rho / n  # in units of (readout sigma_w^2 / 2) E||g||^2
    for j in range(L - 2, -1, -1):
        u[j] = (1 - 2 / n) * u[j + 1] + 2 * rho / n
    return 0.5 * np.log10(u[:-1] / u[1:])


def excess(n, L, rho, effective=False):
    """rho: the closed-form top-layer rho (effective=False) or one already including the readout's
    own Euler term in ||d_L||^2, e.g. measured as (n/2) E sum_b <g,y>^2/||a_L||^2 / E||d_L||^2."""
    rho = rho if effective else rho_eff(n, rho)
    att = (1 - 2 / n) ** (L - 1)
    return 0.5 * np.log10(att + rho * (1 - att))


def top_step(n, rho):
    """Excess of the topmost transition (L -> L-1), decades of the norm."""
    return 0.5 * np.log10(1 - 2 / n + 2 * rho / n)


if __name__ == "__main__":
    L, m, v = 64, 10, 2.0
    print("relu He, depth 64, out_dim 10, v = 2: predicted excess (decades of ||d_1||/||d_L||)")
    scales = [0, 0.1, 1, 10, 1000]
    print("width  " + " ".join(f"s={s:<6g}" for s in scales) + "  indep")
    for n in [64, 128, 256, 512, 1024]:
        print(f"{n:5d}  " + " ".join(f"{excess(n, L, rho_mse(m, v, s)):+.3f}  " for s in scales)
              + f"  {excess(n, L, 1.0):+.3f}")
    print("rho:", {s: round(rho_mse(m, v, s), 3) for s in scales})
    p = profile(256, L, rho_mse(m, v, 0))
    print("n=256 s=0 profile: top 8 transitions %.3f, rest %.3f, total %.3f decades"
          % (p[-8:].sum(), p[:-8].sum(), p.sum()))
    print("top transition excess at n=256, s=0: %.4f decades (%.1f %% in ||d||^2)"
          % (p[-1], 100 * (10 ** (2 * p[-1]) - 1)))
