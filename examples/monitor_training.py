"""Watch per-layer gradients during an ordinary Optax training loop.

A plain-Flax 6-layer tanh MLP is fit to a synthetic regression with Adam for 200 steps.
The only change to the usual loop is the optimizer line, which puts a
:func:`gradstudy.tools.monitor` in the chain; afterwards the monitor state is turned into
an xarray Dataset and drawn as a layer x step heatmap.

    python examples/monitor_training.py [figures/examples/monitor_heatmap.png]
        [--placement first|last|wrap]

``--placement`` chooses what the monitor sees: ``first`` (the raw gradients),
``last`` (the final Adam updates ΔW) or ``wrap`` (default: both gradients and ΔW, the form
to use for update/parameter ratios ‖ΔW_l‖/‖W_l‖).  Runs in a few seconds on a CPU.
"""

from __future__ import annotations

import argparse
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from gradstudy.tools import monitor, monitor_dataset, plot_monitor_heatmap

STEPS, DEPTH, WIDTH, IN_DIM, BATCH = 200, 6, 32, 8, 128


class TanhMLP(nn.Module):
    depth: int = DEPTH
    width: int = WIDTH

    @nn.compact
    def __call__(self, x):
        for _ in range(self.depth - 1):
            x = jnp.tanh(nn.Dense(self.width)(x))
        return nn.Dense(1)(x)


def make_data(key):
    """y = sin(x·w) + 0.5 cos(2 x·v) + noise, x ~ N(0, I)."""
    kx, kw, kv, kn = jax.random.split(key, 4)
    x = jax.random.normal(kx, (BATCH * 8, IN_DIM))
    w = jax.random.normal(kw, (IN_DIM,)) / jnp.sqrt(IN_DIM)
    v = jax.random.normal(kv, (IN_DIM,)) / jnp.sqrt(IN_DIM)
    y = jnp.sin(x @ w) + 0.5 * jnp.cos(2 * x @ v) + 0.05 * jax.random.normal(kn, x.shape[:1])
    return x, y[:, None]


def make_optimizer(placement: str) -> optax.GradientTransformation:
    if placement == "first":  # sees raw gradients
        return optax.chain(monitor(every=10, capacity=64), optax.adam(1e-3))
    if placement == "last":  # sees the final updates ΔW
        return optax.chain(optax.adam(1e-3), monitor(every=10, capacity=64))
    return monitor(every=10, capacity=64, inner=optax.adam(1e-3))  # sees both


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", nargs="?", default="figures/examples/monitor_heatmap.png")
    parser.add_argument("--placement", choices=("first", "last", "wrap"), default="wrap")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()

    model = TanhMLP()
    x, y = make_data(jax.random.key(0))
    params = model.init(jax.random.key(1), x[:1])
    tx = make_optimizer(args.placement)
    opt_state = tx.init(params)

    def loss_fn(params, xb, yb):
        return jnp.mean((model.apply(params, xb) - yb) ** 2)

    @jax.jit
    def train_step(params, opt_state, key):
        idx = jax.random.choice(key, x.shape[0], (BATCH,), replace=False)
        loss, grads = jax.value_and_grad(loss_fn)(params, x[idx], y[idx])
        updates, opt_state = tx.update(grads, opt_state, params)  # params: for ‖ΔW‖/‖W‖
        return optax.apply_updates(params, updates), opt_state, loss

    key = jax.random.key(2)
    for step in range(STEPS):
        key, sub = jax.random.split(key)
        params, opt_state, loss = train_step(params, opt_state, sub)
        if step % 50 == 0 or step == STEPS - 1:
            print(f"step {step:4d}  loss {float(loss):.4f}")

    ds = monitor_dataset(opt_state, params)  # finds the monitor state inside the chain
    print(ds)
    plot_monitor_heatmap(ds, args.path,
                         title=f"6-layer tanh MLP, Adam 1e-3, monitor {args.placement}")
    print(f"wrote {args.path} (+ .pdf) in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
