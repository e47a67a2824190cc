"""Shared setup for the ReLU-excess study: the exact depth_profile networks, any output cotangent.

Weights, inputs and targets come from gradstudy.families.mlp.sample_network (same PRNG keys as a
gradstudy sweep with base_seed=0, so seeds 0..15 are the paper's networks). The forward and
backward passes are written out here so that the output cotangent can be chosen:

  mode="mse"   : g = (y - s*t)/B       (MSE loss with targets scaled by s; s=1 is the study)
  mode="indep" : g = u/B, u ~ N(0,1)   (L = <y, u>/B; u independent of the network)
  mode="indep_matched": g = |y - t|-matched random direction: u * ||y-t|| / ||u|| per example

Returned per seed: sq[l, b] = ||dL/dh_l||^2 for example b (l = 0..L-1 is layer 1..L),
plus forward ||h_l||^2 per example and the Euler product <h_l, delta_l> per example.
"""
import functools

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from gradstudy.nn import LEAKY_RELU_SLOPE  # noqa: E402
from gradstudy.families.mlp import MLPSpec  # noqa: E402
from gradstudy.families.mlp import sample_network  # noqa: E402
from gradstudy._seeds import seed_keys  # noqa: E402

INITS = {"he": ("he_normal", 1.0), "gauss3": ("gaussian", 3.0)}


def make_spec(width, depth, act="relu", init="he", out_dim=10):
    fam, gain = INITS[init]
    return MLPSpec(width=width, depth=depth, activation=act, init=fam, sigma_w=gain,
                   out_dim=out_dim, dtype="float64")


def chi(spec):
    a2 = 0.0 if spec.activation == "relu" else LEAKY_RELU_SLOPE**2
    return spec.sigma_w2() * (1 + a2) / 2


def _act(act):
    if act == "relu":
        return jax.nn.relu, lambda h: (h > 0).astype(h.dtype)
    a = LEAKY_RELU_SLOPE
    return (lambda h: jnp.where(h > 0, h, a * h)), (lambda h: jnp.where(h > 0, 1.0, a))


def one_seed(spec, batch, mode, target_scale, key):
    phi, dphi = _act(spec.activation)
    params, x, t = sample_network(spec.static_key(), key, batch, 1.0, spec.kernel_scales(), 0.0)
    K0 = params["input_layer"]["dense"]["kernel"]
    Ks = params["hidden"]["dense"]["kernel"]
    Kout = params["readout"]["dense"]["kernel"]
    h1 = x @ K0

    def fwd(h, K):
        hn = phi(h) @ K
        return hn, hn

    _, hs = jax.lax.scan(fwd, h1, Ks)
    hs = jnp.concatenate([h1[None], hs])  # (L, B, n)
    y = phi(hs[-1]) @ Kout
    if mode == "mse":
        g = (y - target_scale * t) / batch
    elif mode == "indep":
        u = jax.random.normal(jax.random.fold_in(key, 12345), y.shape, y.dtype)
        g = u / batch
    elif mode == "indep_matched":
        u = jax.random.normal(jax.random.fold_in(key, 12345), y.shape, y.dtype)
        r = y - target_scale * t
        g = u / jnp.linalg.norm(u, axis=1, keepdims=True) * jnp.linalg.norm(r, axis=1,
                                                                             keepdims=True) / batch
    else:
        raise ValueError(mode)
    dL = dphi(hs[-1]) * (g @ Kout.T)

    def bwd(d, inp):
        K, h = inp  # K maps layer l -> l+1, h = h_l
        dn = dphi(h) * (d @ K.T)
        return dn, dn

    _, ds = jax.lax.scan(bwd, dL, (Ks, hs[:-1]), reverse=True)
    ds = jnp.concatenate([ds, dL[None]])  # (L, B, n): delta_1..delta_L
    return {"sq": jnp.sum(ds**2, -1), "hsq": jnp.sum(hs**2, -1),
            "euler": jnp.sum(ds * hs, -1), "gy": jnp.sum(g * y, -1),
            "asq": jnp.sum(phi(hs) ** 2, -1), "gsq": jnp.sum(g**2, -1),
            "ysq": jnp.sum(y**2, -1)}


@functools.lru_cache(maxsize=None)
def _program(spec, batch, mode, chunk):
    f = jax.vmap(lambda k, s: one_seed(spec, batch, mode, s, k), in_axes=(0, None))

    @jax.jit
    def run(keys, scale):
        ks = keys.reshape((-1, chunk) + keys.shape[1:])
        out = jax.lax.map(lambda kk: f(kk, scale), ks)
        return jax.tree.map(lambda a: a.reshape((-1,) + a.shape[2:]), out)

    return run


def run(spec, batch, seeds, mode="mse", target_scale=1.0, chunk=16, first_seed=0):
    chunk = min(chunk, seeds)
    assert seeds % chunk == 0
    keys = seed_keys(0, first_seed + seeds)[first_seed:]
    out = _program(spec, batch, mode, chunk)(keys, jnp.float64(target_scale))
    return {k: np.asarray(v) for k, v in out.items()}


def excess_decades(out, spec):
    """Per seed: log10 ||d_1||/||d_L|| (batch-summed) minus mean field (L-1)/2 log10 chi."""
    sq = out["sq"].sum(-1)  # (S, L)
    L = sq.shape[1]
    return 0.5 * np.log10(sq[:, 0] / sq[:, -1]) - 0.5 * (L - 1) * np.log10(chi(spec))


def mean_se(v):
    v = np.asarray(v)
    return float(v.mean()), float(v.std(ddof=1) / np.sqrt(len(v)))
