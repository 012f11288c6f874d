"""Hypermodels: default spaces, narrowing and extending them, fixed values, invalid spaces."""

import keras
import keras_tuner as kt
import numpy as np
import pytest

import tfvq
from tfvq.tuning import AEHyperModel, TrialCost, VAEHyperModel, VQVAEHyperModel
from tfvq.tuning.space import as_hyperparameter

MNIST = (28, 28, 1)
TINY = {"hidden_channels": 8, "residual_channels": 4, "num_residual_layers": 1}


def _values(hypermodel, name):
    return list(tfvq.tuning.space.possible_values(hypermodel.space[name]))


@pytest.mark.parametrize("cls, names", [
    (AEHyperModel, {"latent_dim"}),
    (VAEHyperModel, {"latent_dim", "beta"}),
    (VQVAEHyperModel, {"num_embeddings", "embedding_dim", "quantizer", "commitment_cost"}),
])
def test_default_space_covers_the_issue_list(cls, names):
    common = {"hidden_channels", "residual_channels", "num_residual_layers", "downsample_stages",
              "downsample", "learning_rate"}
    hypermodel = cls(MNIST, space=TINY)
    assert set(hypermodel.space) == common | names
    assert set(_values(hypermodel, "downsample")) == {"stride", "max_pool", "avg_pool", "none"}


@pytest.mark.parametrize("shape, stages", [((28, 28, 1), [1, 2]), ((32, 32, 3), [1, 2, 3]),
                                           ((12, 20, 1), [1, 2]), ((27, 27, 1), [0])])
def test_default_stages_depend_on_the_input_shape(shape, stages):
    hypermodel = AEHyperModel(shape, space=TINY)
    assert _values(hypermodel, "downsample_stages") == stages
    # The deepest stage count the space offers builds and runs.
    hp = kt.HyperParameters()
    hp.values.update(downsample_stages=stages[-1], downsample="avg_pool")
    assert hypermodel.build(hp)(np.zeros((1,) + shape, "float32")).shape == (1,) + shape


def test_plain_dict_narrows_and_fixes_values():
    hypermodel = VQVAEHyperModel(MNIST, space={**TINY, "num_embeddings": [8, 16],
                                               "quantizer": "vq", "learning_rate": 3e-4,
                                               "commitment_cost": {"min_value": 0.2,
                                                                   "max_value": 0.3}})
    assert _values(hypermodel, "num_embeddings") == [8, 16]
    assert isinstance(hypermodel.space["quantizer"], kt.engine.hyperparameters.Fixed)
    assert isinstance(hypermodel.space["commitment_cost"], kt.engine.hyperparameters.Float)
    hp = kt.HyperParameters()
    hp.values["num_embeddings"] = 16
    model = hypermodel.build(hp)
    assert isinstance(model, tfvq.VQVAE)
    assert (model.num_embeddings, model.hidden_channels, model.quantizer_kind) == (16, 8, "vq")
    assert hp.values["quantizer"] == "vq" and hp.values["learning_rate"] == 3e-4
    assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == pytest.approx(3e-4)


def test_random_draws_reach_the_model():
    hypermodel = VAEHyperModel(MNIST, space={**TINY, "downsample": "stride"})
    oracle_space = kt.HyperParameters()
    hypermodel.declare_hyperparameters(oracle_space)
    for seed in range(3):
        hp = oracle_space.copy()
        for param in hp.space:
            hp.values[param.name] = param.random_sample(seed)
        model = hypermodel.build(hp)
        assert model.latent_dim == hp["latent_dim"]
        assert model.beta == pytest.approx(hp["beta"])
        assert model.downsample_stages == hp["downsample_stages"]


def test_extending_with_another_model_argument_and_fixed_model_kwargs():
    hypermodel = VQVAEHyperModel(MNIST, space={**TINY, "decay": [0.9, 0.99]},
                                 quantizer_options={"kmeans_init": False}, embedding_dim=4)
    assert _values(hypermodel, "decay") == [0.9, 0.99]
    assert _values(hypermodel, "embedding_dim") == [4]  # a model argument fixes a default hp
    hp = kt.HyperParameters()
    hp.values["decay"] = 0.9
    model = hypermodel.build(hp)
    assert model.decay == 0.9 and model.embedding_dim == 4


def test_user_hyperparameters_object_is_respected():
    hps = kt.HyperParameters()
    hps.Choice("latent_dim", [3, 5])
    hps.Fixed("hidden_channels", 8)
    hypermodel = AEHyperModel(MNIST, space=hps)
    assert _values(hypermodel, "latent_dim") == [3, 5]
    assert _values(hypermodel, "hidden_channels") == [8]


def test_tuner_hyperparameters_override_and_are_checked(tmp_path):
    hps = kt.HyperParameters()
    hps.Fixed("hidden_channels", 8)
    tuner = tfvq.tuning.make_tuner("ae", "random", input_shape=MNIST, space=TINY,
                                   hyperparameters=hps, max_trials=1, directory=tmp_path)
    assert tuner.oracle.get_space().get("hidden_channels") == 8

    bad = kt.HyperParameters()
    bad.Fixed("downsample_stages", 3)
    with pytest.raises(ValueError, match=r"downsample_stages=3 .*divisible by 2\*\*downsample_stages = 8"):
        tfvq.tuning.make_tuner("ae", "random", input_shape=MNIST, hyperparameters=bad,
                               max_trials=1, directory=tmp_path, project_name="bad")
    assert not list((tmp_path / "bad").glob("trial_*"))


@pytest.mark.parametrize("space, message", [
    ({"downsample_stages": 3}, r"downsample_stages=3 cannot make a valid model for input_shape "
                               r"\(28, 28, 1\).*expected downsample_stages in \[0, 1, 2\]"),
    ({"downsample_stages": [1, 2, 3]}, r"downsample_stages=3"),
    ({"downsample_stages": {"min_value": 1, "max_value": 4}}, r"downsample_stages=3"),
    ({"downsample": "pooling"}, r"downsample='pooling'.*expected one of"),
    ({"quantizer": ["vq", "kmeans"]}, r"quantizer='kmeans'.*one of \(.*'ema'"),
    ({"hidden_channels": [0, 8]}, r"hidden_channels=0 .*an int >= 1"),
    ({"hidden_channels": [8.5, 16.0]}, r"hidden_channels=8.5"),
    ({"learning_rate": -1e-3}, r"learning_rate=-0.001 .*> 0"),
    ({"colour": 3}, r"unknown hyperparameter 'colour'"),
    ({"reconstruction_loss": ["mse", "bce"]}, r"reconstruction_loss cannot be searched"),
    ({"num_embeddings": []}, r"num_embeddings must list at least one value"),
    ({"num_embeddings": {"max_value": 8}}, r"a range for num_embeddings"),
])
def test_invalid_spaces_are_refused_before_any_trial(space, message):
    with pytest.raises(ValueError, match=message):
        VQVAEHyperModel(MNIST, space=space)


def test_stages_are_free_when_no_mode_downsamples():
    hypermodel = AEHyperModel((12, 12, 1), space={**TINY, "downsample": "none",
                                                  "downsample_stages": 3, "latent_dim": 4})
    model = hypermodel.build(kt.HyperParameters())
    assert model(np.zeros((1, 12, 12, 1), "float32")).shape == (1, 12, 12, 1)


def test_bad_model_argument_fails_at_construction():
    with pytest.raises(ValueError, match=r"\['colour'\] are not arguments of VAE"):
        VAEHyperModel(MNIST, colour=3)
    with pytest.raises(ValueError, match="reconstruction_loss"):
        AEHyperModel(MNIST, space=TINY, reconstruction_loss="logistic")


def test_objectives():
    assert tfvq.tuning.make_objective() == kt.Objective("val_reconstruction_loss", "min")
    assert tfvq.tuning.make_objective("psnr").direction == "max"
    assert tfvq.tuning.make_objective("val_psnr").name == "val_psnr"
    vqvae = VQVAEHyperModel(MNIST, space=TINY)
    with pytest.raises(ValueError, match=r"objective='val_bits_per_dim' is not a metric of "
                                         r"VQVAEHyperModel.*reconstruction_loss='logistic'"):
        tfvq.tuning.make_objective("bits_per_dim", vqvae)
    with pytest.raises(ValueError, match="bits_per_dim"):
        tfvq.tuning.make_objective("bits_per_dim", VAEHyperModel(MNIST, space=TINY))
    logistic = VAEHyperModel(MNIST, space=TINY, reconstruction_loss="logistic")
    assert tfvq.tuning.make_objective("bits_per_dim", logistic).name == "val_bits_per_dim"
    with pytest.raises(ValueError, match=r"objective must be one of .*got 'accuracy'"):
        tfvq.tuning.make_objective("accuracy")
    with pytest.raises(ValueError, match="validation metric"):
        tfvq.tuning.make_objective(kt.Objective("loss", "min"))


def test_make_tuner_picks_logistic_vae_for_bits_per_dim(tmp_path):
    tuner = tfvq.tuning.make_tuner("vae", "hyperband", input_shape=MNIST, space=TINY,
                                   objective="bits_per_dim", max_epochs=2, max_trials=2,
                                   directory=tmp_path)
    assert tuner.hypermodel.model_kwargs["reconstruction_loss"] == "logistic"
    assert tuner.oracle.objective.name == "val_bits_per_dim"
    assert tuner.oracle.max_trials == 2
    with pytest.raises(ValueError, match=r"tuner must be one of .*got 'grid'"):
        tfvq.tuning.make_tuner("vae", "grid", input_shape=MNIST)


def test_as_hyperparameter_kinds():
    assert isinstance(as_hyperparameter("a", (1, 2)), kt.engine.hyperparameters.Choice)
    assert as_hyperparameter("a", [1, 2.5]).values == [1.0, 2.5]
    assert isinstance(as_hyperparameter("a", {"min_value": 1, "max_value": 4}),
                      kt.engine.hyperparameters.Int)
    assert as_hyperparameter("a", kt.engine.hyperparameters.Fixed("b", 3)).name == "a"
    with pytest.raises(ValueError, match=r"a must be a value.*got None"):
        as_hyperparameter("a", None)


def test_trial_cost_records_parameters_and_step_time():
    # The callback is model-agnostic: a one-layer model keeps the test fast.
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse", jit_compile=False)
    x, y = np.zeros((12, 4), "float32"), np.zeros((12, 2), "float32")
    history = model.fit(x, y, batch_size=4, epochs=2, callbacks=[TrialCost()], verbose=0)
    assert history.history["parameters"] == [10.0, 10.0]
    assert all(0 < t < 1 for t in history.history["step_time"])
