"""Small models in plain Flax, Linen and NNX (nothing from gradstudy), each with a factory
for ``gradstudy diagnose``: a factory returns ``(module, example batch, loss_fn)``; for NNX
the "module" is a function ``rngs -> nnx.Module`` (one network per seed) or a built module
(its own weights: one seed).

    gradstudy diagnose examples.models:cnn1d --seeds 8
    gradstudy diagnose examples.models:lstm_classifier
    gradstudy diagnose examples.models:transformer_block
    gradstudy diagnose examples.models:deep_tanh_small_init
    gradstudy diagnose examples.models:nnx_transformer
    gradstudy diagnose examples.models:nnx_lstm

or in Python::

    from gradstudy.tools import diagnose, diagnosis_table
    module, batch, loss_fn = cnn1d()
    print(diagnosis_table(diagnose(module, batch, loss_fn, seeds=8)))
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import nnx


def _classification_batch(shape, classes, seed=0):
    kx, ky = jax.random.split(jax.random.PRNGKey(seed))
    return {"x": jax.random.normal(kx, shape), "y": jax.random.randint(ky, shape[:1], 0,
                                                                        classes)}


def _cross_entropy(logits, batch):
    return optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]).mean()


class CNN1D(nn.Module):
    """Six 1-D convolutions (kernel 5, 32 channels, ReLU), global average pooling, a
    linear classifier."""

    channels: int = 32
    depth: int = 6
    classes: int = 10

    @nn.compact
    def __call__(self, x):
        for _ in range(self.depth):
            x = nn.relu(nn.Conv(self.channels, (5,))(x))
        return nn.Dense(self.classes)(x.mean(axis=1))


def cnn1d():
    """A 6-layer 1-D CNN on 40-step, 1-channel signals (MNIST-1D shaped), cross-entropy."""
    batch = _classification_batch((32, 40, 1), 10)
    return CNN1D(), batch, _cross_entropy, {"call_args": lambda b: (b["x"],)}


class LSTMClassifier(nn.Module):
    """An LSTM over the sequence (``nn.RNN``), classifier on the last hidden state."""

    hidden: int = 32
    classes: int = 10

    @nn.compact
    def __call__(self, x):
        h = nn.RNN(nn.LSTMCell(self.hidden))(x)
        return nn.Dense(self.classes)(h[:, -1])


def lstm_classifier():
    """An LSTM classifier on 40-step sequences of 1 feature (the cell's numbers are averages
    over the 40 time steps it is applied at: ``calls`` = 40)."""
    batch = _classification_batch((32, 40, 1), 10)
    return LSTMClassifier(), batch, _cross_entropy, {"call_args": lambda b: (b["x"],)}


class PreLNBlock(nn.Module):
    """x + Attn(LN(x)); x + MLP(LN(x)) (pre-LN, as in GPT-2)."""

    heads: int = 4
    mlp: int = 128

    @nn.compact
    def __call__(self, x):
        d = x.shape[-1]
        x = x + nn.MultiHeadDotProductAttention(num_heads=self.heads)(nn.LayerNorm()(x))
        h = nn.Dense(self.mlp)(nn.LayerNorm()(x))
        return x + nn.Dense(d)(nn.gelu(h))


class TransformerBlocks(nn.Module):
    """``depth`` pre-LN blocks, mean-pooled, linear head."""

    depth: int = 4
    classes: int = 10

    @nn.compact
    def __call__(self, x):
        for _ in range(self.depth):
            x = PreLNBlock()(x)
        return nn.Dense(self.classes)(nn.LayerNorm()(x).mean(axis=1))


def transformer_block():
    """Four pre-LN Transformer blocks (width 64, 4 heads) on 16-token sequences."""
    batch = _classification_batch((16, 16, 64), 10)
    return TransformerBlocks(), batch, _cross_entropy, {"call_args": lambda b: (b["x"],)}


class DeepTanh(nn.Module):
    """A plain deep tanh MLP with Gaussian weights of variance σ_w²/fan_in."""

    depth: int = 24
    width: int = 128
    sigma_w2: float = 0.5

    @nn.compact
    def __call__(self, x):
        init = nn.initializers.variance_scaling(self.sigma_w2, "fan_in", "normal")
        for _ in range(self.depth):
            x = jnp.tanh(nn.Dense(self.width, kernel_init=init)(x))
        return nn.Dense(10, kernel_init=init)(x)


def deep_tanh_small_init():
    """Glorot & Bengio's setting: a 24-layer tanh MLP at σ_w² = 0.5.  ‖∂L/∂output‖ falls
    by ≈ √(σ_w²) per layer towards the input, while ‖∂L/∂W‖ stays much flatter (the
    activations that multiply it grow towards the input)."""
    batch = _classification_batch((64, 128), 10)
    return DeepTanh(), batch, _cross_entropy, {"call_args": lambda b: (b["x"],)}


def deep_tanh_gains():
    """The same tanh MLP at σ_w² = 0.5, 1 and 2 (ordered, critical and chaotic phases at
    σ_b = 0), all in one compiled program: the kernels are drawn at unit variance
    (N(0, 1/fan_in)) and multiplied by σ_w, a traced scalar of ``init_fn``."""
    batch = _classification_batch((64, 128), 10)
    module = DeepTanh(sigma_w2=1.0)

    def init_fn(key, sigma_w2):
        params = module.init(key, batch["x"])
        return jax.tree_util.tree_map_with_path(
            lambda path, w: w * jnp.sqrt(sigma_w2) if path[-1].key == "kernel" else w, params)

    return module, batch, _cross_entropy, {"call_args": lambda b: (b["x"],),
                                           "init_fn": init_fn,
                                           "variants": {"sigma_w2": [0.5, 1.0, 2.0]}}


class NNXBlock(nnx.Module):
    """A pre-LN Transformer block in Flax NNX: x + Attn(LN(x)); x + MLP(LN(x))."""

    def __init__(self, dim: int, heads: int, mlp: int, rngs: nnx.Rngs):
        self.norm1 = nnx.LayerNorm(dim, rngs=rngs)
        self.attn = nnx.MultiHeadAttention(heads, dim, decode=False, rngs=rngs)
        self.norm2 = nnx.LayerNorm(dim, rngs=rngs)
        self.up = nnx.Linear(dim, mlp, rngs=rngs)
        self.down = nnx.Linear(mlp, dim, rngs=rngs)

    def __call__(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.down(nnx.gelu(self.up(self.norm2(x))))


class NNXTransformer(nnx.Module):
    """``depth`` NNX pre-LN blocks (``blocks/0``, ...), mean-pooled, linear head."""

    def __init__(self, rngs: nnx.Rngs, dim: int = 64, depth: int = 4, heads: int = 4,
                 mlp: int = 128, classes: int = 10):
        self.blocks = nnx.List([NNXBlock(dim, heads, mlp, rngs) for _ in range(depth)])
        self.norm = nnx.LayerNorm(dim, rngs=rngs)
        self.head = nnx.Linear(dim, classes, rngs=rngs)

    def __call__(self, x):
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x).mean(axis=1))


def nnx_transformer():
    """The four-block Transformer of :func:`transformer_block` written in Flax NNX; a
    factory ``rngs -> model``, so that ``--seeds`` initialisations run as one program."""
    batch = _classification_batch((16, 16, 64), 10)
    return (lambda rngs: NNXTransformer(rngs)), batch, _cross_entropy, {
        "call_args": lambda b: (b["x"],)}


class NNXLSTMClassifier(nnx.Module):
    """An ``nnx.RNN`` of an LSTM cell, classifier on the last hidden state."""

    def __init__(self, rngs: nnx.Rngs, features: int = 1, hidden: int = 32,
                 classes: int = 10):
        self.rnn = nnx.RNN(nnx.LSTMCell(features, hidden, rngs=rngs), rngs=rngs)
        self.head = nnx.Linear(hidden, classes, rngs=rngs)

    def __call__(self, x):
        return self.head(self.rnn(x)[:, -1])


def nnx_lstm():
    """:func:`lstm_classifier` in Flax NNX, one built model (its weights: one seed); the
    cell's gates are measured at every one of the 40 time steps."""
    batch = _classification_batch((32, 40, 1), 10)
    return NNXLSTMClassifier(nnx.Rngs(0)), batch, _cross_entropy, {
        "call_args": lambda b: (b["x"],)}


if __name__ == "__main__":
    from gradstudy.tools import diagnose, diagnosis_table

    for factory in (cnn1d, lstm_classifier, transformer_block, deep_tanh_small_init,
                    deep_tanh_gains, nnx_transformer, nnx_lstm):
        module, batch, loss_fn, options = factory()
        print(f"\n== {factory.__name__}")
        seeds = 1 if isinstance(module, nnx.Module) else 4
        print(diagnosis_table(diagnose(module, batch, loss_fn, seeds=seeds, **options)))
