"""PyTorch peers of the training benchmark (``bench_train.py``), written as a careful
researcher would write them without gradstudy.

The problem: runs r = i·seeds + s (learning rate i, seed s; rate-major as the engine lays
them out) of a ReLU MLP, h_1 = x W_1 + b_1, h_l = relu(h_{l-1}) W_l + b_l, logits =
relu(h_depth) W_out + b_out, trained by plain SGD on the mean softmax cross-entropy of a
minibatch per step; the runs of seed s start from the same weights and read the same
minibatches (as the engine's).  Every peer is ``peer(problem, init=None)`` and returns the
minibatch loss of every run and step, (runs, steps).  Given an :class:`Init` (the engine's
initial weights of every seed and its minibatch indices ``idx[s, t]``, handed over as
numpy arrays) it starts from it: the check against the engine.  Given ``None`` it draws
its own inside the call (:func:`sample_init`: He normal kernels N(0, 2σ_w²/fan_in),
biases σ_b·N(0, 1), indices by ``torch.randint``), as a researcher's PyTorch code would:
the timed calls, which so include initialising the runs, as the engine's timed ``train``
does.  The peers do only this (no per-layer monitor records, no evaluation): they do less
work than the engine's ``train``.

* ``per_run_loop``: per run, autograd and ``torch.optim.SGD`` (a Python loop over runs).
* ``stacked``: all runs at once, weights (runs, fan_in, fan_out), ``torch.baddbmm``,
  autograd over the stacked tensors, SGD by hand with each run's learning rate.
* ``func_ensemble``: ``torch.func``: ``stack_module_state`` of one ``nn.Module`` per run,
  ``vmap`` of ``grad_and_value`` of ``functional_call``.
"""

from __future__ import annotations

import copy
import math
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad_and_value, stack_module_state, vmap


class Problem(NamedTuple):
    """The grid: learning rates, training data, the layer sizes ``dims`` (input, hidden …,
    output: ``len(dims) − 1`` dense layers, the last the readout), seeds, steps, minibatch
    size and the init's σ_w, σ_b."""

    rates: torch.Tensor
    x: torch.Tensor
    y: torch.Tensor
    dims: tuple
    seeds: int
    steps: int
    batch: int
    sigma_w: float = 1.0
    sigma_b: float = 0.0

    @property
    def runs(self) -> int:
        return len(self.rates) * self.seeds


class Init(NamedTuple):
    """Every seed's initial weights (layer l: W[l] (seeds, fan_in, fan_out), b[l] (seeds,
    fan_out); the last layer is the readout) and minibatch indices (seeds, steps, batch);
    its ``steps`` are the steps a peer trains."""

    W: list
    b: list
    idx: torch.Tensor

    def first_steps(self, steps: int) -> "Init":
        return self._replace(idx=self.idx[:, :steps])


def problem_from_numpy(rates, x, y, dims, seeds: int, steps: int, batch: int,
                       sigma_w: float = 1.0, sigma_b: float = 0.0) -> Problem:
    """:class:`Problem` from numpy data (copied)."""
    return Problem(_tensor(rates), _tensor(x), _tensor(y, np.int64), tuple(dims), seeds,
                   steps, batch, sigma_w, sigma_b)


def init_from_numpy(params: dict, idx) -> Init:
    """:class:`Init` from the engine's stacked initial parameters (a Flax tree with a
    leading seed axis) and minibatch indices."""
    W = [_tensor(params["input_layer"]["dense"]["kernel"])]
    b = [_tensor(params["input_layer"]["dense"]["bias"])]
    if "hidden" in params:
        hidden = params["hidden"]["dense"]
        W += [_tensor(hidden["kernel"][:, l]) for l in range(hidden["kernel"].shape[1])]
        b += [_tensor(hidden["bias"][:, l]) for l in range(hidden["bias"].shape[1])]
    W.append(_tensor(params["readout"]["dense"]["kernel"]))
    b.append(_tensor(params["readout"]["dense"]["bias"]))
    return Init(W, b, _tensor(idx, np.int64))


def _tensor(a, dtype=np.float32):
    return torch.from_numpy(np.array(a, dtype, order="C"))  # a writable copy


def he_stds(p: Problem) -> list:
    """He normal's entry standard deviations σ_w·√(2/fan_in), one per layer."""
    return [p.sigma_w * math.sqrt(2.0 / fan_in) for fan_in in p.dims[:-1]]


def sample_init(p: Problem, seeds: int | None = None) -> Init:
    """A fresh :class:`Init` for ``seeds`` seeds (default all), drawn with torch's global
    generator: He normal kernels, σ_b·N(0, 1) biases, uniform minibatch indices."""
    S = p.seeds if seeds is None else seeds
    pairs = zip(p.dims[:-1], p.dims[1:])
    W = [torch.randn(S, fi, fo) * std for (fi, fo), std in zip(pairs, he_stds(p))]
    b = [torch.randn(S, fo) * p.sigma_b for fo in p.dims[1:]]
    return Init(W, b, torch.randint(0, p.x.shape[0], (S, p.steps, p.batch)))


def _forward(W, b, a):
    for l in range(len(W) - 1):
        a = torch.relu(torch.addmm(b[l], a, W[l]))
    return torch.addmm(b[-1], a, W[-1])


# ------------------------------------------------------------------- (a) per-run loop
def per_run_loop(p: Problem, init: Init | None = None, runs=None) -> torch.Tensor:
    """Each run (all of them, or the run numbers ``runs``) after the other; losses
    (len(runs), steps).  Without ``init`` each run draws its own weights and minibatches
    when it starts (so timing some of the runs and scaling is fair)."""
    runs = range(p.runs) if runs is None else runs
    steps = p.steps if init is None else init.idx.shape[1]
    losses = torch.empty(len(runs), steps)
    for n, r in enumerate(runs):
        i, s = divmod(int(r), p.seeds)
        mine, s = (sample_init(p, 1), 0) if init is None else (init, s)
        W = [w[s].clone().requires_grad_() for w in mine.W]
        b = [v[s].clone().requires_grad_() for v in mine.b]
        opt = torch.optim.SGD(W + b, lr=float(p.rates[i]))
        for t in range(steps):
            rows = mine.idx[s, t]
            loss = F.cross_entropy(_forward(W, b, p.x[rows]), p.y[rows])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses[n, t] = loss.detach()
    return losses


# ------------------------------------------------------------ (b) stacked ensemble
def stacked(p: Problem, init: Init | None = None) -> torch.Tensor:
    """All runs as one batched network; losses (runs, steps)."""
    init = sample_init(p) if init is None else init
    R, S, nr = p.runs, p.seeds, len(p.rates)
    steps, batch = init.idx.shape[1:]
    W = [w.repeat(nr, 1, 1).requires_grad_() for w in init.W]  # run i·S + s: seed s
    b = [v.repeat(nr, 1)[:, None].contiguous().requires_grad_() for v in init.b]
    params = W + b
    neg_lr = (-p.rates).repeat_interleave(S).view(R, 1, 1)
    idx = init.idx.repeat(nr, 1, 1)
    losses = torch.empty(R, steps)
    for t in range(steps):
        rows = idx[:, t]
        a = p.x[rows]
        for l in range(len(W) - 1):
            a = torch.relu(torch.baddbmm(b[l], a, W[l]))
        logits = torch.baddbmm(b[-1], a, W[-1])
        per_run = F.cross_entropy(logits.reshape(R * batch, -1), p.y[rows].reshape(-1),
                                  reduction="none").view(R, batch).mean(1)
        # the sum's gradient w.r.t. run r's weights is that of run r's own loss
        grads = torch.autograd.grad(per_run.sum(), params)
        with torch.no_grad():
            for w, g in zip(params, grads):
                w.addcmul_(g, neg_lr)
            losses[:, t] = per_run
    return losses


# ---------------------------------------------------------- (c) torch.func ensemble
class TrainMLP(nn.Module):
    """The network as an ``nn.Module`` (one per run for ``stack_module_state``)."""

    def __init__(self, W: list, b: list):
        super().__init__()
        self.layers = nn.ModuleList()
        for w, v in zip(W, b):
            layer = nn.Linear(*w.shape)
            with torch.no_grad():
                layer.weight.copy_(w.T)
                layer.bias.copy_(v)
            self.layers.append(layer)

    def forward(self, x):
        for layer in self.layers[:-1]:
            x = torch.relu(layer(x))
        return self.layers[-1](x)


def func_ensemble(p: Problem, init: Init | None = None) -> torch.Tensor:
    """``vmap(grad_and_value(functional_call))`` over the stacked runs; losses (runs,
    steps)."""
    init = sample_init(p) if init is None else init
    R, S, nr = p.runs, p.seeds, len(p.rates)
    steps = init.idx.shape[1]
    models = [TrainMLP([w[r % S] for w in init.W], [v[r % S] for v in init.b])
              for r in range(R)]
    params, _ = stack_module_state(models)
    params = {k: v.detach() for k, v in params.items()}
    base = copy.deepcopy(models[0]).to("meta")

    def loss_fn(params, x, y):
        return F.cross_entropy(functional_call(base, params, (x,)), y)

    step = vmap(grad_and_value(loss_fn))
    lr = p.rates.repeat_interleave(S)
    neg_lr = {k: -lr.view((R,) + (1,) * (v.dim() - 1)) for k, v in params.items()}
    idx = init.idx.repeat(nr, 1, 1)
    losses = torch.empty(R, steps)
    with torch.no_grad():  # grad_and_value differentiates regardless
        for t in range(steps):
            rows = idx[:, t]
            grads, value = step(params, p.x[rows], p.y[rows])
            for k, v in params.items():
                v.addcmul_(grads[k], neg_lr[k])
            losses[:, t] = value
    return losses


PEERS = {"stacked": stacked, "func_ensemble": func_ensemble}
