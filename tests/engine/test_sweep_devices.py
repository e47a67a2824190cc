"""Sweeps split over every device (gradstudy.engine.compiled_program, plan_devices).

One program: the (point × seed) networks are split over the host devices (one per core,
gradstudy._xla), each device running its share chunk by chunk.  Compared with the same sweep
on one device (a mesh of one: ``run_devices`` patched), value by value.
"""

import jax
import numpy as np
import pytest

import gradstudy.engine._sweep as sweep_mod
import gradstudy.engine._training_programs as programs_mod
from gradstudy import MLPSpec, Sweep
from gradstudy.engine import BUDGET_ENV, plan_devices, run_sweep_arrays
from gradstudy.errors import ConfigError
from gradstudy.families.mlp import network_bytes, network_output_bytes

SPEC = MLPSpec(width=8, depth=4, activation="tanh")
POINTS = (SPEC, SPEC.replace(sigma_w=1.6, sigma_b=0.1), SPEC.replace(sigma_w=0.6))

pytestmark = pytest.mark.skipif(len(jax.devices()) < 2,
                                reason="one XLA device (gradstudy._xla makes one per core)")


@pytest.fixture
def one_device(monkeypatch):
    """Make sweeps (and trainings) see only the first device."""
    first = jax.devices()[:1]

    def use():
        monkeypatch.setattr(programs_mod, "run_devices", lambda: first)

    return use


def _compare(sweep, one_device):
    spread = run_sweep_arrays(sweep, progress=False)
    one_device()
    alone = run_sweep_arrays(sweep, progress=False)
    assert spread.keys() == alone.keys()
    return spread, alone


def test_two_devices_give_exactly_what_one_gives(one_device):
    """15 networks (3 points × 5 seeds), 5 at a time: one device runs 3 chunks of 5; two
    devices keep that chunk (2 chunks each, 5 padding copies): bit for bit the same
    numbers, each network at its own index (the copies dropped)."""
    sweep = Sweep(points=POINTS, depths=(2, 4), seeds=5, batch=4, gain_chunk=1)
    (devices, chunk), = [plan_devices(*sweep.family.memory(s, sweep.depths, 4, False)[:2],
                                      15, "", most=5) for s in sweep.groups()]
    assert len(devices) == 2 and chunk == 5
    spread, alone = _compare(sweep, one_device)
    for name, value in alone.items():
        np.testing.assert_array_equal(spread[name], value, err_msg=name)
    # and the networks are their own: points and seeds differ
    assert not np.allclose(spread["loss"][0], spread["loss"][1])
    assert not np.allclose(spread["loss"][0, 0], spread["loss"][0, 1])


def test_a_smaller_chunk_per_device_changes_only_rounding(one_device):
    """12 networks in one chunk on one device, 6 per device on two: XLA vectorises a
    reduction over a different vmapped size, so the float32 results may differ in their
    last bits (measured ≤ 2.4e-7 relative, 1.8e-5 for a mean near 0) — never more."""
    sweep = Sweep(points=POINTS[:2], depths=(2, 4), seeds=6, batch=4)
    spread, alone = _compare(sweep, one_device)
    for name, value in alone.items():
        if name.endswith("_status"):
            np.testing.assert_array_equal(spread[name], value, err_msg=name)
        elif name == "preact_mean":  # a mean of ± values: relative error is meaningless
            np.testing.assert_allclose(spread[name], value, rtol=1e-5, atol=1e-6,
                                       err_msg=name)
        else:
            np.testing.assert_allclose(spread[name], value, rtol=2e-6, err_msg=name)


def test_the_program_runs_on_every_device():
    sweep = Sweep(points=POINTS[:1], depths=(4,), seeds=4, batch=4)
    (spec, idx), = sweep.groups().items()
    devices, chunk = plan_devices(*sweep.family.memory(spec, (4,), 4, False)[:2], 4, "")
    program = sweep_mod.compiled_program.__wrapped__(spec, (4,), 4, 1.0, chunk,
                                                     devices=devices)
    keys = np.asarray(sweep_mod.seed_keys(0, 4))
    out = program(keys, *sweep_mod._stacked_scalars(sweep.family, sweep.points, np.float32))
    assert out["loss"].shape == (1, 4, 1)
    assert out["loss"].sharding.device_set == set(jax.devices()[:len(devices)])
    assert len(devices) >= 2


def test_cpu_devices_share_the_memory_budget(monkeypatch):
    """On a CPU the host devices share the machine's memory: each plans its share with
    the budget divided among them; a network that does not fit a device's part runs on
    fewer devices, and one that does not fit the whole budget is refused in one line."""
    spec = MLPSpec(width=64, depth=8).static_key()
    per, out = network_bytes(spec, (8,), 16), network_output_bytes(spec, (8,), 16)
    n_dev = len(programs_mod.run_devices())
    monkeypatch.setattr(programs_mod, "run_devices", lambda: jax.devices()[:2])
    # room for 8 networks (and all results): 4 per device, each its half of the budget
    monkeypatch.setenv(BUDGET_ENV, repr((8 * per + 2 * 32 * out) / 2**30))
    devices, chunk = plan_devices(per, out, 32, "w")
    assert (len(devices), chunk) == (2, 4)
    # room for 1.5 networks: half of it holds none, so one device, one network at a time
    monkeypatch.setenv(BUDGET_ENV, repr((1.5 * per + 32 * out) / 2**30))
    devices, chunk = plan_devices(per, out, 32, "w")
    assert (len(devices), chunk) == (1, 1)
    monkeypatch.setenv(BUDGET_ENV, repr(0.5 * per / 2**30))
    with pytest.raises(ConfigError, match="^memory: this sweep needs") as e:
        plan_devices(per, out, 32, "w")
    assert "\n" not in str(e.value)
    assert n_dev >= 2


def test_recurrent_sweeps_run_on_one_device_per_process():
    # XLA's CPU runtime deadlocked the recurrent sweep program on two host devices
    # (gradstudy/families/rnn/_family.py): such a family is planned on one device
    from gradstudy.engine import plan_devices
    from gradstudy.families.rnn import RNN_FAMILY

    assert RNN_FAMILY.split_sweeps is False
    devices, chunk = plan_devices(10**6, 10**3, 16, "tiny", per_process=1)
    assert len(devices) == 1 and chunk == 16


def test_cpu_chunks_stay_under_cpu_chunk_bytes(monkeypatch):
    """On a CPU a chunk's working set stays under CPU_CHUNK_BYTES (faster than the largest
    chunk the budget allows: measured in gradstudy/engine/_sweep.py), never below one
    network; the budget still bounds it from above."""
    from gradstudy.engine import CPU_CHUNK_BYTES

    monkeypatch.setattr(programs_mod, "run_devices", lambda: jax.devices()[:1])
    monkeypatch.setenv(BUDGET_ENV, "4")  # room for every network below
    per = CPU_CHUNK_BYTES // 5 + 1  # 4 fit under the cap, 5 do not
    assert plan_devices(per, 10, 64, "w") == (tuple(jax.devices()[:1]), 4)
    # a network bigger than the cap still runs, one at a time
    assert plan_devices(3 * CPU_CHUNK_BYTES, 10, 64, "w")[1] == 1
    # tiny networks: as many as fit the cap, the sweep's own bound (most) still applies
    assert plan_devices(1024, 10, 64, "w")[1] == 64
    assert plan_devices(1024, 10, 64, "w", most=8)[1] == 8
    # and the budget: a chunk never holds more than it allows
    monkeypatch.setenv(BUDGET_ENV, repr(2.5 * per / 2**30))
    assert plan_devices(per, 0, 64, "w")[1] == 2
