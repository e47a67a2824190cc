"""The he_vs_xavier figure counts every diverged run (issue 16: its ✕ markers overlapped,
2 drawn for 4 runs, and had no legend entry), checked on the drawn matplotlib artists."""

import importlib.util
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def _study():
    spec = importlib.util.spec_from_file_location("he_vs_xavier_under_test",
                                                  ROOT / "experiments" / "he_vs_xavier.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_diverged_run_is_counted_by_a_marker_or_its_label():
    study = _study()
    steps = np.array([3, 3, 4, 3, 500, 990])  # four within 2 % of 1000 steps, two apart
    fig, ax = plt.subplots()
    study._mark_diverged(ax, steps, 2.7, "C0", 1000)
    markers = [line for line in ax.lines if line.get_marker() == "x"]
    labels = [t.get_text() for t in ax.texts]
    assert [float(m.get_xdata()[0]) for m in markers] == [3.0, 500.0, 990.0]
    assert labels == ["×4"]
    counted = len(markers) + sum(int(t[1:]) - 1 for t in labels)
    assert counted == steps.size
    plt.close(fig)


def test_the_two_inits_draw_their_markers_on_separate_rows():
    study = _study()
    assert len(set(study.DIVERGED_ROW.values())) == len(study.INITS)
    assert all(study.LN10 < y < study.LN10 + 0.6 for y in study.DIVERGED_ROW.values())
