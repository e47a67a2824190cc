"""JAX's multi-process runtime (``jax.distributed``) for sweeps and trainings.

With several processes (one per host, or one per GPU), ``jax.devices()`` lists the devices
of every process and one jitted program spans them all: each process runs the shards of its
own (addressable) devices.  The engine's programs already split their networks or runs over
``jax.devices()``; what this module adds is what differs with several processes:

* :func:`initialize_distributed` joins the runtime (before anything computes);
* :func:`place` lays a host array out over the devices of all processes (each process gives
  the same value and keeps its own shards), :func:`gather` brings a result back whole to
  every process;
* :func:`cached_once`: every process computes its share, **process 0 alone writes** the
  result file, the others wait for it (a barrier), and a stored file is reused only when
  every process can read it, so that all of them take the same path through the program.

With one process every helper is the single-process behaviour: nothing else changes.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from gradstudy._xla import accelerator_plugin
from gradstudy.errors import ConfigError
from gradstudy.results import cached

__all__ = ["agree", "barrier", "cached_once", "gather", "initialize_distributed",
           "is_writer", "multiprocess", "place", "same_everywhere"]


def initialize_distributed(coordinator_address: str | None = None,
                           num_processes: int | None = None,
                           process_id: int | None = None, **kwargs) -> None:
    """Join JAX's multi-process runtime; call it first, before anything computes.

    A thin wrapper of :func:`jax.distributed.initialize` (same arguments; under SLURM,
    Open MPI or on Cloud TPU all may be left out: JAX reads them from the environment).  On
    a CPU-only install it selects the gloo collectives (JAX's default today, set here so a
    changed default cannot silently break the cross-process gathers).  Calling it again in
    an initialised process does nothing.

    Args:
        coordinator_address: ``host:port`` of process 0 (e.g. ``"localhost:12345"``).
        num_processes: how many processes take part.
        process_id: this process's index, ``0 .. num_processes - 1``.
        **kwargs: passed on (``local_device_ids``, ``heartbeat_timeout_seconds``, ...).

    Raises:
        ConfigError: one line, if ``process_id`` is not within ``0 .. num_processes - 1``.
    """
    if jax.distributed.is_initialized():
        return
    if num_processes is not None and process_id is not None and not (
            isinstance(process_id, int) and isinstance(num_processes, int)
            and 0 <= process_id < num_processes):
        raise ConfigError(f"process_id: must be an int in 0..num_processes-1 "
                          f"({num_processes!r} processes), got {process_id!r}")
    if accelerator_plugin() is None:
        # cross-process collectives on the CPU need an implementation; gloo ships with jaxlib
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address, num_processes, process_id, **kwargs)


def multiprocess() -> bool:
    """Whether this process is one of several (``jax.process_count() > 1``)."""
    return jax.process_count() > 1


def is_writer() -> bool:
    """Whether this process writes shared files (results, checkpoints): process 0."""
    return jax.process_index() == 0


def barrier(name: str) -> None:
    """Wait until every process has reached the barrier ``name`` (no-op with one)."""
    if multiprocess():
        from jax.experimental.multihost_utils import sync_global_devices

        sync_global_devices(name)


def agree(flag: bool) -> bool:
    """True if ``flag`` is true in every process (a collective; ``flag`` with one)."""
    if not multiprocess():
        return bool(flag)
    from jax.experimental.multihost_utils import process_allgather

    return bool(np.all(process_allgather(np.asarray(bool(flag)))))


def same_everywhere(value: int) -> bool:
    """Whether the integer ``value`` is the same in every process (a collective; True
    with one process)."""
    if not multiprocess():
        return True
    from jax.experimental.multihost_utils import process_allgather

    return bool(np.all(process_allgather(np.asarray(value, np.int64)) == value))


def place(tree, sharding):
    """``tree`` (host arrays of the same value in every process) laid out by ``sharding``;
    ``sharding`` None leaves ``tree`` as it is.

    With several processes each one builds only its own shards from its copy
    (:func:`jax.make_array_from_callback`): no collective, no transfer between processes.
    """
    if sharding is None:
        return tree
    if sharding.is_fully_addressable:
        return jax.device_put(tree, sharding)

    def one(a):
        a = np.asarray(a)
        return jax.make_array_from_callback(a.shape, sharding, lambda index: a[index])

    return jax.tree.map(one, tree)


def _identity(tree):
    return tree


def gather(tree):
    """Every leaf of ``tree`` whole, as host (NumPy) arrays, in every process.

    The leaves split over the devices of several processes are gathered by one program
    (a collective: every process must call this with the same tree); a leaf already
    replicated is read from this process's copy; the rest is :func:`jax.device_get`.
    """
    if not multiprocess():
        return jax.device_get(tree)
    leaves, treedef = jax.tree.flatten(tree)
    split = [i for i, a in enumerate(leaves) if isinstance(a, jax.Array)
             and not a.is_fully_addressable and not a.is_fully_replicated]
    named = [i for i in split if isinstance(leaves[i].sharding, NamedSharding)]
    for i in set(split) - set(named):  # another kind of layout: jax's own gather
        from jax.experimental.multihost_utils import process_allgather

        leaves[i] = process_allgather(leaves[i], tiled=True)
    split = named
    if split:
        # one jitted identity for all of them (compiled once per tree of shapes), its
        # outputs replicated: XLA gathers them across the processes
        whole = [leaves[i].sharding.update(spec=PartitionSpec()) for i in split]
        gathered = jax.jit(_identity, out_shardings=whole)([leaves[i] for i in split])
        for i, a in zip(split, gathered):
            leaves[i] = a
    out = [np.asarray(a.addressable_data(0)) if isinstance(a, jax.Array)
           and not a.is_fully_addressable else jax.device_get(a) for a in leaves]
    return jax.tree.unflatten(treedef, out)


class _NotStored(Exception):
    """Raised by the probe of :func:`cached_once`: no usable stored result."""


def cached_once(name: str, description: dict, compute: Callable, cache_dir,
                not_cacheable: str | None = None):
    """:func:`gradstudy.results.cached` for one or several processes.

    With one process it is ``cached`` itself.  With several, every process first tries to
    read a verified stored result; only if all of them can is it used (otherwise all
    compute: the program is collective, so either every process runs it or none does).
    ``compute`` must give every process the whole result (:func:`gather`); process 0 alone
    writes it (atomically, as ``cached`` does) and the others wait on a barrier until it
    is there, so a result is written once and a rerun of every process reuses it.
    """
    if not multiprocess() or cache_dir is None or not_cacheable is not None:
        return cached(name, description, compute,
                      cache_dir if (not multiprocess() or is_writer()) else None,
                      not_cacheable)

    def missing():
        raise _NotStored

    try:
        stored = cached(name, description, missing, cache_dir)
    except _NotStored:
        stored = None
    if agree(stored is not None):
        return stored
    ds = compute()
    if is_writer():
        ds = cached(name, description, lambda: ds, cache_dir)
    barrier(f"gradstudy-written-{name}")
    return ds
