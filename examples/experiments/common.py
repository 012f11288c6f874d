"""What the seed-experiment scripts share: data as arrays, training, image metrics, k-NN, JSON.

Every script in this folder imports this module (`import common`: Python puts a script's own
folder first on its path, so no path edit is needed, and tfvq comes from the installed package),
trains through plain `model.fit`, and ends with `write_results`, which adds the command line,
the wall time and the machine to the JSON so that a number in the README can always be traced
to the run it came from. Loading, image scaling, MSE and PSNR are tfvq's own
(`tfvq.data.load`, `tfvq.data.to_unit`, `tfvq.losses`), so the experiments measure what the
library computes.
"""

import json
import os
import platform
import sys
import time

import numpy as np

# Scripts import this module first: wall times count from here, TensorFlow's import included.
_STARTED = time.time()

# The repository root: the command in results.json is written relative to it.
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# A batch size no split reaches: `load_arrays` reads a split as one batch.
_WHOLE_SPLIT = 2**31 - 1


class Run:
    """Output folder, seed and wall clock of one experiment run.

    Args:
        output_dir: folder for the JSON and the figures (created).
        seed: seeds Python, NumPy and TensorFlow through `keras.utils.set_random_seed`.
    """

    def __init__(self, output_dir, seed=0):
        import keras

        os.makedirs(output_dir, exist_ok=True)
        keras.utils.set_random_seed(seed)
        self.output_dir = output_dir
        self.seed = seed
        self.start = _STARTED
        self.load_at_start = _load_average()

    def path(self, name):
        return os.path.join(self.output_dir, name)

    def elapsed(self):
        return round(time.time() - self.start, 1)


def _load_average():
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def machine():
    """CPU, versions and load: the context a wall time needs."""
    import keras
    import tensorflow as tf

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }


def write_results(run, results, name="results.json"):
    """Writes `results` plus command, wall time and machine to `run.output_dir/name`."""
    import resource

    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    payload = {
        "command": "python " + " ".join([os.path.relpath(sys.argv[0], _ROOT)] + sys.argv[1:]),
        "wall_time_s": run.elapsed(),
        # CPU time does not grow with other users' load as wall time does.
        "cpu_time_s": round(sum(u.ru_utime + u.ru_stime for u in usage), 1),
        "machine": {**machine(), "load_average_start": run.load_at_start,
                    "load_average_end": _load_average()},
        **results,
    }
    with open(run.path(name), "w") as f:
        json.dump(_jsonable(payload), f, indent=2)
    print(json.dumps(_jsonable(payload), indent=2))
    return payload


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return None if not np.isfinite(value) else round(float(value), 6)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):  # a comparison of NumPy numbers
        return bool(value)
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    return value


# ----------------------------------------------------------------------------------------------
# Data


def load_arrays(name, split, data_dir=None, max_examples=None):
    """(uint8 images (N, H, W, C), int64 labels (N,)) of a tfds split, in the split's order.

    `tfvq.data.load` reads them, as one batch of the whole split.
    """
    import tfvq

    if max_examples:
        split = f"{split}[:{int(max_examples)}]"
    ds = tfvq.data.load(name, split, batch_size=_WHOLE_SPLIT, data_dir=data_dir, normalize=None,
                        with_labels=True, shuffle=False, cache=False)
    images, labels = next(ds.as_numpy_iterator())
    return images, labels.astype(np.int64)


def balanced_subset(labels, per_class, seed=0):
    """Indices of `per_class` examples of every class, drawn without replacement."""
    rng = np.random.default_rng(seed)
    chosen = [rng.choice(np.flatnonzero(labels == c), per_class, replace=False)
              for c in np.unique(labels)]
    return np.sort(np.concatenate(chosen))


def train_dataset(images, batch_size, seed=0, labels=None):
    """An endless, shuffled, batched dataset of uint8 images (or (images, labels))."""
    import tensorflow as tf

    tensors = images if labels is None else (images, labels)
    ds = tf.data.Dataset.from_tensor_slices(tensors)
    ds = ds.shuffle(min(len(images), 10_000), seed=seed, reshuffle_each_iteration=True)
    return ds.repeat().batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def fit_steps(model, images, steps, batch_size, seed=0, learning_rate=1e-3, labels=None):
    """Compiles `model` with Adam and trains it for `steps` steps; returns the History dict."""
    import keras

    model.compile(optimizer=keras.optimizers.Adam(learning_rate))
    epochs = max(1, min(10, steps // 50))  # a few points on the training curves
    history = model.fit(train_dataset(images, batch_size, seed, labels), epochs=epochs,
                        steps_per_epoch=max(1, steps // epochs), verbose=2)
    return history.history


# ----------------------------------------------------------------------------------------------
# Metrics


def predict(fn, images, batch_size=500):
    """`fn` applied batch by batch to uint8 images; concatenated NumPy outputs."""
    outputs = [fn(images[i:i + batch_size]) for i in range(0, len(images), batch_size)]
    # A tuple of outputs (a VAE's encode: mean, log-variance) is joined part by part; turned
    # into one array first, it would stack its parts along the batch axis.
    if isinstance(outputs[0], tuple):
        return tuple(np.concatenate([np.asarray(p) for p in parts]) for parts in zip(*outputs))
    return np.concatenate([np.asarray(o) for o in outputs])


def image_metrics(originals, reconstructions):
    """Mean MSE, PSNR (dB, data range 1) and SSIM (tf.image.ssim) of [0, 1] images."""
    import tensorflow as tf

    import tfvq

    x = np.asarray(tfvq.data.to_unit(originals))
    y = np.clip(reconstructions.astype(np.float32), 0.0, 1.0)
    mse = np.asarray(tfvq.losses.mean_squared_error(x, y))
    psnr = np.asarray(tfvq.losses.psnr(x, y))
    ssim = np.concatenate([tf.image.ssim(x[i:i + 500], y[i:i + 500], max_val=1.0).numpy()
                           for i in range(0, len(x), 500)])
    return {"mse": float(mse.mean()), "psnr": float(psnr.mean()), "ssim": float(ssim.mean())}


def binary_cross_entropy(originals, reconstructions):
    """Mean per-pixel BCE of [0, 1] targets under [0, 1] predictions, in nats.

    `keras.ops.binary_crossentropy`, which clips the predictions to [1e-7, 1 - 1e-7].
    """
    import keras

    import tfvq

    x = tfvq.data.to_unit(originals)
    y = keras.ops.convert_to_tensor(reconstructions, "float32")
    return float(keras.ops.convert_to_numpy(keras.ops.mean(keras.ops.binary_crossentropy(x, y))))


def knn_accuracy(train_z, train_y, test_z, test_y, k=5, chunk=1000):
    """Accuracy of a k-nearest-neighbour vote (Euclidean) of test latents among train latents.

    NumPy only (scikit-learn is not a dependency of tfvq). Ties go to the smallest label.
    """
    train_z = np.asarray(train_z, np.float64).reshape(len(train_z), -1)
    test_z = np.asarray(test_z, np.float64).reshape(len(test_z), -1)
    num_classes = int(max(train_y.max(), test_y.max())) + 1
    train_sq = np.sum(train_z**2, axis=1)
    correct = 0
    for i in range(0, len(test_z), chunk):
        block = test_z[i:i + chunk]
        distances = train_sq[None] - 2.0 * block @ train_z.T  # + |test|^2, same for every row
        nearest = np.argpartition(distances, k - 1, axis=1)[:, :k]
        votes = np.zeros((len(block), num_classes))
        np.add.at(votes, (np.arange(len(block))[:, None], train_y[nearest]), 1.0)
        correct += int(np.sum(votes.argmax(axis=1) == test_y[i:i + chunk]))
    return correct / len(test_z)


def small_cnn(input_shape, num_classes, seed=0):
    """The classifier of the augmentation experiment: two conv-pool blocks, dropout, softmax."""
    import keras

    init = lambda i: keras.initializers.GlorotUniform(seed=seed * 10 + i)  # noqa: E731
    return keras.Sequential([
        keras.Input(input_shape),
        keras.layers.Rescaling(1.0 / 255.0),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu", kernel_initializer=init(0)),
        keras.layers.MaxPooling2D(2),
        keras.layers.Conv2D(64, 3, padding="same", activation="relu", kernel_initializer=init(1)),
        keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dropout(0.3, seed=seed),
        keras.layers.Dense(128, activation="relu", kernel_initializer=init(2)),
        keras.layers.Dense(num_classes, activation="softmax", kernel_initializer=init(3)),
    ])
