"""The model-family contract: how a kind of network plugs into sweeps, as data (no class tree).

A sweep measures a grid of specs × depths × seeds.  Everything it needs to know about the
kind of network is one :class:`ModelFamily` value, registered for the spec's type: which
specs share a compiled program (``program_key``), which numbers enter that program traced
(``scalars``: e.g. an MLP's per-layer kernel scales and σ_b, so that a gain grid is one
program), how one network is sampled and measured (``measure``), the dims of what it
returns (``measured``, declared once, stored by gradstudy.results), its memory, and
the per-point coordinates of the stored Dataset.  The MLP is one family
(:mod:`gradstudy.families.mlp`); a recurrent or convolutional family registers its own spec
type and functions and the sweep engine, the storage and the probe core stay unchanged.

The pattern is optax's ``GradientTransformation``: a NamedTuple of pure functions.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, NamedTuple


class TrainHooks(NamedTuple):
    """How :func:`gradstudy.engine.train` trains a family's networks (pure functions).

    A program is built from one ``key_spec`` (``ModelFamily.program_key``); the numbers of
    ``ModelFamily.scalars(spec)`` enter it traced, per run, so points differing only in
    them are trained by one compiled program.

    Attributes:
        init: ``(key_spec, prng_key, scalars) -> params`` of one network (traced scalars).
        apply: ``key_spec -> f(params, x) -> outputs``: logits ``(batch, classes)`` or
            ``(batch, time, classes)`` (cross-entropy against integer labels of shape
            ``(batch,)`` or ``(batch, time)``), or regression outputs ``(batch, out)``.
        stacked: ``(leaf name, leaf) -> bool``: the leaf has a leading layer axis (one
            norm per layer is recorded); names are '/'-joined, e.g. ``hidden/dense/kernel``.
        is_output: ``leaf name -> bool``: readout leaves (exempt from AGC, as in NFNets).
        layer_leaves: ``leaf names -> names``: the leaves whose norms are recorded as the
            ``layer`` axis, in forward order (a stacked leaf gives one layer per index).
        layers: ``spec -> int``: the length of that ``layer`` axis.
        param_count: ``key_spec -> int`` parameters of one network.
        activation_bytes: ``(key_spec, examples) -> int``: forward activations of one
            network on that many examples (float32), for memory estimates.
        check_data: ``(spec, data) -> str | None``: why the data do not fit the spec.
        coords: ``points -> dict`` of per-point coordinates of the training Dataset.
    """

    init: Callable[[Any, Any, tuple], Any]
    apply: Callable[[Any], Callable]
    stacked: Callable[[str, Any], bool]
    is_output: Callable[[str], bool]
    layer_leaves: Callable[[Sequence[str]], list[str]]
    layers: Callable[[Any], int]
    param_count: Callable[[Any], int]
    activation_bytes: Callable[[Any, int], int]
    check_data: Callable[[Any, Any], str | None]
    coords: Callable[[Sequence[Any]], dict]


class ModelFamily(NamedTuple):
    """A kind of network, for the sweep engine.

    Attributes:
        name: e.g. "mlp".
        spec_type: the frozen dataclass of its specs (hashable; ``describe() -> dict``).
        at_depth: ``(spec, depth) -> spec`` built ``depth`` deep (a sweep builds every
            point ``max(depths)`` deep).
        program_key: ``spec -> hashable spec``: specs with equal keys share one compiled
            program; the key is the spec the program is built from.
        scalars: ``spec -> tuple of numbers or 1-D tuples``: what enters that program
            traced, per point (stacked over the points of one program).
        measure: ``(key_spec, depths, batch, input_std, prng_key, scalars, keep_backprop,
            loss) -> dict of arrays`` for one network (sampled from ``prng_key``).
        measured: name -> (dims, description) of what ``measure`` returns for one network
            (``<name>_status`` companions take the dims of ``<name>``).
        memory: ``(key_spec, depths, batch, keep_backprop) -> (working, output)`` bytes of
            one network (working memory of ``measure``, and its recorded results).
        coords: ``points -> dict`` of per-point coordinates (name -> values).
        fingerprint: ``key_spec -> tuple | None``: the hash of the functions the program
            runs (a re-registered name gets a new program); None where they cannot be
            fingerprinted (the program is then never reused).
        why_unfingerprintable: ``spec -> str | None``: why a point's results cannot be
            cached (its description does not pin down its functions), or None.
        label: ``key_spec -> str`` for progress messages.
        train: how the training engine trains it (:class:`TrainHooks`), or None.
        split_sweeps: whether a sweep may split its networks over several devices of one
            process (one program, :func:`gradstudy.engine.plan_devices`); False runs them
            on one device per process.
    """

    name: str
    spec_type: type
    at_depth: Callable[[Any, int], Any]
    program_key: Callable[[Any], Hashable]
    scalars: Callable[[Any], tuple]
    measure: Callable[..., dict]
    measured: Mapping[str, tuple[tuple[str, ...], str]]
    memory: Callable[..., tuple[int, int]]
    coords: Callable[[Sequence[Any]], dict]
    fingerprint: Callable[[Any], tuple | None]
    why_unfingerprintable: Callable[[Any], str | None]
    label: Callable[[Any], str]
    train: TrainHooks | None = None
    split_sweeps: bool = True
