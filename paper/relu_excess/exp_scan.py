"""Width x target-scale scan (relu, He, depth 64) from ONE forward + 3 backward passes per seed.

The backward pass is linear in the output cotangent, so with delta(g) the signal for cotangent g:
  g(s) = (y - s t)/B  ->  ||delta_l(s)||^2 = YY_l - 2 s YT_l + s^2 TT_l
where YY, YT, TT are the batch-summed Gram entries of delta(y/B) and delta(t/B). A third
backward pass uses an independent cotangent u ~ N(0,1) (L = <y,u>/B), the control.

usage: exp_scan.py BATCH SEEDS WIDTH[,WIDTH...] [OUT_DIM] [DEPTH]   -> appends to scan.txt
Per (width, s): excess of log10 ||d_1||/||d_L|| over mean field, as
  logE (log of the seed-mean of the squared ratio; ± delta-method SE), Elog (mean ± SE),
  median, and the top-layer prediction pred = 1/2 log10[(1-2/n)^(L-1) + rho (1-(1-2/n)^(L-1))].
"""
import functools
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import core
from gradstudy.families.mlp import sample_network
from gradstudy._seeds import seed_keys

SCALES = [0.0, 0.1, 1.0, 10.0, 1000.0]


def one_seed(spec, batch, key):
    params, x, t = sample_network(spec.static_key(), key, batch, 1.0, spec.kernel_scales(), 0.0)
    K0 = params["input_layer"]["dense"]["kernel"]
    Ks = params["hidden"]["dense"]["kernel"]
    Kout = params["readout"]["dense"]["kernel"]
    h1 = x @ K0
    _, hs = jax.lax.scan(lambda h, K: ((jax.nn.relu(h) @ K,) * 2), h1, Ks)
    hs = jnp.concatenate([h1[None], hs])
    aL = jax.nn.relu(hs[-1])
    y = aL @ Kout
    u = jax.random.normal(jax.random.fold_in(key, 12345), y.shape, y.dtype)
    g = jnp.stack([y, t, u]) / batch  # (3, B, m)
    dL = (hs[-1] > 0) * (g @ Kout.T)

    def bwd(d, inp):
        K, h = inp
        dn = (h > 0) * (d @ K.T)
        return dn, dn

    _, ds = jax.lax.scan(bwd, dL, (Ks, hs[:-1]), reverse=True)
    ds = jnp.concatenate([ds, dL[None]])  # (L, 3, B, n)
    gram = jnp.einsum("libn,ljbn->lij", ds, ds)  # (L, 3, 3) batch-summed
    return {"gram": gram, "yy": jnp.sum(y * y, -1), "ty": jnp.sum(t * y, -1),
            "uy": jnp.sum(u * y, -1), "aL2": jnp.sum(aL**2, -1)}


@functools.lru_cache(maxsize=None)
def program(spec, batch, chunk):
    f = jax.vmap(lambda k: one_seed(spec, batch, k))

    @jax.jit
    def run(keys):
        out = jax.lax.map(f, keys.reshape((-1, chunk) + keys.shape[1:]))
        return jax.tree.map(lambda a: a.reshape((-1,) + a.shape[2:]), out)

    return run


def summarize(sq, top_gy2, n, B, L, c):
    """sq (S, L) batch-summed ||delta_l||^2, top_gy2 (S,) sum_b (g.y)^2/||a_L||^2."""
    S = sq.shape[0]
    r = sq[:, 0] / sq[:, -1] / c ** (L - 1)
    logE = 0.5 * np.log10(r.mean())
    logE_se = 0.5 * r.std(ddof=1) / np.sqrt(S) / r.mean() / np.log(10)
    el = 0.5 * np.log10(r)
    rho = (n / 2) * top_gy2.mean() / sq[:, -1].mean()
    att = (1 - 2 / n) ** (L - 1)
    pred = 0.5 * np.log10(att + rho * (1 - att))
    step = 0.5 * np.log10(sq[:, :-1] / sq[:, 1:] / c)
    top8 = step[:, -8:].sum(1)
    return dict(logE=logE, logE_se=logE_se, Elog=el.mean(), Elog_se=el.std(ddof=1) / np.sqrt(S),
                med=np.median(el), npos=int((el > 0).sum()), rho=rho, pred=pred,
                top8=top8.mean(), top8_se=top8.std(ddof=1) / np.sqrt(S))


def main():
    B, S = int(sys.argv[1]), int(sys.argv[2])
    widths = [int(w) for w in sys.argv[3].split(",")]
    m = int(sys.argv[4]) if len(sys.argv) > 4 else 10
    L = int(sys.argv[5]) if len(sys.argv) > 5 else 64
    for n in widths:
        spec = core.make_spec(n, L, "relu", "he", out_dim=m)
        c = core.chi(spec)
        t0 = time.time()
        o = {k: np.asarray(v) for k, v in program(spec, B, min(int(os.environ.get("CHUNK", 16)), S))(seed_keys(0, S)).items()}
        G = o["gram"]  # (S, L, 3, 3)
        np.savez(f"scan_n{n}_B{B}_m{m}_L{L}_S{S}.npz", **o)
        rows = []
        for s in SCALES:
            sq = G[..., 0, 0] - 2 * s * G[..., 0, 1] + s**2 * G[..., 1, 1]
            gy = (o["yy"] - s * o["ty"]) / B
            rows.append((f"s={s:g}", summarize(sq, np.sum(gy**2 / o["aL2"], -1), n, B, L, c)))
        rows.append(("indep", summarize(G[..., 2, 2], np.sum((o["uy"] / B) ** 2 / o["aL2"], -1),
                                        n, B, L, c)))
        with open("scan.txt", "a") as fh:
            for name, d in rows:
                line = (f"n={n:5d} B={B:3d} m={m:2d} L={L} S={S:4d} {name:8s} "
                        f"logE {d['logE']:+.3f}±{d['logE_se']:.3f} "
                        f"Elog {d['Elog']:+.3f}±{d['Elog_se']:.3f} med {d['med']:+.3f} "
                        f"pos {d['npos']:4d}/{S} | rho {d['rho']:6.2f} pred {d['pred']:+.3f} | "
                        f"top8 {d['top8']:+.3f}±{d['top8_se']:.3f}")
                print(line, flush=True)
                fh.write(line + "\n")
        print(f"  ({time.time() - t0:.0f}s)", flush=True)


if __name__ == "__main__":
    main()
