"""examples/common_flags.py: shared flags from a Config, and the resume step of the examples."""

import dataclasses
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl import flags

STEPS = 2  # training steps per epoch


@pytest.fixture(scope="module")
def common(example):
    return example("common_flags")


@dataclasses.dataclass
class Config:
    dataset: str = "mnist"
    batch_size: int = 64
    learning_rate: float = 1e-3
    strategy: str = "auto"


def test_define_reads_defaults_from_the_config(common):
    flag_values = flags.FlagValues()
    common.define(Config, ["dataset", "batch_size", "learning_rate", "strategy", "output_dir"],
                  output_dir="runs/mine", helps={"batch_size": "Images per step."},
                  choices={"dataset": ["mnist", "cifar10"]}, flag_values=flag_values)
    flag_values(["prog"])
    assert common.config_from_flags(Config, flag_values) == Config()
    assert flag_values["output_dir"].value == "runs/mine"
    assert flag_values["batch_size"].help == "Images per step."
    assert flag_values["learning_rate"].help == common.SHARED["learning_rate"][1]

    flag_values.unparse_flags()
    flag_values(["prog", "--dataset=cifar10", "--batch_size=8", "--strategy=mirrored"])
    assert common.config_from_flags(Config, flag_values) == Config(
        dataset="cifar10", batch_size=8, strategy="mirrored")
    # An enum refuses what it does not list: --dataset was given choices, --strategy has four.
    for bad in ("--dataset=imagenet", "--strategy=tpu"):
        flag_values.unparse_flags()
        with pytest.raises(flags.IllegalFlagValueError):
            flag_values(["prog", bad])


def test_define_refuses_a_flag_it_does_not_share(common):
    with pytest.raises(ValueError, match="'head' is not a shared flag"):
        common.define(Config, ["head"], flag_values=flags.FlagValues())


class _Builder:
    """Makes the tiny compiled model, counting how often it was asked to."""

    def __init__(self):
        self.calls = 0

    def __call__(self):
        self.calls += 1
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
        model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
        return model


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 4)).astype("float32")
    return tf.data.Dataset.from_tensor_slices((x, x.sum(axis=1, keepdims=True))).batch(8)


def _fit(common, workdir, data, epochs, **kwargs):
    build = _Builder()
    model, history, seconds = common.fit_resumable(build, data, epochs, str(workdir),
                                                   steps_per_epoch=STEPS, verbose=0, **kwargs)
    return build.calls, model, history, seconds


def _logged_epochs(path):
    with open(path) as f:
        return len(f.read().strip().splitlines()) - 1  # less the header


def test_a_finished_training_is_loaded_and_more_epochs_continue_it(common, data, tmp_path):
    builds, model, history, _ = _fit(common, tmp_path, data, epochs=2)
    assert builds == 1 and len(history["loss"]) == 2
    assert (tmp_path / "model.keras").is_file() and not (tmp_path / "backup").exists()
    assert _logged_epochs(tmp_path / "history.csv") == 2
    weights = model.get_weights()

    # The same run again: the saved model is loaded, nothing is trained.
    builds, model, history, seconds = _fit(common, tmp_path, data, epochs=2)
    assert builds == 0 and history == {} and seconds == 0.0
    assert int(model.optimizer.iterations.numpy()) == 2 * STEPS
    for saved, loaded in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(saved, loaded)

    # Asked for one more epoch, it trains that one, from the saved optimizer state.
    builds, model, history, _ = _fit(common, tmp_path, data, epochs=3)
    assert builds == 0 and len(history["loss"]) == 1
    assert int(model.optimizer.iterations.numpy()) == 3 * STEPS
    assert _logged_epochs(tmp_path / "history.csv") == 3
    # No validation data: CSVLogger writes val_loss as NA, which the history leaves out.
    assert list(common.read_history(tmp_path / "history.csv")) == ["loss"]
    assert len(common.read_history(tmp_path / "history.csv")["loss"]) == 3


def test_an_interrupted_training_resumes_from_its_last_finished_epoch(common, data, tmp_path,
                                                                      interrupt):
    with pytest.raises(interrupt.error), interrupt.after(0):
        _fit(common, tmp_path, data, epochs=3, stage="prior")
    assert (tmp_path / "backup_prior").is_dir()
    assert _logged_epochs(tmp_path / "history_prior.csv") == 1

    builds, model, history, _ = _fit(common, tmp_path, data, epochs=3, stage="prior")
    # Built afresh, then restored by BackupAndRestore: only the two missing epochs train.
    assert builds == 1 and len(history["loss"]) == 2
    assert int(model.optimizer.iterations.numpy()) == 3 * STEPS
    assert _logged_epochs(tmp_path / "history_prior.csv") == 3
    assert (tmp_path / "prior.keras").is_file() and not (tmp_path / "backup_prior").exists()
    assert not (tmp_path / "model.keras").exists()  # a stage's files carry its name


def test_a_history_without_its_model_is_started_over(common, data, tmp_path):
    (tmp_path / "history.csv").write_text("epoch,loss\n0,1.0\n1,0.5\n")
    builds, _, history, _ = _fit(common, tmp_path, data, epochs=1)
    assert builds == 1 and len(history["loss"]) == 1
    assert _logged_epochs(tmp_path / "history.csv") == 1


def test_own_callbacks_must_back_up_where_it_resumes_from(common, data, tmp_path):
    elsewhere = lambda model: [keras.callbacks.BackupAndRestore(str(tmp_path / "other"))]  # noqa: E731
    with pytest.raises(ValueError, match="must hold one BackupAndRestore there"):
        _fit(common, tmp_path, data, epochs=1, callbacks=elsewhere)
    here = lambda model: [keras.callbacks.BackupAndRestore(os.path.join(tmp_path, "backup")),  # noqa: E731
                          keras.callbacks.ModelCheckpoint(str(tmp_path / "model.keras"))]
    builds, _, history, _ = _fit(common, tmp_path, data, epochs=1, callbacks=here)
    assert builds == 1 and len(history["loss"]) == 1
