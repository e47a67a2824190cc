"""The spec of a training grid: :class:`Training` (points × optimizers × learning rates ×
seeds, validated at construction), the model family that trains its points
(:func:`family_for`, :func:`hooks_for`), the keys of its runs (:func:`run_keys`) and
:data:`TRAIN_VERSION`, the version of what training records (part of every cache key).

:func:`gradstudy.engine.train` trains it (:mod:`gradstudy.engine._training`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp

from gradstudy._seeds import seed_keys
from gradstudy._validate import check_choice, check_int, check_real, check_sequence
from gradstudy.engine._optim import OptimizerSpec
from gradstudy.errors import ConfigError
from gradstudy.families._registry import family_of, registered_families
from gradstudy.nn._losses import TRAINING_LOSSES

TRAIN_VERSION = 6  # bumped whenever what training records changes (2: update norms,
#                   3: per-point optimizers and their coordinates, 4: a diverged run's
#                   per-layer records NaN from its divergence step on, with status
#                   companions, and its gradient norm NaN at that step; 5: an accuracy
#                   whose loss is not finite NaN, not the class-0 fraction, and
#                   clip_fired False at the divergence step; 6: "orthogonal" weights by
#                   Householder reflections, the same matrices to float32 rounding)


def family_for(spec, field: str = "points"):
    """The model family of ``spec``, which must be trainable (one-line ConfigError)."""
    family = family_of(spec, field)
    if family.train is None:
        allowed = ", ".join(f.spec_type.__name__ for f in registered_families()
                            if f.train is not None)
        raise ConfigError(f"{field}: {type(spec).__name__} networks cannot be trained "
                          f"(trainable: {allowed})")
    return family


def hooks_for(spec):
    """The :class:`gradstudy.families.TrainHooks` of ``spec``'s family."""
    return family_for(spec).train


def _fingerprint(spec):
    return family_for(spec).fingerprint(spec)


@dataclass(frozen=True)
class Training:
    """A grid of training runs.

    Attributes:
        points: network specs of one trainable family (MLPSpec, RNNSpec, CNNSpec; their
            input and output sizes must match the data); points whose family
            ``program_key`` agrees share one program (their scalars are traced).
        optimizer: what they are trained with: one spec for every point, or a tuple with
            one per point.  Points whose networks share a program share it whatever their
            optimizers (:func:`gradstudy.engine.switch`; learning rate and clipping
            threshold traced), so a grid over optimizers or clipping methods is one
            compiled program.
        steps: optimizer steps per run.
        learning_rates: one run per rate, for every point.  Default: each point's own
            optimizer's rate (the ``learning_rate`` dim then has one entry, whose
            coordinate is that rate, or NaN where the points' rates differ; the
            ``optimizer_learning_rate`` coordinate has each point's).
        seeds: initialisations (and minibatch orders) per point and rate.
        batch_size: minibatch size (examples drawn uniformly with replacement per step);
            None for full-batch gradient descent (every example at every step).
        loss: "cross_entropy" (integer labels) or "mse" (½‖y − t‖², batch mean).
        record_every: per-layer gradient norms and ‖ΔW_l‖/‖W_l‖ every this many steps.
        eval_every: test-set evaluation and checkpoint every this many steps.
        base_seed: PRNG seed the runs' keys are folded from.
        labels: a name per point (default "p0", "p1", ...).
        seed_lr_scale: optional, one factor per seed multiplying every learning rate of
            that seed (e.g. 1/λ_max of each seed's initial Hessian, so that the rates are
            multiples of each network's own 2/λ_max).
    """

    points: tuple[Any, ...]
    optimizer: OptimizerSpec | tuple[OptimizerSpec, ...]
    steps: int = 1000
    learning_rates: tuple[float, ...] | None = None
    seeds: int = 8
    batch_size: int | None = 128
    loss: str = "cross_entropy"
    record_every: int = 10
    eval_every: int = 100
    base_seed: int = 0
    labels: tuple[str, ...] | None = None
    seed_lr_scale: tuple[float, ...] | None = None

    def __post_init__(self):
        points = check_sequence("points", self.points, max_len=10**4)
        kinds = [family_for(p, f"points: item {i}").name for i, p in enumerate(points)]
        if len(set(kinds)) > 1:
            raise ConfigError(f"points: all of one model family; got {', '.join(kinds)}"[:200])
        for i, p in enumerate(points):
            if p.dtype != "float32":
                raise ConfigError(f"points: item {i} has dtype {p.dtype}; training runs in "
                                  "float32 only")
        if len({hooks_for(p).layers(p) for p in points}) > 1:
            raise ConfigError("points: must share one depth (the records' layer axis)")
        object.__setattr__(self, "points", points)
        if isinstance(self.optimizer, (tuple, list)):
            optimizers = tuple(self.optimizer)
            for i, o in enumerate(optimizers):
                if not isinstance(o, OptimizerSpec):
                    raise ConfigError(f"optimizer: item {i} must be an OptimizerSpec, got "
                                      f"{type(o).__name__}")
            if len(optimizers) != len(points):
                raise ConfigError(f"optimizer: need one OptimizerSpec per point "
                                  f"({len(points)}), got {len(optimizers)}")
            object.__setattr__(self, "optimizer", optimizers)
        elif not isinstance(self.optimizer, OptimizerSpec):
            raise ConfigError(f"optimizer: must be an OptimizerSpec (or one per point), got "
                              f"{type(self.optimizer).__name__}")
        if self.learning_rates is not None:
            rates = check_sequence("learning_rates", self.learning_rates, max_len=10**4)
            object.__setattr__(self, "learning_rates",
                               tuple(check_real("learning_rates", r, 0.0, 1e6) for r in rates))
        else:
            own = {o.learning_rate for o in self.optimizers}
            if len(own) == 1:
                object.__setattr__(self, "learning_rates", (own.pop(),))
        object.__setattr__(self, "steps", check_int("steps", self.steps, 1, 10**8))
        object.__setattr__(self, "seeds", check_int("seeds", self.seeds, 1, 10**5))
        if self.batch_size is not None:
            object.__setattr__(self, "batch_size", check_int("batch_size", self.batch_size,
                                                             1, 10**6))
        check_choice("loss", self.loss, TRAINING_LOSSES)
        object.__setattr__(self, "record_every", check_int("record_every", self.record_every,
                                                           1, 10**8))
        object.__setattr__(self, "eval_every", check_int("eval_every", self.eval_every, 1,
                                                         10**8))
        object.__setattr__(self, "base_seed", check_int("base_seed", self.base_seed, 0,
                                                        2**32 - 1))
        labels = tuple(f"p{i}" for i in range(len(points))) if self.labels is None \
            else tuple(str(x) for x in check_sequence("labels", self.labels))
        if len(labels) != len(points) or len(set(labels)) != len(labels):
            raise ConfigError(f"labels: need {len(points)} distinct labels, got {labels!r}"
                              [:200])
        object.__setattr__(self, "labels", labels)
        if self.seed_lr_scale is not None:
            scale = tuple(check_real("seed_lr_scale", v, 0.0, 1e12)
                          for v in check_sequence("seed_lr_scale", self.seed_lr_scale))
            if len(scale) != self.seeds:
                raise ConfigError(f"seed_lr_scale: need one factor per seed ({self.seeds}), "
                                  f"got {len(scale)}")
            object.__setattr__(self, "seed_lr_scale", scale)

    @property
    def optimizers(self) -> tuple[OptimizerSpec, ...]:
        """One optimizer per point."""
        if isinstance(self.optimizer, OptimizerSpec):
            return (self.optimizer,) * len(self.points)
        return self.optimizer

    @property
    def rate_axis(self) -> tuple[float, ...]:
        """The ``learning_rate`` coordinate: the rates, or (NaN,) for "each point's own"."""
        return (float("nan"),) if self.learning_rates is None else self.learning_rates

    def point_rates(self, point: int) -> tuple[float, ...]:
        """The learning rates point ``point`` is trained at, along the ``learning_rate``
        dim (before ``seed_lr_scale``)."""
        if self.learning_rates is None:
            return (self.optimizers[point].learning_rate,)
        return self.learning_rates

    @property
    def runs_per_point(self) -> int:
        return len(self.rate_axis) * self.seeds

    def describe(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
             if f.name not in ("points", "optimizer")}  # eval_every too: it sets eval_step
        d["points"] = [p.describe() for p in self.points]
        d["optimizer"] = self.optimizer.describe() if isinstance(self.optimizer,
                                                                OptimizerSpec) \
            else [o.describe() for o in self.optimizer]
        d["train_version"] = TRAIN_VERSION
        return d


def run_keys(training: Training) -> jax.Array:
    """Keys of the runs of one point, (learning rate, seed) flattened rate-major; seed s
    has the same key at every rate and point (common random numbers)."""
    seeds = seed_keys(training.base_seed, training.seeds)
    return jnp.tile(seeds, (len(training.rate_axis), 1))
