"""The loss table: every loss a sweep or a training can compute, by name.

Sweeps measure untrained networks against Gaussian targets (:data:`PROBE_LOSSES`);
trainings fit data (:data:`TRAINING_LOSSES`).  Both look the function up in
:data:`LOSS_FUNCTIONS`, so a name means one formula everywhere.
"""

from __future__ import annotations

import jax.numpy as jnp
import optax


def mse_loss(y, targets):
    """L = mean over the batch of ½‖y − t‖²."""
    return 0.5 * jnp.mean(jnp.sum((y - targets) ** 2, axis=-1))


def linear_loss(y, targets):
    """L = mean over the batch of ⟨y, t⟩: the output cotangent ∂L/∂y = t/batch does not
    depend on the network, which is what mean-field theory assumes of the backward pass
    (with MSE the residual y − t contains the forward pass)."""
    return jnp.mean(jnp.sum(y * targets, axis=-1))


def cross_entropy_loss(logits, labels):
    """Mean softmax cross-entropy against integer labels: ``(batch,)`` or, for sequence
    outputs, ``(batch, time)`` (the mean is over both)."""
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


LOSS_FUNCTIONS = {"mse": mse_loss, "linear": linear_loss, "cross_entropy": cross_entropy_loss}
# what a sweep may measure an untrained network with (targets ~ N(0, 1))
PROBE_LOSSES = ("mse", "linear")
# what a training may fit: class labels, or regression targets
TRAINING_LOSSES = ("cross_entropy", "mse")
