"""``train()`` checks its data before anything is compiled: every bad field is one line
naming it (before the fix, ``y = -1`` trained silently as the last class, labels ≥ classes
and NaN inputs were recorded as a divergence at step 0, an inf test input gave NaN test
losses, and the others were tracebacks); array-likes are trained as the arrays they are."""

import numpy as np
import pytest

from gradstudy import MLPSpec
from gradstudy.data import Dataset, check_dataset
from gradstudy.engine import OptimizerSpec, Training, train
from gradstudy.errors import ConfigError

RNG = np.random.default_rng(7)
X = RNG.normal(size=(40, 5)).astype(np.float32)
Y = RNG.integers(0, 3, 40).astype(np.int32)
CLEAN = Dataset(X[:30], Y[:30], X[30:], Y[30:], 3)
SPEC = MLPSpec(width=4, depth=1, in_dim=5, out_dim=3, activation="relu", init="he_normal")
TRAINING = Training(points=(SPEC,), optimizer=OptimizerSpec("sgd", 0.05), steps=4, seeds=2,
                    batch_size=8, record_every=2, eval_every=2)


def _with(array, index, value):
    out = np.array(array)
    out[index] = value
    return out


def _assert_refused(data, field, cache_dir=None, training=TRAINING):
    with pytest.raises(ConfigError) as info:
        train(training, data, cache_dir=cache_dir, progress=False)
    message = str(info.value)
    assert message.split(":")[0] == field, message
    assert "\n" not in message


@pytest.mark.parametrize("data, field", [
    # labels out of range: -1 trained as class 2, 3 as a divergence at step 0
    (CLEAN._replace(y=_with(CLEAN.y, 4, -1)), "y"),
    (CLEAN._replace(y=_with(CLEAN.y, 4, 3)), "y"),
    (CLEAN._replace(y_test=_with(CLEAN.y_test, 0, -1)), "y_test"),
    (CLEAN._replace(y_test=_with(CLEAN.y_test, 0, 7)), "y_test"),
    (CLEAN._replace(y=CLEAN.y.astype(np.int64) + 2**40), "y"),  # no wrap through int32
    # float labels (integral values included: a label is a category, not a number)
    (CLEAN._replace(y=CLEAN.y.astype(np.float32)), "y"),
    (CLEAN._replace(y_test=CLEAN.y_test + 0.5), "y_test"),
    # non-finite inputs, train and test; beyond float32's range is inf
    (CLEAN._replace(x=_with(CLEAN.x, (3, 2), np.nan)), "x"),
    (CLEAN._replace(x=_with(CLEAN.x, (0, 0), -np.inf)), "x"),
    (CLEAN._replace(x_test=_with(CLEAN.x_test, (1, 1), np.inf)), "x_test"),
    (CLEAN._replace(x_test=_with(CLEAN.x_test.astype(np.float64), (1, 1), 1e300)), "x_test"),
    # empty sets
    (CLEAN._replace(x=CLEAN.x[:0], y=CLEAN.y[:0]), "x"),
    (CLEAN._replace(x_test=CLEAN.x_test[:0], y_test=CLEAN.y_test[:0]), "x_test"),
    # lengths and shapes
    (CLEAN._replace(y=CLEAN.y[:-1]), "y"),
    (CLEAN._replace(y_test=CLEAN.y_test[:3]), "y_test"),
    (CLEAN._replace(x_test=CLEAN.x_test[:, :4]), "x_test"),
    (CLEAN._replace(x_test=CLEAN.x_test[:, :, None]), "x_test"),
    (CLEAN._replace(x=CLEAN.x[:, 0]), "x"),
    (CLEAN._replace(x=CLEAN.x[:, :4], x_test=CLEAN.x_test[:, :4]), "points"),  # in_dim 5
    (CLEAN._replace(y=CLEAN.y[:, None], y_test=CLEAN.y_test[:, None]), "y"),
    # classes
    (CLEAN._replace(classes=0), "classes"),
    (CLEAN._replace(classes=1), "classes"),
    (CLEAN._replace(classes=-3), "classes"),
    (CLEAN._replace(classes=3.0), "classes"),
    (CLEAN._replace(classes=None), "classes"),
    (CLEAN._replace(classes=True), "classes"),
    # not numbers
    (CLEAN._replace(x=CLEAN.x.astype(object)), "x"),
    (CLEAN._replace(x=[[1.0, 2.0], [3.0]] * 15), "x"),  # ragged
    (CLEAN._replace(x=CLEAN.x.astype(np.complex64)), "x"),
    (CLEAN._replace(y=CLEAN.y.astype(str)), "y"),
    (CLEAN._replace(y=None), "y"),
    (CLEAN._replace(x_test="x"), "x_test"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_bad_data_is_refused_in_one_line_naming_the_field(data, field):
    _assert_refused(data, field)


def test_regression_targets_are_checked_too():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(20, 5)).astype(np.float32)
    t = rng.normal(size=(20, 2)).astype(np.float32)
    data = Dataset(x[:15], t[:15], x[15:], t[15:], 0)
    training = Training(points=(SPEC.replace(out_dim=2),), optimizer=OptimizerSpec("sgd"),
                        steps=2, seeds=1, batch_size=4, loss="mse", eval_every=2)
    _assert_refused(data._replace(y=_with(data.y, (2, 1), np.nan)), "y", training=training)
    _assert_refused(data._replace(y_test=_with(data.y_test, 0, np.inf)), "y_test",
                    training=training)
    _assert_refused(data._replace(y=data.y[:, 0], y_test=data.y_test[:, 0]), "y",
                    training=training)
    _assert_refused(data._replace(y=data.y[:, :1], y_test=data.y_test[:, :1]), "points",
                    training=training)  # out_dim 2, one target


def test_a_cache_dir_that_is_a_file_or_cannot_be_made_is_refused(tmp_path):
    file = tmp_path / "file"
    file.write_text("not a folder")
    _assert_refused(CLEAN, "cache_dir", cache_dir=file)
    _assert_refused(CLEAN, "cache_dir", cache_dir=file / "below")  # parent is a file
    _assert_refused(CLEAN, "cache_dir", cache_dir=3)
    _assert_refused(CLEAN, "cache_dir", cache_dir="")
    made = tmp_path / "new" / "cache"
    train(TRAINING, CLEAN, cache_dir=made, progress=False)
    assert len(list(made.glob("train-*.nc"))) == 1


def test_output_shapes_are_traced_only_when_computing(tmp_path, monkeypatch):
    """The output-shape check traces each program's init and apply (0.4-0.6 s); a cached
    result's key holds the data's fingerprint, so its data passed the check when it was
    computed: a cache hit does not trace again, and still refuses bad data."""
    import gradstudy.engine._training as train_mod

    traced = []
    real = train_mod._check_output_shape
    monkeypatch.setattr(train_mod, "_check_output_shape",
                        lambda *args: (traced.append(args[0]), real(*args)))
    first = train(TRAINING, CLEAN, cache_dir=tmp_path, progress=False)
    assert traced == [0]
    again = train(TRAINING, CLEAN, cache_dir=tmp_path, progress=False)
    assert traced == [0]  # from the cache: not traced
    np.testing.assert_array_equal(again.loss.values, first.loss.values)
    _assert_refused(CLEAN._replace(y=_with(CLEAN.y, 4, -1)), "y", cache_dir=tmp_path)
    bad_shape = CLEAN._replace(y=CLEAN.y[:, None], y_test=CLEAN.y_test[:, None])
    _assert_refused(bad_shape, "y", cache_dir=tmp_path)  # another key: computed, checked
    assert traced == [0, 0]


def test_clean_data_trains_and_array_likes_train_as_their_arrays():
    """A list, int64 labels and float64 inputs are the same training as the float32/int32
    arrays they convert to: bit-identical records, one cache key."""
    reference = train(TRAINING, CLEAN, progress=False)
    assert np.all(np.isfinite(reference.loss.values))
    assert np.all(reference.diverged_at.values == -1)
    loose = Dataset(CLEAN.x.tolist(), CLEAN.y.astype(np.int64), CLEAN.x_test.astype(np.float64),
                    list(CLEAN.y_test), np.int64(3))
    again = train(TRAINING, loose, progress=False)
    for name in ("loss", "test_loss", "layer_grad_norm"):
        np.testing.assert_array_equal(again[name].values, reference[name].values)
    assert again.attrs["description"] == reference.attrs["description"]
    # the checked arrays are the given values, converted
    checked = check_dataset(loose)
    assert checked.x.dtype == np.float32 and checked.y.dtype == np.int32
    np.testing.assert_array_equal(checked.x, CLEAN.x)


def test_check_dataset_refuses_what_is_not_a_dataset():
    for value in (None, {"x": X}, (X, Y, X, Y, 3)):
        with pytest.raises(ConfigError, match=r"^data: must be a gradstudy.data.Dataset"):
            check_dataset(value)
