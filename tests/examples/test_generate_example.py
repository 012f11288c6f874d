"""examples/generate.py at a tiny setting: pictures and metrics written, each stage resumed."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "generate.py"
TINY = dict(train_examples=256, eval_examples=64, batch_size=32, vqvae_epochs=1,
            vqvae_steps_per_epoch=3, prior_epochs=1, prior_steps_per_epoch=3, num_embeddings=16,
            embedding_dim=4, hidden_channels=8, prior_channels=8, prior_layers=2, num_samples=4)


def _lines(path):
    return len(path.read_text().strip().splitlines())


@pytest.mark.slow
def test_command_line_writes_pictures_and_bounds_and_each_stage_resumes(
        example, tmp_path, mnist_data_dir):
    # One end-to-end run from the command line (class-conditional, so that the labelled path,
    # codes with labels and one sample per class, is covered by the same run); the reruns
    # in-process over its files. One first run instead of two: it is most of the cost.
    args = [sys.executable, str(SCRIPT), f"--output_dir={tmp_path}", f"--data_dir={mnist_data_dir}",
            *(f"--{name}={value}" for name, value in {**TINY, "num_samples": 10}.items()),
            "--class_conditional"]
    cli = subprocess.run(args, capture_output=True, text=True,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert cli.returncode == 0, cli.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["samples"] == 10  # one per class
    assert metrics["config"]["prior_layers"] == 2 and metrics["config"]["class_conditional"]
    for name in ("samples.png", "interpolation.png", "reconstructions.png", "vqvae.keras",
                 "prior.keras", "history_vqvae.csv", "history_prior.csv"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert not (tmp_path / "backup_vqvae").exists() and not (tmp_path / "backup_prior").exists()
    terms = metrics["bits_per_dim_terms"]
    assert metrics["test_examples"] == 64
    assert metrics["bits_per_dim"] == pytest.approx(
        terms["reconstruction_bits_per_dim"] + terms["prior_bits_per_dim"])
    # A barely trained prior over 16 codes on a 7x7 map costs about log2(16) bits per code.
    assert terms["prior_bits_per_dim"] < 1.5 * 49 * math.log2(16) / 784
    assert 0.0 <= metrics["prior_val_accuracy"] <= 1.0
    assert metrics["keras_io_prior_val_accuracy"] == 0.673
    codes = metrics["test_codes"]
    assert 1.0 <= codes["perplexity"] <= 16 and 0.0 < codes["usage"] <= 1.0
    assert 0.0 < codes["most_frequent_code_accuracy"] <= 1.0

    generate = example("generate")

    def run(**overrides):
        config = generate.Config(data_dir=mnist_data_dir, **{**TINY, **overrides})
        return generate.train_and_evaluate(config, str(tmp_path))

    # The same run again loads both saved models instead of training them again.
    again = run(class_conditional=True, num_samples=10)
    assert again["train_seconds"]["vqvae"] == 0.0 and again["train_seconds"]["prior"] == 0.0
    assert again["prior_val_accuracy"] == pytest.approx(metrics["prior_val_accuracy"])

    # Each stage is its own: a longer prior trains on from its saved state, over the loaded
    # VQ-VAE, which does not train again.
    longer = run(class_conditional=True, num_samples=10, prior_epochs=2)
    assert longer["train_seconds"]["vqvae"] == 0.0 and longer["train_seconds"]["prior"] > 0.0
    assert _lines(tmp_path / "history_vqvae.csv") == 2  # header + one epoch
    assert _lines(tmp_path / "history_prior.csv") == 3  # header + two epochs


def test_prior_holdout_is_the_last_training_images_in_order(example, mnist_data_dir):
    import numpy as np

    import tfvq

    generate = example("generate")
    config = generate.Config(data_dir=mnist_data_dir, batch_size=32, prior_holdout=0.1)
    kept, held, count = generate._prior_splits(config, None, 100)
    # keras.io's validation_split arithmetic: int(100 * 0.9) kept, the other 10 held out.
    assert count == 10
    kept, held = (np.concatenate(list(ds.as_numpy_iterator())) for ds in (kept, held))
    assert len(kept) == 90 and len(held) == 10
    whole = tfvq.data.load("mnist", "train[:100]", batch_size=100, data_dir=mnist_data_dir,
                           shuffle=False)
    np.testing.assert_array_equal(np.concatenate([kept, held]), next(iter(whole)).numpy())
    # Without a holdout the prior trains on the VQ-VAE's own training set.
    assert generate._prior_splits(generate.Config(), "train", 100) == ("train", None, 0)


@pytest.mark.parametrize("holdout", [-0.1, 1.0, 0.995, 1e-17])  # of 100: keeps none, holds out none
def test_a_bad_prior_holdout_fails_before_any_training(example, tmp_path, mnist_data_dir,
                                                       holdout):
    generate = example("generate")
    config = generate.Config(data_dir=mnist_data_dir, **{**TINY, "train_examples": 100},
                             prior_holdout=holdout)
    with pytest.raises(ValueError, match="prior_holdout"):
        generate.train_and_evaluate(config, str(tmp_path))
    assert not list(tmp_path.iterdir())  # nothing trained, nothing written


def test_quantizer_flags_reach_the_codebook(example):
    generate = example("generate")
    default = generate.build_vqvae(generate.Config(), (28, 28, 1), 0.1).quantizer
    assert default.kmeans_init and default.dead_code_threshold == 1.0
    plain = generate.build_vqvae(generate.Config(kmeans_init=False, dead_code_threshold=0.0),
                                 (28, 28, 1), 0.1).quantizer
    assert not plain.kmeans_init and plain.dead_code_threshold == 0.0


def test_prior_schedule_and_weight_decay_flags_reach_the_optimizer(example):
    import keras

    generate = example("generate")
    plain = generate.build_prior(generate.Config(prior_channels=8, prior_layers=1), 16, (3, 3),
                                 None)
    assert type(plain.optimizer) is keras.optimizers.Adam
    assert float(plain.optimizer.learning_rate) == pytest.approx(1e-3)
    config = generate.Config(prior_channels=8, prior_layers=1, prior_schedule="cosine",
                             prior_weight_decay=0.05)
    prior = generate.build_prior(config, 16, (3, 3), None, total_steps=100)
    assert isinstance(prior.optimizer, keras.optimizers.AdamW)
    assert prior.optimizer.weight_decay == pytest.approx(0.05)
    schedule = prior.optimizer._learning_rate
    assert isinstance(schedule, keras.optimizers.schedules.CosineDecay)
    assert float(schedule(0)) == pytest.approx(1e-3)
    assert float(schedule(50)) == pytest.approx(5e-4)
    assert float(schedule(100)) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="total_steps"):
        generate.build_prior(config, 16, (3, 3), None)
    dropped = generate.build_prior(generate.Config(prior_channels=8, prior_layers=2,
                                                   prior_dropout=0.2), 16, (3, 3), None)
    assert [block.dropout for block in dropped.gated_blocks] == [0.2, 0.2]


def _receptive_field(encoder, image_shape):
    """Pixels whose value changes the latent at the map's centre, as (rows, cols).

    A pixel counts if the gradient reaches it for any of several random images: for one image
    a ReLU that happens to be off hides the pixels behind it.
    """
    import numpy as np
    import tensorflow as tf

    images = tf.Variable(np.random.default_rng(0).uniform(size=(8, *image_shape)), dtype="float32")
    with tf.GradientTape() as tape:
        latents = encoder(images)
        centre = latents[:, latents.shape[1] // 2, latents.shape[2] // 2]
        total = tf.reduce_sum(centre * tf.random.stateless_normal(centre.shape, (1, 2)))
    seen = np.abs(tape.gradient(total, images).numpy()).sum(axis=(0, -1)) > 0
    rows, cols = np.nonzero(seen.any(1))[0], np.nonzero(seen.any(0))[0]
    return rows.max() - rows.min() + 1, cols.max() - cols.min() + 1


@pytest.mark.slow
def test_keras_io_architecture_sees_seven_by_seven_pixels_per_code(example, tmp_path):
    import keras
    import numpy as np

    generate = example("generate")
    keras.utils.set_random_seed(0)
    config = generate.Config(architecture="keras_io", hidden_channels=8, embedding_dim=4,
                             num_embeddings=16)
    model = generate.build_vqvae(config, (28, 28, 1), 0.1)
    encoder = model.encoder
    assert [type(layer).__name__ for layer in encoder.layers] == [
        "Rescaling", "Conv2D", "Conv2D", "Conv2D"]
    assert [layer.filters for layer in encoder.layers[1:]] == [4, 8, 4]
    assert _receptive_field(encoder, (28, 28, 1)) == (7, 7)
    paper = generate.build_vqvae(generate.Config(hidden_channels=8, embedding_dim=4),
                                 (28, 28, 1), 0.1)
    assert _receptive_field(paper.encoder, (28, 28, 1)) == (26, 26)
    # Inputs are centred as tfvq's own encoders centre them: mid-gray reaches the convs as 0.
    assert float(keras.ops.max(keras.ops.abs(encoder.layers[0](np.full((1, 4, 4, 1), 0.5))))) == 0
    images = np.random.default_rng(1).uniform(size=(2, 28, 28, 1)).astype("float32")
    assert model.predict(images, verbose=0).shape == (2, 28, 28, 1)
    path = tmp_path / "keras_io.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded.predict(images, verbose=0), model.predict(images, verbose=0),
                               atol=1e-6)
    with pytest.raises(ValueError, match="divisible by 4"):
        generate.keras_io_networks((30, 30, 1), 4, 8)
