"""Side check behind the paper's BatchNorm-CNN paragraph (not part of ``make figures``).

Prints (1) the per-layer growth of ‖∂L/∂h‖² in BatchNorm→ReLU conv stacks of depth 50 at init
(He, circular padding, batch 32, length 40, 8 seeds; slope of log‖δ_l‖² over layers 5..44)
for kernels of 1, 3 and 5 taps and several channel counts, and (2) a Monte-Carlo evaluation
of the infinite-width mean-field recursion of Yang et al. 2019 for fully connected
BN→ReLU layers at batch n (n = 32 and n = 32 × 40 = 1280), with its standard error over
power-iteration steps.  Run: ``.venv/bin/python paper/side_checks/batchnorm_conv_rate.py``
(about 5 min on 2 cores).

References:
  Yang, Pennington, Rao, Sohl-Dickstein & Schoenholz 2019, A mean field theory of batch
  normalization (the π/(π−1) large-batch rate for ReLU).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np

from gradstudy import Sweep
from gradstudy._xla import default_xla_flags
from gradstudy.families.cnn import CNNSpec
from gradstudy.engine import run_sweep_arrays


def measured_rate(kernel, channels, depth=50, seeds=8):
    spec = CNNSpec(depth=depth, channels=channels, kernel_size=kernel, padding="circular",
                   block="batchnorm", init="he_normal")
    b = np.asarray(run_sweep_arrays(Sweep(points=(spec,), depths=(depth,), seeds=seeds,
                                          batch=32, loss="linear"),
                                    progress=False)["backprop_norm"])[0]
    log_sq = np.log10(b ** 2).mean(0)
    layers = np.arange(5, depth - 5)
    return 10 ** -np.polyfit(layers, log_sq[layers], 1)[0]


def _batchnorm(z):
    centred = z - z.mean(-1, keepdims=True)
    scale = jnp.sqrt((centred ** 2).mean(-1, keepdims=True))
    return centred / scale, scale


def mean_field_rate(n, sigma_w2=2.0, forward=30, backward=40, samples=2048, seed=0):
    """Top eigenvalue of the mean-field gradient-covariance map of BN→ReLU at batch n.

    Forward: Σ ← σ_w² E[φ(x̂) φ(x̂)ᵀ], z ~ N(0, Σ), x̂ = BN(z).  Backward (gradient
    independence): G ← σ_w² E[J_BNᵀ D G D J_BN], D = diag φ'(x̂).  Both expectations by
    Monte Carlo; the symmetric (exchangeable) part is kept, which the fixed point has.
    """
    # float64: __main__ enables it after the float32 network measurements
    key = jax.random.PRNGKey(seed)
    eye, ones = jnp.eye(n), jnp.ones((n, n))

    def symmetric(m):
        diag = jnp.trace(m) / n
        off = (m.sum() - jnp.trace(m)) / (n * (n - 1))
        return diag * eye + off * (ones - eye)

    @jax.jit
    def forward_step(sigma, key):
        z = jax.random.normal(key, (samples, n)) @ jnp.linalg.cholesky(sigma).T
        phi = jnp.maximum(_batchnorm(z)[0], 0)
        return symmetric(sigma_w2 * phi.T @ phi / samples)

    sigma = eye
    for _ in range(forward):
        key, sub = jax.random.split(key)
        sigma = forward_step(sigma, sub)

    @jax.jit
    def backward_step(g, key):
        chol = jnp.linalg.cholesky(sigma)

        def one(acc, e):
            xhat, s = _batchnorm(chol @ e)
            d = (xhat > 0).astype(e.dtype)
            x = d[:, None] * (sigma_w2 * g) * d[None, :]
            x = x - x.mean(0, keepdims=True)
            x = x - x.mean(1, keepdims=True)  # P x P, P the centring projection
            u = xhat / jnp.sqrt(n)
            xu = x @ u
            x = x - jnp.outer(u, xu) - jnp.outer(xu, u) + jnp.outer(u, u) * (u @ xu)
            return acc + x / s ** 2, None

        acc, _ = jax.lax.scan(one, jnp.zeros((n, n)),
                              jax.random.normal(key, (samples, n)))
        new = symmetric(acc / samples)
        return new / jnp.trace(new), jnp.trace(new) / jnp.trace(g)

    g, rates = eye / n, []
    for _ in range(backward):
        key, sub = jax.random.split(key)
        g, r = backward_step(g, sub)
        rates.append(float(r))
    rates = np.asarray(rates[10:])
    return rates.mean(), rates.std(ddof=1) / np.sqrt(rates.size)


if __name__ == "__main__":
    default_xla_flags()
    for kernel, channels in ((1, 16), (1, 32), (1, 64), (3, 16), (3, 64), (3, 128), (5, 64)):
        print(f"measured, kernel {kernel}, {channels} channels: "
              f"{measured_rate(kernel, channels):.4f}", flush=True)
    jax.config.update("jax_enable_x64", True)
    print(f"pi/(pi-1) = {math.pi / (math.pi - 1):.4f}")
    for n, samples in ((32, 2048), (1280, 128)):
        rate, se = mean_field_rate(n, samples=samples)
        print(f"mean field, fully connected, batch {n}: {rate:.4f} ± {se:.4f}", flush=True)
