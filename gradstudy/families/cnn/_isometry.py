"""Dynamical isometry of a deep stack of 1-D conv layers: per-layer back-propagated norms
and the input–output Jacobian's squared singular values (Xiao et al. 2018).

The measured network is the mean-field setting of Xiao et al. (2018): ``spec.depth``
identical C → C plain layers h_l = φ(conv_l(h_(l−1)) + b_l), l = 1..L, on a signal
h_0 of shape (length, channels), kernels drawn by ``spec.init`` × ``spec.sigma_w`` (the
family's sampler and gains: :meth:`CNNSpec.static_key`, :meth:`CNNSpec.kernel_scales`),
the family's :class:`Conv1D` (``spec.padding``), and biases b_l ~ N(0, σ_b²) — the family's
own networks start their biases at 0, which puts tanh on the q* = 0 end of the critical
line; a small σ_b² moves it to the point (σ_w², σ_b²) with q* > 0 that the theory is
evaluated at.  No input layer and no readout: the Jacobian ∂h_L/∂h_0 is square
(N × N, N = length · channels).

Per network (one key), :func:`isometry_probe` returns

* ``backprop_sq`` (L + 1,): ‖δ_l‖² for l = 0..L, δ_l = ∂⟨u, h_L⟩/∂h_l with u ~ N(0, 1)
  (a random readout direction), so δ_L = u: the back-propagated squared norm at every
  layer, from one backward pass (zero perturbations added to every h_l);
* ``pre_q`` (L,): the mean square of every layer's pre-activation (is q* held?);
* ``sv2`` (depths, N): the squared singular values of J_d = ∂h_d/∂h_0 at the depths asked
  for (forward-mode, N tangents, one pass for every depth), ascending.

The input is put at the fixed point: at every position a Gaussian direction scaled to the
mean square ``input_ms`` over the channels (the study passes (q* − σ_b²)/σ_w² = E[φ(√q* z)²]),
so that every layer's pre-activation has variance q* from the first layer on (Pennington et
al. 2017 evaluate the spectrum there).  Exactly, not only on average: with
delta-orthogonal kernels every position is its own width-C network, and a position whose
input norm is off by the ±√(2/C) of a Gaussian draw relaxes to q* only over many layers,
which adds a spread of per-position gains to the spectrum (measured: +35 % on the
normalised variance at C = 32, L = 10).  :func:`isometry_probes` vmaps over seeds in one
jitted program.

References:
    Xiao, Bahri, Sohl-Dickstein, Schoenholz & Pennington (2018), Dynamical isometry and a
    mean field theory of CNNs, ICML (delta-orthogonal kernels, Algorithm 2).
    Pennington, Schoenholz & Ganguli (2017), Resurrecting the sigmoid in deep learning
    through dynamical isometry, NeurIPS.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from gradstudy._seeds import seed_keys
from gradstudy.errors import ConfigError
from gradstudy.families.cnn._model import Conv1D
from gradstudy.families.cnn._spec import CNNSpec
from gradstudy.nn._activations import get_activation
from gradstudy.nn._initializers import get_initializer


def check_isometry_spec(spec: CNNSpec, jacobian_depths=()) -> None:
    """Refuse what the probe does not model (one line)."""
    if not isinstance(spec, CNNSpec):
        raise ConfigError(f"spec: must be a CNNSpec, got {type(spec).__name__}")
    if spec.block != "plain":
        raise ConfigError(f"spec.block: the isometry probe measures plain stacks, got "
                          f"{spec.block!r}")
    if any(not 1 <= int(d) <= spec.depth for d in jacobian_depths):
        raise ConfigError(f"jacobian_depths: each in [1, {spec.depth}], got "
                          f"{tuple(jacobian_depths)}")


def sample_stack(spec: CNNSpec, key: jax.Array, sigma_b: float, kernel_scale=None):
    """Kernels (L, k, C, C) drawn as the family draws its stacked kernels (the
    ``static_key()`` sampler times ``kernel_scale``, by default the spec's own stacked-kernel
    scale; may be traced), and biases (L, C) ~ N(0, σ_b²)."""
    dtype = jnp.dtype(spec.dtype)
    k_w, k_b = jax.random.split(key)
    sampler = get_initializer(spec.static_key().init).sample
    shape = (spec.kernel_size, spec.channels, spec.channels)
    kernels = jax.vmap(lambda k: sampler(k, shape, dtype))(jax.random.split(k_w, spec.depth))
    if kernel_scale is None:
        kernel_scale = spec.kernel_scales()[1]
    kernels = kernels * jnp.asarray(kernel_scale, dtype)
    biases = sigma_b * jax.random.normal(k_b, (spec.depth, spec.channels), dtype)
    return kernels, biases


def stack_forward(spec: CNNSpec, kernels, biases, h0, perturbations=None):
    """The stack on h0 (length, C): ``(h_L, (pre_q, hs))`` with the pre-activations' mean
    squares (L,) and every layer's output hs (L, length, C); ``perturbations``
    (L, length, C) are added to every h_l (zeros: their gradient is δ_l)."""
    conv = Conv1D(spec.channels, spec.kernel_size, padding=spec.padding,
                  dtype=jnp.dtype(spec.dtype))
    phi = get_activation(spec.activation)
    if perturbations is None:
        perturbations = jnp.zeros((spec.depth,) + h0.shape, h0.dtype)

    def layer(h, wbe):
        w, b, e = wbe
        z = conv.apply({"params": {"kernel": w, "bias": b}}, h)
        h = phi(z) + e
        return h, (jnp.mean(z**2), h)

    return jax.lax.scan(layer, h0, (kernels, biases, perturbations))


def fixed_point_input(key: jax.Array, shape, input_ms, dtype):
    """h_0 of ``shape`` (length, C): a Gaussian direction at every position, scaled so that
    its mean square over the channels is exactly ``input_ms`` at every position."""
    xi = jax.random.normal(key, shape, dtype)
    rms = jnp.sqrt(jnp.mean(xi**2, axis=-1, keepdims=True))
    return jnp.sqrt(jnp.asarray(input_ms, dtype)) * xi / rms


def probe_draws(spec: CNNSpec, key: jax.Array, sigma_b, input_ms, kernel_scale=None):
    """What one network's probe draws from ``key``: kernels (L, k, C, C), biases (L, C),
    the input h_0 and the readout direction u (both (length, C))."""
    dtype = jnp.dtype(spec.dtype)
    k_net, k_x, k_u = jax.random.split(key, 3)
    kernels, biases = sample_stack(spec, k_net, sigma_b, kernel_scale)
    shape = (spec.length, spec.channels)
    return (kernels, biases, fixed_point_input(k_x, shape, input_ms, dtype),
            jax.random.normal(k_u, shape, dtype))


def isometry_probe(spec: CNNSpec, key: jax.Array, sigma_b, input_ms,
                   jacobian_depths: tuple[int, ...] = (), kernel_scale=None) -> dict:
    """One network's ``backprop_sq`` (L + 1,), ``pre_q`` (L,) and, for every depth d of
    ``jacobian_depths`` (each <= L), ``sv2`` (len(jacobian_depths), N): the squared
    singular values of ∂h_d/∂h_0, ascending, from one forward-mode pass (module
    docstring).  Jit- and vmap-safe; ``sigma_b``, ``input_ms``, ``kernel_scale`` (default
    the spec's) may be traced."""
    kernels, biases, h0, u = probe_draws(spec, key, sigma_b, input_ms, kernel_scale)

    def readout(h0, perturbations):
        h_last, (pre_q, _) = stack_forward(spec, kernels, biases, h0, perturbations)
        return jnp.sum(u * h_last), pre_q

    zeros = jnp.zeros((spec.depth,) + h0.shape, h0.dtype)
    (delta_0, delta_rest), pre_q = jax.grad(readout, argnums=(0, 1), has_aux=True)(h0, zeros)
    backprop_sq = jnp.concatenate([jnp.sum(delta_0**2)[None],
                                   jnp.sum(delta_rest**2, axis=(1, 2))])
    out = {"backprop_sq": backprop_sq, "pre_q": pre_q}
    if jacobian_depths:
        rows = jnp.asarray(jacobian_depths) - 1  # h_d is the scan's output d − 1

        def outputs(x):
            hs = stack_forward(spec, kernels, biases, x.reshape(h0.shape))[1][1]
            return hs[rows].reshape(len(jacobian_depths), -1)

        jac = jax.jacfwd(outputs)(h0.reshape(-1))  # (depths, N, N)
        out["sv2"] = jnp.sort(jnp.linalg.svd(jac, compute_uv=False) ** 2, axis=-1)
    return out


def isometry_probes(spec: CNNSpec, seeds: int, sigma_b, input_ms, base_seed: int = 0,
                    jacobian_depths: tuple[int, ...] = ()) -> dict:
    """:func:`isometry_probe` of ``seeds`` networks (keys :func:`gradstudy.engine.seed_keys`)
    as one vmapped program: every array gains a leading seed axis.  Specs that differ only
    in their gain (σ_w, or He against LeCun) share the compiled program
    (:meth:`CNNSpec.static_key`, the gain traced)."""
    check_isometry_spec(spec, jacobian_depths)
    return _probes(spec.static_key(), spec.kernel_scales()[1], seeds, sigma_b, input_ms,
                   base_seed, tuple(int(d) for d in jacobian_depths))


@functools.partial(jax.jit, static_argnames=("spec", "seeds", "base_seed", "jacobian_depths"))
def _probes(spec, kernel_scale, seeds, sigma_b, input_ms, base_seed, jacobian_depths):
    keys = seed_keys(base_seed, seeds)
    return jax.vmap(lambda k: isometry_probe(spec, k, sigma_b, input_ms, jacobian_depths,
                                             kernel_scale))(keys)
