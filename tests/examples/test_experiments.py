"""The seed-experiment scripts at a tiny setting: each runs and writes its JSON and figures (a
process of its own each, in the slow set); their shared helpers against references."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = ROOT / "examples" / "experiments"


def _run(script, output_dir, *args, data_dir=None):
    # tfvq comes from the installed package (pip install -e), as for a user running the script.
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, str(EXPERIMENTS / f"{script}.py"), f"--output_dir={output_dir}",
               *args]
    if data_dir is not None:
        command.append(f"--data_dir={data_dir}")
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((Path(output_dir) / "results.json").read_text())
    for key in ("command", "wall_time_s", "machine", "experiment", "figures"):
        assert key in results, key
    assert results["command"].startswith(f"python examples/experiments/{script}.py")
    for name in results["figures"]:
        assert (Path(output_dir) / name).stat().st_size > 0, name
    return results


@pytest.mark.slow
def test_preprocessing(tmp_path):
    results = _run("preprocessing", tmp_path, "--images=astronaut,page", "--crop_size=32",
                   "--num_crops=1", "--min_size=200")
    # page is 191 x 384: below the minimum side, so the filter drops it.
    assert results["images"]["astronaut"]["kept"] and not results["images"]["page"]["kept"]
    assert results["num_kept"] == 1 and results["crop_shape"] == [32, 32, 3]
    assert results["roundtrip_max_abs_error"] < 1e-5
    assert set(results["figures"]) == {"pipeline.png", "dropped.png"}


@pytest.mark.slow
def test_ae_design(tmp_path, mnist_data_dir):
    results = _run("ae_design", tmp_path, "--losses=mse,bce", "--downsample=avg_pool,none",
                   "--steps=2", "--batch_size=8", "--hidden_channels=4",
                   "--residual_channels=2", "--train_examples=32", "--test_examples=16",
                   data_dir=mnist_data_dir)
    variants = results["variants"]
    assert set(variants) == {"mse_avg_pool", "mse_none", "bce_avg_pool", "bce_none"}
    for variant in variants.values():
        for key in ("test_mse", "test_bce", "test_psnr", "test_ssim", "latent_size"):
            assert key in variant, key
    # 28x28 halved twice is 7x7; with no downsampling the map keeps the image's size.
    assert variants["mse_avg_pool"]["latent_shape"] == [7, 7, 4]
    assert variants["bce_none"]["latent_size"] == 28 * 28 * 4


@pytest.mark.slow
def test_vae_latents(tmp_path, mnist_data_dir):
    # 100 steps: fit_steps makes them two epochs of 50, so each curve has two points.
    results = _run("vae_latents", tmp_path, "--datasets=mnist",
                   "--variants=2d,deep_beta0.5,deep_beta0.5_2d", "--mnist_steps=100",
                   "--batch_size=8", "--hidden_channels=4", "--train_examples=32",
                   "--knn_train_examples=32", "--test_examples=16", data_dir=mnist_data_dir)
    runs = results["runs"]
    assert set(runs) == {"mnist_2d", "mnist_deep_beta0.5", "mnist_deep_beta0.5_2d"}
    deep = runs["mnist_deep_beta0.5"]
    assert deep["beta"] == 0.5 and deep["latent_dim"] == 16
    deep_2d = runs["mnist_deep_beta0.5_2d"]
    assert deep_2d["beta"] == 0.5 and deep_2d["latent_dim"] == 2
    assert deep_2d["num_residual_layers"] == 3 and deep_2d["hidden_channels"] == 8
    for run in runs.values():
        assert 0.0 <= run["knn_accuracy"] <= 1.0
        for key in ("test_mse", "test_psnr", "test_ssim", "test_kl_nats"):
            assert key in run, key
        curve = run["loss_curve"]
        assert curve["step"] == [50, 100]
        for term in ("loss", "reconstruction_nll", "kl_loss"):
            # JSON writes NaN and infinities as null.
            assert len(curve[term]) == 2 and all(v is not None for v in curve[term]), term
        assert curve["loss"][-1] == pytest.approx(run["final_train_loss"], rel=1e-5)
        # The total is NLL + beta * KL, each an epoch mean of the same steps.
        for loss, nll, kl in zip(curve["loss"], curve["reconstruction_nll"], curve["kl_loss"]):
            assert loss == pytest.approx(nll + run["beta"] * kl, rel=1e-3)
    for name in ("mnist_2d_scatter.png", "mnist_deep_beta0.5_2d_scatter.png",
                 "mnist_latents_2d.png", "mnist_loss_curves.png"):
        assert name in results["figures"], name
        assert (tmp_path / name).stat().st_size > 0, name


@pytest.mark.slow
def test_augmentation(tmp_path, mnist_data_dir):
    import numpy as np
    from scipy import stats

    conditions = ["real", "real+recon", "real+pixelcnn", "real+vae", "pixelcnn"]
    results = _run("augmentation", tmp_path, "--labels_per_class=2,3", "--seeds=0,1",
                   f"--conditions={','.join(conditions)}", "--synthetic_ratio=2",
                   "--resample_fraction=0.5", "--test_examples=50", "--batch_size=8",
                   "--hidden_channels=4", "--num_embeddings=8", "--embedding_dim=2",
                   "--vq_steps=2", "--prior_steps=2", "--prior_channels=4", "--prior_layers=1",
                   "--vae_steps=2", "--classifier_steps=2", data_dir=mnist_data_dir)
    assert set(results["budgets"]) == {"20", "30"}
    assert set(results["figures"]) == {"accuracy.png"} | {
        f"{labels}_{name}.png" for labels in (20, 30)
        for name in ("real", "recon", "pixelcnn", "vae")}
    for labels, budget in results["budgets"].items():
        n = int(labels)
        assert budget["labels"] == budget["real_train_examples"] == n
        assert budget["seeds"] == [0, 1] and list(budget["conditions"]) == conditions
        table = budget["conditions"]
        # --synthetic_ratio=2: every augmenter adds two images per labelled image.
        assert [table[c]["train_examples"] for c in conditions] == [n, 3 * n, 3 * n, 3 * n, 2 * n]
        real = np.array(table["real"]["test_accuracy_per_seed"])
        assert "difference_vs_real" not in table["real"]
        for name, entry in table.items():
            values = np.array(entry["test_accuracy_per_seed"])
            assert len(values) == 2 and np.all((0 <= values) & (values <= 1)), name
            interval = entry["test_accuracy"]
            assert interval["n"] == 2 and interval["low"] <= interval["mean"] <= interval["high"]
            assert interval["mean"] == pytest.approx(values.mean(), abs=1e-6)
            # mean ± t(0.975, 1 dof) * s / sqrt(2); scipy's t.interval is NaN where s = 0.
            half = stats.t.ppf(0.975, 1) * values.std(ddof=1) / np.sqrt(2)
            assert [interval["low"], interval["high"]] == pytest.approx(
                [values.mean() - half, values.mean() + half], abs=1e-5)
            if name == "real":
                continue
            difference = np.array(entry["difference_vs_real_per_seed"])
            np.testing.assert_allclose(difference, values - real, atol=1e-5)
            d = entry["difference_vs_real"]
            assert d["low"] <= d["mean"] <= d["high"] and d["n"] == 2
            assert d["mean"] == pytest.approx(difference.mean(), abs=1e-5)
            assert entry["verdict"] == ("helps" if d["low"] > 0 else "hurts" if d["high"] < 0
                                        else "no detectable difference")
        recognised = budget["real_classifier_accuracy_on_synthetic"]
        assert set(recognised) == {"recon", "pixelcnn", "vae"}
        for interval in recognised.values():
            assert interval["low"] <= interval["mean"] <= interval["high"]
        assert set(budget["generators"]) == {"vqvae", "vae"}
        vqvae = budget["generators"]["vqvae"]["per_seed"]
        assert len(vqvae) == 2 and len(budget["generators"]["vae"]["per_seed"]) == 2
        # --resample_fraction > 0 needs the prior for the reconstructions too.
        assert all("prior_final_nll_nats_per_code" in seed for seed in vqvae)
        assert len(budget["classifier_time_per_seed"]) == 2


@pytest.mark.slow
def test_compare_models(tmp_path, cifar10_data_dir):
    results = _run("compare_models", tmp_path, "--models=ae,vae,vqvae", "--steps=2",
                   "--prior_steps=2", "--batch_size=8", "--hidden_channels=4",
                   "--residual_channels=2", "--num_residual_layers=1", "--num_embeddings=16",
                   "--embedding_dim=2", "--prior_channels=4", "--prior_layers=1",
                   "--iwae_samples=2", "--train_examples=32", "--test_examples=16",
                   data_dir=cifar10_data_dir)
    models = results["models"]
    # 8x8 codes of 16 entries: 64 * 4 bits; the AE / VAE get 256 / 32 = 8 floats.
    assert results["latent_budget_bits"] == 256
    assert models["ae"]["latent_budget"]["nominal_bits"] == 256
    for name in ("ae", "vae", "vqvae"):
        for key in ("test_mse", "test_psnr", "test_ssim"):
            assert key in models[name], (name, key)
    assert "bits_per_dim" not in models["ae"]
    assert models["vae"]["bits_per_dim"] > 0 and models["vqvae"]["bits_per_dim"] > 0
    assert "bits_per_dim_iwae" in models["vae"]
    assert results["paper_bits_per_dim"]["VQ-VAE"] == 4.67


@pytest.mark.slow
def test_keras_io_anchor(tmp_path, mnist_data_dir):
    results = _run("keras_io_anchor", tmp_path, "--vqvae_epochs=1", "--prior_epochs=1",
                   "--steps_per_epoch=0", "--batch_size=64", "--prior_channels=4",
                   "--prior_layers=1", "--train_examples=128", "--test_examples=64",
                   "--num_embeddings=32", data_dir=mnist_data_dir)
    theirs, ours = results["models"]["keras_io"], results["models"]["tfvq"]
    assert results["test_images"] == 64
    # --num_embeddings sizes tfvq's codebook only: keras.io's model keeps its 128 codes.
    assert results["settings"]["num_embeddings"] == 32
    assert ours["code_perplexity"] <= 32
    # keras.io's trained model: its 49,937 parameters hold a codebook of 128 x 16 (32 codes
    # would leave 48,401).
    assert theirs["parameters"] == _load_keras_io_anchor().keras_io_vqvae(128, 16)[0].count_params()
    with open(tmp_path / "tfvq" / "metrics.json", encoding="utf-8") as f:
        assert json.load(f)["config"]["num_embeddings"] == 32
    assert "one pass over the 128 training images" in results["budget"]
    for entry in (theirs, ours):
        assert 1.0 <= entry["code_perplexity"] <= 128
        assert 0.0 < entry["code_usage"] <= 1.0 and entry["normalized_mse"] > 0
        assert 0.0 < entry["most_frequent_code_accuracy"] <= 1.0
    assert theirs["prior_val_accuracy"] == 0.673 and "bits_per_dim" not in theirs
    # By default tfvq's prior holds out the last 10% of the training images, as keras.io's
    # validation_split=0.1, and the target compares its accuracy there.
    assert results["settings"]["prior_holdout"] == 0.1
    assert ours["prior_holdout_examples"] == 128 - int(128 * 0.9)
    assert 0.0 <= ours["prior_holdout_accuracy"] <= 1.0
    assert results["targets"]["prior_accuracy_at_least_keras_io"] == (
        ours["prior_holdout_accuracy"] >= 0.673)
    assert ours["bits_per_dim"] == pytest.approx(sum(ours["bits_per_dim_terms"].values()),
                                                 rel=1e-5)
    assert results["targets"]["better_reconstruction"] == (
        ours["normalized_mse"] < theirs["normalized_mse"])
    # tfvq's side is examples/generate.py's job, with its own outputs in tfvq/.
    assert (tmp_path / "tfvq" / "metrics.json").exists()


def _load_keras_io_anchor():
    """examples/experiments/keras_io_anchor.py as a module (it defines no flags: only a run
    does)."""
    spec = importlib.util.spec_from_file_location("keras_io_anchor",
                                                  EXPERIMENTS / "keras_io_anchor.py")
    saved = list(sys.path)
    sys.path.insert(0, str(EXPERIMENTS))  # for its `import common`
    try:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path[:] = saved
    return module


def test_keras_io_reference_quantizer_is_nearest_code_with_straight_through():
    module = _load_keras_io_anchor()
    import keras
    import numpy as np

    model, encode = module.keras_io_vqvae(num_embeddings=8, embedding_dim=3)
    x = np.random.default_rng(0).uniform(-0.5, 0.5, (2, 28, 28, 1)).astype("float32")
    codes = np.asarray(encode(x))
    assert codes.shape == (2, 7, 7)
    quantizer = next(layer for layer in model.layers if layer.__class__.__name__ == "Quantizer")
    codebook = keras.ops.convert_to_numpy(quantizer.codebook)  # (D, K)
    latents = np.asarray(keras.Model(model.input, quantizer.input)(x))
    distances = ((latents[..., None] - codebook) ** 2).sum(axis=-2)
    np.testing.assert_array_equal(codes, distances.argmin(axis=-1))
    # Its loss: codebook loss plus 0.25 x commitment loss, both the mean squared distance.
    model(x)
    nearest = codebook.T[codes]
    expected = 1.25 * np.mean((nearest - latents) ** 2)
    np.testing.assert_allclose(float(sum(model.losses)), expected, rtol=1e-4)


@pytest.mark.slow
def test_colorization(tmp_path, cifar10_data_dir):
    results = _run("colorization", tmp_path, "--epochs=1", "--steps_per_epoch=2",
                   "--batch_size=8", "--eval_examples=16", "--hidden_channels=4",
                   "--residual_channels=2", "--num_residual_layers=1", "--feature_channels=4",
                   "--rebalance_examples=32", data_dir=cifar10_data_dir)
    assert set(results["table"]) == {"gray_baseline", "colorizer_regression"}
    for row in results["table"].values():
        assert set(row) == {"psnr", "ab_error", "ab_auc"}


def _common():
    # Loaded from its file, under a private name, so that no path edit is needed and nothing
    # else called `common` is shadowed.
    spec = importlib.util.spec_from_file_location("_experiments_common", EXPERIMENTS / "common.py")
    common = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(common)
    return common


def test_load_arrays_matches_tfds(mnist_data_dir):
    import numpy as np
    import tensorflow_datasets as tfds

    images, labels = _common().load_arrays("mnist", "test", mnist_data_dir, max_examples=300)
    expected = tfds.as_numpy(tfds.load("mnist", split="test[:300]", data_dir=mnist_data_dir,
                                       batch_size=-1, download=False))
    assert images.dtype == np.uint8 and labels.dtype == np.int64
    np.testing.assert_array_equal(images, expected["image"])
    np.testing.assert_array_equal(labels, expected["label"])


def test_binary_cross_entropy_matches_numpy():
    import numpy as np

    rng = np.random.default_rng(0)
    originals = rng.integers(0, 256, (20, 8, 8, 1)).astype(np.uint8)
    predictions = rng.uniform(0.0, 1.0, originals.shape).astype(np.float32)
    x, y = originals / 255.0, predictions.astype(np.float64)
    expected = np.mean(-(x * np.log(y) + (1.0 - x) * np.log(1.0 - y)))
    assert _common().binary_cross_entropy(originals, predictions) == pytest.approx(expected,
                                                                                  rel=1e-5)


def test_knn_accuracy_matches_brute_force():
    import numpy as np

    common = _common()
    rng = np.random.default_rng(0)
    train_z, test_z = rng.normal(size=(200, 3)), rng.normal(size=(50, 3))
    train_y, test_y = rng.integers(0, 4, 200), rng.integers(0, 4, 50)
    distances = np.linalg.norm(test_z[:, None] - train_z[None], axis=-1)
    nearest = np.argsort(distances, axis=1)[:, :5]
    votes = np.stack([np.bincount(train_y[row], minlength=4) for row in nearest])
    expected = np.mean(votes.argmax(axis=1) == test_y)
    assert common.knn_accuracy(train_z, train_y, test_z, test_y, k=5, chunk=16) == expected
    # Well-separated classes are found exactly.
    centres = np.eye(3)[train_y % 3] * 100
    assert common.knn_accuracy(centres, train_y % 3, centres[:20], train_y[:20] % 3) == 1.0
