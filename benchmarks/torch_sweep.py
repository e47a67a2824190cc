"""PyTorch peers of the sweep benchmark (``bench_sweep.py``), written as a careful
researcher would write them without gradstudy.

The problem: for every seed s and depth d, the depth-d network made of the first d layers
of seed s's max-depth stack and the shared readout, y = W_out φ(h_d) + b_out with
h_1 = W_1 x + b_1, h_l = W_l φ(h_{l-1}) + b_l, the MSE loss L = ½ mean_batch ‖y − t‖², and
per layer l ≤ d the norms ‖∂L/∂h_l‖_F ("backprop_norm"), ‖∂L/∂W_l‖_F ("weight_grad_norm")
and ‖∂L/∂b_l‖ ("bias_grad_norm").  Every peer returns them as (seeds, depths, max depth)
arrays, NaN beyond a depth's last layer, as the engine does.

* ``autograd_loop``: per (seed, depth) a forward pass and ``torch.autograd.grad``.
* ``func_vmap``: per depth one ``torch.func.vmap`` over the seeds of ``torch.func.grad``
  through ``functional_call`` of an ``nn.Module`` (zero perturbations give ∂L/∂h_l).
* ``handwritten``: gradstudy's algorithm by hand: one forward pass through all layers for
  all seeds (batched matmuls over the seed axis), the cotangents of all depths ≥ l stacked
  and pulled back together, weight-gradient norms by the Gram identity
  ‖aᵀg‖_F² = Σ (a aᵀ)⊙(g gᵀ) when width ≥ batch (cheaper there), by forming aᵀg otherwise.
* ``compiled``: ``torch.compile`` of ``handwritten``.

Every peer is a function ``peer(nets=None)`` (:func:`make_peer`).  Given the engine's own
weights and data (drawn by JAX, handed over as numpy arrays) it runs on them: that is the
check against the engine, before anything is timed.  Given ``None`` it first draws its own
with torch's RNG, from the distributions the engine draws from (:func:`sample_networks`),
as a researcher's PyTorch code would: the timed calls, so that they include the sampling
the engine's timed program does (16 seeds of a 64-layer width-256 stack: 67 M normals).
"""

from __future__ import annotations

import functools
import math
from typing import Callable, NamedTuple

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, grad, vmap

NAMES = ("backprop_norm", "weight_grad_norm", "bias_grad_norm")
# φ and φ' written through a = φ(h), so that the forward pass keeps only the activations
ACTIVATIONS = {
    "tanh": (torch.tanh, lambda a: 1 - a * a),
    "relu": (torch.relu, lambda a: (a > 0).to(a.dtype)),
}


class Networks(NamedTuple):
    """All seeds' max-depth networks, the seed axis first: per layer l a kernel W[l]
    (seeds, fan_in, width) with z = a @ W + b and a bias b[l] (seeds, 1, width); the
    readout (seeds, width, out), (seeds, 1, out); inputs x (seeds, batch, in) and targets
    t (seeds, batch, out)."""

    W: list
    b: list
    W_out: torch.Tensor
    b_out: torch.Tensor
    x: torch.Tensor
    t: torch.Tensor


def networks_from_numpy(w_in, b_in, w_hidden, b_hidden, w_out, b_out, x, t) -> Networks:
    """:class:`Networks` from the engine's arrays: ``w_hidden`` (seeds, depth − 1, w, w).

    Every layer's kernel becomes its own contiguous (seeds, fan_in, width) tensor, the
    layout the peers' batched matmuls read fastest.
    """
    def T(a):
        return torch.from_numpy(np.array(a, np.float32, order="C"))  # a writable copy

    W = [T(w_in)] + [T(w_hidden[:, l]) for l in range(w_hidden.shape[1])]
    b = [T(b_in)[:, None]] + [T(b_hidden[:, l])[:, None] for l in range(b_hidden.shape[1])]
    return Networks(W, b, T(w_out), T(b_out)[:, None], T(x), T(t))


class Sizes(NamedTuple):
    """What :func:`sample_networks` draws: ``seeds`` max-depth (``depth``) networks
    ``in_dim`` → ``width`` → … → ``out_dim``, a batch of ``batch`` inputs each, and the
    distributions: kernels N(0, σ_w²/fan_in), biases σ_b·N(0, 1), inputs N(0, input_std²),
    targets N(0, 1) (gradstudy's ``gaussian`` init and ``sample_network``)."""

    seeds: int
    batch: int
    in_dim: int
    width: int
    out_dim: int
    depth: int
    sigma_w: float
    sigma_b: float
    input_std: float = 1.0


def kernel_stds(sizes: Sizes) -> tuple[float, float, float]:
    """Entry standard deviations σ_w/√fan_in of the input layer, the hidden layers and the
    readout (fan-ins ``in_dim``, ``width``, ``width``)."""
    return tuple(sizes.sigma_w / math.sqrt(fan_in)
                 for fan_in in (sizes.in_dim, sizes.width, sizes.width))


def sample_networks(sizes: Sizes, transposed: bool = False) -> Networks:
    """Fresh :class:`Networks` drawn with ``torch.randn`` (the global generator).

    ``transposed`` stores every kernel as (seeds, width, fan_in) memory, ``nn.Linear``'s
    layout (the tensors still have the (seeds, fan_in, width) shape of :class:`Networks`),
    for the ``torch.func`` peer, which would otherwise copy every kernel once per call.
    """
    S, w = sizes.seeds, sizes.width
    std_in, std_hidden, std_out = kernel_stds(sizes)

    def kernel(fan_in, fan_out, std):
        if transposed:
            return (torch.randn(S, fan_out, fan_in) * std).transpose(1, 2)
        return torch.randn(S, fan_in, fan_out) * std

    W = [kernel(sizes.in_dim, w, std_in)]
    W += [kernel(w, w, std_hidden) for _ in range(sizes.depth - 1)]
    b = [torch.randn(S, 1, w) * sizes.sigma_b for _ in range(sizes.depth)]
    return Networks(W, b, kernel(w, sizes.out_dim, std_out),
                    torch.randn(S, 1, sizes.out_dim) * sizes.sigma_b,
                    torch.randn(S, sizes.batch, sizes.in_dim) * sizes.input_std,
                    torch.randn(S, sizes.batch, sizes.out_dim))


def _empty(nets: Networks, depths) -> dict:
    shape = (nets.x.shape[0], len(depths), depths[-1])
    return {k: torch.full(shape, float("nan")) for k in NAMES}


def _mse(y, t):
    return 0.5 * (y - t).square().sum(-1).mean()


# ----------------------------------------------------------------- (a) autograd loop
def autograd_loop(nets: Networks, depths, activation: str) -> dict:
    """Per seed and depth: forward d layers, ``torch.autograd.grad`` w.r.t. the weights,
    biases and pre-activations h_l (which are ∂L/∂h_l)."""
    phi = ACTIVATIONS[activation][0]
    out = _empty(nets, depths)
    for s in range(nets.x.shape[0]):
        Ws = [w[s].detach().requires_grad_() for w in nets.W]
        bs = [b[s, 0].detach().requires_grad_() for b in nets.b]
        x, t, W_out, b_out = nets.x[s], nets.t[s], nets.W_out[s], nets.b_out[s, 0]
        for j, d in enumerate(depths):
            a, hs = x, []
            for l in range(d):
                h = torch.addmm(bs[l], a, Ws[l])
                hs.append(h)
                a = phi(h)
            loss = _mse(torch.addmm(b_out, a, W_out), t)
            grads = torch.autograd.grad(loss, Ws[:d] + bs[:d] + hs)
            with torch.no_grad():
                norms = torch.stack(torch._foreach_norm(grads)).view(3, d)
                out["weight_grad_norm"][s, j, :d] = norms[0]
                out["bias_grad_norm"][s, j, :d] = norms[1]
                out["backprop_norm"][s, j, :d] = norms[2]
    return out


# -------------------------------------------------------------- (b) torch.func vmap
class TorchMLP(nn.Module):
    """The depth-d network as an ``nn.Module``; ``pert[l]`` (zeros) is added to h_l so that
    its gradient is ∂L/∂h_l.  ``pert`` is a tuple of per-layer tensors: slicing one
    (d, B, w) tensor would make every layer's backward scatter into a full-size zero
    tensor (quadratic in depth; 7 s instead of 0.3 s at depth 64)."""

    def __init__(self, depth: int, in_dim: int, width: int, out_dim: int, activation: str):
        super().__init__()
        self.phi = ACTIVATIONS[activation][0]
        self.layers = nn.ModuleList(nn.Linear(in_dim if l == 0 else width, width)
                                    for l in range(depth))
        self.readout = nn.Linear(width, out_dim)

    def forward(self, x, pert):
        a = x
        for l, layer in enumerate(self.layers):
            a = self.phi(layer(a) + pert[l])
        return self.readout(a)


class FuncVmap(NamedTuple):
    """Per depth: the vmapped norm function and the zero perturbations."""

    fns: dict
    pert: dict


def func_vmap_setup(sizes: Sizes, depths, activation: str) -> FuncVmap:
    """Modules (on the meta device: functional_call supplies every tensor) and one
    ``vmap(grad(...))`` per depth; no weights (each call brings its own)."""
    S, B, width = sizes.seeds, sizes.batch, sizes.width
    fns, pert = {}, {}
    for d in depths:
        model = TorchMLP(d, sizes.in_dim, width, sizes.out_dim, activation).to("meta")
        pert[d] = tuple(torch.zeros(S, B, width) for _ in range(d))

        def norms(p, x, t, e, model=model, d=d):
            def loss(p, e):
                return _mse(functional_call(model, p, (x, e)), t)

            gp, ge = grad(loss, argnums=(0, 1))(p, e)
            w = torch.stack([gp[f"layers.{l}.weight"].square().sum() for l in range(d)])
            b = torch.stack([gp[f"layers.{l}.bias"].square().sum() for l in range(d)])
            h = torch.stack([g.square().sum() for g in ge])
            return h.sqrt(), w.sqrt(), b.sqrt()

        fns[d] = vmap(norms)
    return FuncVmap(fns, pert)


def func_vmap(nets: Networks, depths, state: FuncVmap) -> dict:
    """Per depth one vmapped call over all seeds; the weights in ``nn.Linear``'s (out, in)
    layout (a copy, unless they were drawn so: ``sample_networks(transposed=True)``)."""
    lin_w = [w.transpose(1, 2).contiguous() for w in nets.W]
    lin_b = [b[:, 0] for b in nets.b]
    readout = {"readout.weight": nets.W_out.transpose(1, 2).contiguous(),
               "readout.bias": nets.b_out[:, 0]}
    out = _empty(nets, depths)
    with torch.no_grad():  # torch.func.grad differentiates regardless
        for j, d in enumerate(depths):
            p = dict(readout)
            for l in range(d):
                p[f"layers.{l}.weight"], p[f"layers.{l}.bias"] = lin_w[l], lin_b[l]
            got = state.fns[d](p, nets.x, nets.t, state.pert[d])
            for name, value in zip(NAMES, got):
                out[name][:, j, :d] = value
    return out


# ----------------------------------------------------- (c) hand-written backward pass
def use_gram(width: int, batch: int) -> bool:
    """Gram identity (B² per layer and depth) where it is cheaper than aᵀg (B·fan_in)."""
    return width >= batch


def handwritten(W: list, b: list, W_out, b_out, x, t, *, depths: tuple, activation: str,
                gram: bool):
    """(backprop, weight, bias) norm tensors (seeds, depths, max depth) by hand.

    The cotangent stack holds ∂L_d/∂h_l for every depth d ≥ l, laid out (S, k, B, w) for
    the Gram identity (g gᵀ per depth is one batched matmul) and (S, B, k, w) for forming
    aᵀg (one (fan_in × B) · (B × k·w) matmul per seed).
    """
    phi, dphi = ACTIVATIONS[activation]
    S, B = x.shape[:2]
    L, n = depths[-1], len(depths)
    k_dim = 1 if gram else 2
    bw_dims = (2, 3) if gram else (1, 3)
    batch_dim = 2 if gram else 1
    acts = [x]
    for l in range(L):
        acts.append(phi(torch.baddbmm(b[l], acts[-1], W[l])))
    nan = float("nan")
    bp, wn, bn = (x.new_full((S, n, L), nan) for _ in range(3))
    stack, j = None, n  # the stack holds depths[j:], ascending
    for l in range(L, 0, -1):  # layer l (1-based): input acts[l-1], output acts[l]
        if j > 0 and depths[j - 1] == l:
            j -= 1
            dy = (torch.baddbmm(b_out, acts[l], W_out) - t) / B
            g = (torch.bmm(dy, W_out.transpose(1, 2)) * dphi(acts[l])).unsqueeze(k_dim)
            stack = g if stack is None else torch.cat([g, stack], k_dim)
        k = n - j
        bp[:, j:, l - 1] = torch.linalg.vector_norm(stack, dim=bw_dims)
        bn[:, j:, l - 1] = torch.linalg.vector_norm(stack.sum(batch_dim), dim=-1)
        a = acts[l - 1]
        fan_in, width = W[l - 1].shape[1:]
        if gram:
            aa = torch.bmm(a, a.transpose(1, 2)).view(S, B * B, 1)
            g2 = stack.reshape(S * k, B, width)
            gg = torch.bmm(g2, g2.transpose(1, 2)).view(S, k, B * B)
            # rounding can make a tiny squared norm negative
            wn[:, j:, l - 1] = torch.bmm(gg, aa).view(S, k).clamp_min(0).sqrt()
        else:
            ag = torch.bmm(a.transpose(1, 2), stack.reshape(S, B, k * width))
            wn[:, j:, l - 1] = torch.linalg.vector_norm(ag.view(S, fan_in, k, width),
                                                        dim=(1, 3))
        if l > 1:
            ga = torch.bmm(stack.reshape(S, -1, width), W[l - 1].transpose(1, 2))
            stack = ga.view(stack.shape[:-1] + (fan_in,)) * dphi(a).unsqueeze(k_dim)
    return bp, wn, bn


def handwritten_fn(depths, activation: str, gram: bool, compile: bool = False):
    """``nets -> norms dict`` of :func:`handwritten`, optionally ``torch.compile``-d (the
    first call compiles: every layer unrolled)."""
    fn = functools.partial(handwritten, depths=tuple(depths), activation=activation,
                           gram=gram)
    if compile:
        fn = torch.compile(fn, dynamic=False)

    def run(nets: Networks) -> dict:
        with torch.no_grad():
            return dict(zip(NAMES, fn(nets.W, nets.b, nets.W_out, nets.b_out, nets.x,
                                      nets.t)))

    return run


# ------------------------------------------------------------------- the peers
PEERS = ("autograd_loop", "func_vmap", "handwritten", "compiled")


def make_peer(name: str, sizes: Sizes, depths, activation: str,
              gram: bool) -> Callable[..., dict]:
    """Peer ``name`` set up (modules, vmaps; ``compiled`` compiles at its first call):
    ``peer(nets=None) -> norms dict``, on ``nets`` when given (the agreement check), else
    on networks it draws itself inside the call (:func:`sample_networks`; the timed
    calls)."""
    depths = tuple(depths)
    transposed = False
    if name == "autograd_loop":
        def run(nets):
            return autograd_loop(nets, depths, activation)
    elif name == "func_vmap":
        state = func_vmap_setup(sizes, depths, activation)
        transposed = True  # drawn in nn.Linear's layout, as a torch.func user would

        def run(nets):
            return func_vmap(nets, depths, state)
    elif name in ("handwritten", "compiled"):
        run = handwritten_fn(depths, activation, gram, compile=name == "compiled")
    else:
        raise ValueError(f"peer: unknown {name!r}; allowed: {', '.join(PEERS)}")

    def peer(nets: Networks | None = None) -> dict:
        return run(sample_networks(sizes, transposed) if nets is None else nets)

    return peer


# ------------------------------------------------------------------------ checking
def max_rel_diff(name: str, got: dict, want: dict, depths, rtol: float) -> float:
    """Max relative difference of a peer's norms from the engine's ((seeds, depths, L)
    each); raises SystemExit naming the peer, the norm and the depth beyond ``rtol``."""
    worst = 0.0
    for key in NAMES:
        g, w = np.asarray(got[key]), np.asarray(want[key])
        for j, d in enumerate(depths):
            if not np.all(np.isnan(g[:, j, d:])):
                raise SystemExit(f"FAIL: torch peer {name}: {key} not NaN beyond layer {d}")
            try:
                np.testing.assert_allclose(g[:, j, :d], w[:, j, :d], rtol=rtol, atol=0)
            except AssertionError as err:
                raise SystemExit(f"FAIL: torch peer {name} and the engine disagree on {key},"
                                 f" depth {d}:\n{err}")
            rel = np.abs(g[:, j, :d] - w[:, j, :d]) / np.abs(w[:, j, :d])
            worst = max(worst, float(np.max(rel)))
    return worst


def to_numpy(out: dict) -> dict:
    return {k: v.detach().numpy() for k, v in out.items()}
