"""Tests for tfvq.models.pixelcnn_prior: causality, likelihood, sampling, training, saving."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfvq.models.pixelcnn_prior import PixelCNNPrior

RNG = np.random.default_rng(0)


def _prior(**kwargs):
    config = dict(num_embeddings=8, latent_shape=(4, 5), hidden_channels=8, num_layers=3)
    config.update(kwargs)
    return PixelCNNPrior(**config)


def _codes(prior, batch=3):
    return RNG.integers(0, prior.num_embeddings, size=(batch,) + prior.latent_shape).astype("int32")


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


def _log_softmax(logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


# --- forward pass and causality --------------------------------------------------------------


def test_logits_shape_and_dtype():
    prior = _prior()
    logits = prior(_codes(prior))
    assert tuple(logits.shape) == (3, 4, 5, 8)
    assert logits.dtype == "float32"


@pytest.mark.parametrize("conditional", [False, True])
def test_logits_never_depend_on_the_current_or_later_codes(conditional):
    prior = _prior(num_classes=3 if conditional else None)
    height, width = prior.latent_shape
    codes = _codes(prior, batch=1)
    labels = np.array([1]) if conditional else None

    def logits(c):
        return _numpy(prior(c if labels is None else (c, labels)))[0]

    base = logits(codes)
    for i, j in [(0, 0), (0, 3), (1, 0), (1, 4), (2, 2), (3, 1), (3, 4)]:
        perturbed = codes.copy()
        perturbed[0, i, j] = (codes[0, i, j] + 1) % prior.num_embeddings
        diff = np.abs(logits(perturbed) - base).max(axis=-1)
        flat = diff.reshape(-1)
        position = i * width + j
        # Earlier positions and the perturbed one itself: untouched, exactly.
        np.testing.assert_array_equal(flat[: position + 1], 0.0)
        # Not vacuous: the right and lower neighbours do react.
        if j + 1 < width:
            assert diff[i, j + 1] > 1e-6
        if i + 1 < height:
            assert diff[i + 1, j] > 1e-6


def test_last_position_sees_every_earlier_code():
    """No blind spot: with enough blocks, every earlier code moves the last position's logits."""
    prior = _prior(latent_shape=(4, 4), num_layers=4)
    codes = _codes(prior, batch=1)
    base = _numpy(prior(codes))[0, -1, -1]
    for i in range(4):
        for j in range(4):
            if (i, j) == (3, 3):
                continue
            perturbed = codes.copy()
            perturbed[0, i, j] = (codes[0, i, j] + 3) % prior.num_embeddings
            assert np.abs(_numpy(prior(perturbed))[0, -1, -1] - base).max() > 1e-7, (i, j)


# --- likelihood ------------------------------------------------------------------------------


@pytest.mark.parametrize("conditional", [False, True])
def test_log_prob_is_sum_of_log_softmax_at_the_codes(conditional):
    prior = _prior(num_classes=4 if conditional else None)
    codes = _codes(prior, batch=4)
    labels = np.array([0, 3, 1, 2]) if conditional else None
    logits = _numpy(prior(codes if labels is None else (codes, labels))).astype(np.float64)
    log_probs = _log_softmax(logits)
    b, i, j = np.meshgrid(np.arange(4), np.arange(4), np.arange(5), indexing="ij")
    expected = log_probs[b, i, j, codes].sum(axis=(1, 2))
    got = _numpy(prior.log_prob(codes, labels))
    assert got.shape == (4,)
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_zero_weights_give_uniform_log_prob():
    prior = _prior(num_embeddings=16)
    for variable in prior.weights:
        variable.assign(np.zeros(variable.shape, "float32"))
    codes = _codes(prior, batch=5)
    height, width = prior.latent_shape
    expected = -height * width * math.log(16)
    np.testing.assert_allclose(_numpy(prior.log_prob(codes)), np.full(5, expected), rtol=1e-6)


# --- sampling --------------------------------------------------------------------------------


@pytest.mark.parametrize("conditional", [False, True])
def test_sample_shape_range_and_seed(conditional):
    prior = _prior(num_classes=3 if conditional else None)
    labels = 2 if conditional else None
    codes = _numpy(prior.sample(6, seed=1, labels=labels))
    assert codes.shape == (6, 4, 5) and codes.dtype == np.int32
    assert codes.min() >= 0 and codes.max() < prior.num_embeddings
    np.testing.assert_array_equal(codes, _numpy(prior.sample(6, seed=1, labels=labels)))
    assert not np.array_equal(codes, _numpy(prior.sample(6, seed=2, labels=labels)))


def test_sample_without_seed_follows_global_seed():
    prior = _prior()
    keras.utils.set_random_seed(5)
    first = _numpy(prior.sample(4))
    keras.utils.set_random_seed(5)
    np.testing.assert_array_equal(first, _numpy(prior.sample(4)))


def test_greedy_sample_agrees_with_full_forward_pass():
    """The row-cached sampler picks, at each position, the argmax of the model's own logits."""
    prior = _prior(num_embeddings=32, num_layers=4)
    for variable in prior.weights:  # larger weights: well-separated logits, no argmax ties
        variable.assign(RNG.normal(scale=0.5, size=variable.shape).astype("float32"))
    codes = _numpy(prior.sample(4, seed=0, temperature=1e-6))
    np.testing.assert_array_equal(codes, _numpy(prior(codes)).argmax(axis=-1))


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_sample_frequencies_follow_softmax_of_logits_over_temperature(temperature):
    prior = _prior(num_embeddings=3, latent_shape=(1, 2), num_layers=1)
    # The first position's logits are its head's bias alone, whatever the codes.
    logits_first = np.array([1.0, 0.0, -1.0], "float32")
    prior.head_logits.bias.assign(logits_first)
    prior.head_logits.kernel.assign(np.zeros(prior.head_logits.kernel.shape, "float32"))
    n = 4000
    codes = _numpy(prior.sample(n, seed=3, temperature=temperature))
    expected = np.exp(logits_first / temperature) / np.exp(logits_first / temperature).sum()
    frequencies = np.bincount(codes[:, 0, 0], minlength=3) / n
    # Five binomial standard deviations.
    np.testing.assert_allclose(frequencies, expected, atol=5 * np.sqrt(0.25 / n))


@pytest.mark.slow
def test_conditional_sampling_uses_the_labels():
    """Trained on maps filled with their class label, the prior samples each class's map."""
    num_classes = 3
    prior = PixelCNNPrior(
        num_embeddings=4, latent_shape=(3, 3), hidden_channels=8, num_layers=2,
        num_classes=num_classes,
    )
    labels = np.arange(96) % num_classes
    codes = np.broadcast_to(labels[:, None, None], (96, 3, 3)).astype("int32")
    dataset = tf.data.Dataset.from_tensor_slices((codes, labels)).batch(32)
    prior.compile(optimizer=keras.optimizers.Adam(0.03))
    prior.fit(dataset, epochs=25, verbose=0)
    for label in range(num_classes):
        sampled = _numpy(prior.sample(8, seed=label, labels=label))
        assert np.mean(sampled == label) > 0.9, (label, sampled)


# --- training --------------------------------------------------------------------------------


@pytest.mark.slow
def test_fit_lowers_loss_on_constant_maps_and_reports_accuracy():
    prior = _prior(num_embeddings=16, latent_shape=(4, 4), hidden_channels=32, num_layers=2)
    # Each map holds one code everywhere: only the first position is uncertain, so the loss can
    # fall from log(16) = 2.77 nats per code towards log(16) / 16 = 0.17.
    values = RNG.integers(0, 16, size=128)
    codes = np.broadcast_to(values[:, None, None], (128, 4, 4)).astype("int32")
    dataset = tf.data.Dataset.from_tensor_slices(codes).batch(32)
    prior.compile(optimizer=keras.optimizers.Adam(0.01))
    history = prior.fit(dataset, epochs=8, verbose=0).history
    assert set(history) == {"loss", "accuracy"}
    assert history["loss"][0] > 2.0
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert history["accuracy"][-1] > 0.8
    metrics = prior.evaluate(dataset, verbose=0, return_dict=True)
    # The evaluated loss is the mean negative log-likelihood per code.
    nll = -_numpy(prior.log_prob(codes)).mean() / 16
    np.testing.assert_allclose(metrics["loss"], nll, rtol=1e-4)


@pytest.mark.slow
def test_compile_default_is_adam_and_fit_takes_arrays():
    prior = _prior()
    prior.compile(optimizer="adam")
    history = prior.fit(_codes(prior, batch=8), batch_size=4, epochs=1, verbose=0).history
    assert set(history) == {"loss", "accuracy"}
    assert prior.predict(_codes(prior, batch=5), verbose=0).shape == (5, 4, 5, 8)


def test_compile_rejects_a_loss_of_its_own():
    with pytest.raises(ValueError, match="computes its own loss.*got loss='mse'"):
        _prior().compile(optimizer="adam", loss="mse")


@pytest.mark.slow
def test_unconditional_prior_ignores_labels_of_a_labelled_dataset():
    prior = _prior()
    prior.compile(optimizer="adam")
    codes = _codes(prior, batch=8)
    dataset = tf.data.Dataset.from_tensor_slices((codes, np.zeros(8, "int32"))).batch(4)
    prior.fit(dataset, epochs=1, verbose=0)
    assert prior.predict(dataset, verbose=0).shape == (8, 4, 5, 8)


def test_conditional_prior_trains_only_with_labels():
    prior = _prior(num_classes=2)
    prior.compile(optimizer="adam")
    with pytest.raises(ValueError, match=r"expects \(codes, labels\)"):
        prior.fit(_codes(prior, batch=4), epochs=1, verbose=0)


@pytest.mark.slow
def test_mirrored_step_equals_single_device_step_on_the_global_batch(mirrored_strategy):
    """Two replicas on half a batch each take the same SGD step as one device on the batch."""
    codes = _codes(_prior(), batch=8)
    dataset = tf.data.Dataset.from_tensor_slices(codes).batch(8)

    single = _prior()
    single.compile(optimizer=keras.optimizers.SGD(0.5))
    with mirrored_strategy.scope():
        mirrored = _prior()
        mirrored.compile(optimizer=keras.optimizers.SGD(0.5))
    initial = single.get_weights()
    mirrored.set_weights(initial)

    single_logs = single.fit(dataset, epochs=1, verbose=0).history
    mirrored_logs = mirrored.fit(dataset, epochs=1, verbose=0).history
    np.testing.assert_allclose(mirrored_logs["loss"], single_logs["loss"], rtol=1e-5)
    for got, want in zip(mirrored.get_weights(), single.get_weights()):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    assert not all(np.allclose(a, b) for a, b in zip(single.get_weights(), initial))


# --- saving ----------------------------------------------------------------------------------


@pytest.mark.parametrize("conditional", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_keras_round_trip(tmp_path, conditional):
    prior = _prior(num_classes=3 if conditional else None, kernel_size=5)
    prior.compile(optimizer="adam")
    codes = _codes(prior, batch=4)
    labels = np.array([0, 1, 2, 1]) if conditional else None
    inputs = codes if labels is None else (codes, labels)
    prior.fit(tf.data.Dataset.from_tensors(inputs), epochs=1, verbose=0)

    path = tmp_path / "prior.keras"
    prior.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded) is PixelCNNPrior
    assert loaded.get_config() == prior.get_config()
    np.testing.assert_array_equal(_numpy(loaded(inputs)), _numpy(prior(inputs)))
    sample_labels = 1 if conditional else None
    np.testing.assert_array_equal(
        _numpy(loaded.sample(2, seed=4, labels=sample_labels)),
        _numpy(prior.sample(2, seed=4, labels=sample_labels)),
    )
    # Compiled state survives too: training can resume.
    loaded.fit(tf.data.Dataset.from_tensors(inputs), epochs=1, verbose=0)


def test_dropout_acts_in_fit_only_and_reaches_every_block():
    prior = _prior(dropout=0.5)
    assert all(block.dropout == 0.5 for block in prior.gated_blocks)
    codes = _codes(prior)
    inference = _numpy(prior(codes))
    np.testing.assert_array_equal(_numpy(prior(codes, training=False)), inference)
    assert not np.allclose(_numpy(prior(codes, training=True)), inference, atol=1e-4)
    # evaluate and log_prob see the whole network: they agree with the inference logits.
    prior.compile(optimizer="adam")
    metrics = prior.evaluate(codes, verbose=0, return_dict=True, batch_size=3)
    nll = -_numpy(prior.log_prob(codes)).mean() / codes[0].size
    np.testing.assert_allclose(metrics["loss"], nll, rtol=1e-4)
    expected = -(_log_softmax(inference) * np.eye(8)[codes]).sum(axis=-1).mean()
    np.testing.assert_allclose(metrics["loss"], expected, rtol=1e-4)


def test_config_round_trip():
    prior = _prior(num_classes=5, kernel_size=5, dropout=0.2, name="prior")
    clone = PixelCNNPrior.from_config(prior.get_config())
    assert clone.get_config() == prior.get_config()
    assert clone.count_params() == prior.count_params()


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_embeddings": 1}, "num_embeddings >= 2"),
        ({"latent_shape": (4,)}, r"latent_shape=\(h, w\)"),
        ({"latent_shape": 4}, r"latent_shape=\(h, w\)"),
        ({"latent_shape": (4, 0)}, r"latent_shape=\(h, w\)"),
        ({"num_layers": 0}, "num_layers >= 1"),
        ({"num_classes": 0}, "num_classes"),
        ({"kernel_size": 2}, "odd integer kernel_size"),
        ({"dropout": 1.0}, r"PixelCNNPrior expects dropout in \[0, 1\)"),
    ],
)
def test_constructor_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        _prior(**kwargs)


def test_call_and_log_prob_reject_bad_codes_and_labels():
    prior = _prior()
    with pytest.raises(ValueError, match=r"\(B, 4, 5\) = \(B, \*latent_shape\); got shape"):
        prior(np.zeros((2, 5, 4), "int32"))
    with pytest.raises(ValueError, match=r"\[0, 8\); got values in \[8, 8\]"):
        prior.log_prob(np.full((2, 4, 5), 8))
    with pytest.raises(ValueError, match=r"got values in \[-1, 0\]"):
        prior(np.array([[[-1] * 5] * 4, [[0] * 5] * 4]))
    with pytest.raises(ValueError, match="integer codes"):
        prior(np.full((2, 4, 5), 0.5))
    with pytest.raises(ValueError, match="num_classes=None"):
        prior.log_prob(np.zeros((2, 4, 5)), labels=np.zeros(2))
    with pytest.raises(ValueError, match=r"codes or \(codes, labels\); got 3 items"):
        prior((np.zeros((2, 4, 5)),) * 3)

    conditional = _prior(num_classes=3)
    codes = np.zeros((2, 4, 5), "int32")
    with pytest.raises(ValueError, match="needs labels"):
        conditional(codes)
    with pytest.raises(ValueError, match=r"\[0, 3\); got values in \[0, 3\]"):
        conditional.log_prob(codes, np.array([0, 3]))
    with pytest.raises(ValueError, match=r"labels shaped \(B,\) = \(2,\)"):
        conditional((codes, np.zeros(3, "int32")))


def test_sample_rejects_bad_arguments():
    prior = _prior()
    with pytest.raises(ValueError, match="n >= 1"):
        prior.sample(0)
    with pytest.raises(ValueError, match="temperature > 0"):
        prior.sample(2, temperature=0.0)
    with pytest.raises(ValueError, match="int seed"):
        prior.sample(2, seed="a")
    with pytest.raises(ValueError, match="num_classes=None"):
        prior.sample(2, labels=1)
    with pytest.raises(ValueError, match="needs labels"):
        _prior(num_classes=2).sample(2)
