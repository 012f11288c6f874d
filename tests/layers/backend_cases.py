"""The layers of `tfvq.layers` as backend-neutral cases, and the tools to run them anywhere.

Used by `test_backends.py`, which runs under `KERAS_BACKEND=tensorflow`, `jax` or `torch`. A
case builds one layer, sets every float weight from NumPy (so that each backend holds the same
numbers: seeded Keras initializers draw different values on each backend) and names the NumPy
inputs it is called on. `forward` and `gradients` run a case under the current backend.

Run as a script, it computes every case under TensorFlow and writes the results, which the
other backends are compared with:

    KERAS_BACKEND=tensorflow python tests/layers/backend_cases.py OUT.npz

The same file also holds the NumPy references of the quantizers' state updates (EMA, k-means
init, dead-code restarts), which hold on every backend.
"""

import os
import sys

if __name__ == "__main__":
    os.environ["KERAS_BACKEND"] = "tensorflow"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import ops  # noqa: E402

from tfvq import layers  # noqa: E402

BATCH_SHAPE = (2, 3, 3)  # leading axes of the quantizers' inputs


def data(seed, *shape, low=None, high=None):
    rng = np.random.default_rng(seed)
    if low is None:
        return rng.normal(size=shape).astype("float32")
    return rng.uniform(low, high, size=shape).astype("float32")


def fill_weights(layer, seed):
    """Sets every float weight of a built `layer` from a seeded NumPy generator, in order."""
    rng = np.random.default_rng(seed)
    for variable in layer.weights:
        dtype = keras.backend.standardize_dtype(variable.dtype)
        if "float" not in dtype or variable.name in ("initialized", "codebook_offset"):
            # Seed generator states; k-means' flag keeps its constructor value, and a learned
            # codebook is its `codebook` variable alone (its offset stays zero).
            continue
        shape = tuple(variable.shape)
        if variable.name in ("cluster_size", "rebalancing_weights"):
            value = rng.uniform(0.5, 2.0, shape)
        elif variable.name == "moving_variance":
            value = rng.uniform(0.5, 1.5, shape)
        else:
            value = 0.5 * rng.normal(size=shape)
        variable.assign(value.astype(dtype))
    return layer


# --- The cases ---------------------------------------------------------------------------------
# Each: name -> (constructor, inputs, call keyword arguments). Quantizers get `return_info`
# in `forward`, conv layers are called as they are.


def _quantizer_cases():
    cases = {}
    for key, cls in layers.QUANTIZERS.items():
        size = 256 if key == "fsq" else 16
        cases[f"quantizer_{key}"] = (lambda cls=cls, size=size: cls.from_sizes(size, 8), None)
    options = {
        "cosine": dict(distance="cosine"),
        "factorized": dict(codebook_dim=4),
        "rotation": dict(gradient="rotation"),
        "cosine_factorized_rotation": dict(distance="cosine", codebook_dim=4, gradient="rotation"),
    }
    for key in ("vq", "ema"):
        for option, kwargs in options.items():
            cls = layers.QUANTIZERS[key]
            cases[f"quantizer_{key}_{option}"] = (
                lambda cls=cls, kwargs=kwargs: cls.from_sizes(16, 8, **kwargs), None
            )
    return cases


def _inputs_for(name, layer):
    if name.startswith("quantizer_"):
        return [data(1, *BATCH_SHAPE, layer.embedding_dim)]
    return None


def _cases():
    cases = {name: (make, None, {}) for name, (make, _) in _quantizer_cases().items()}
    image = [data(1, 2, 8, 8, 3)]
    features = [data(1, 2, 4, 4, 6)]
    cases.update(
        {
            "residual_block": (lambda: layers.ResidualBlock(4), features, {}),
            "residual_stack": (lambda: layers.ResidualStack(2, 4), features, {}),
            "encoder_stride": (
                lambda: layers.ConvEncoder(8, residual_channels=4, output_channels=5), image, {}
            ),
            "encoder_max_pool": (
                lambda: layers.ConvEncoder(8, downsample="max_pool", residual_channels=4),
                image, {},
            ),
            "encoder_none": (
                lambda: layers.ConvEncoder(8, downsample_stages=1, downsample="none", residual_channels=4),
                image, {},
            ),
            "decoder_stride": (
                lambda: layers.ConvDecoder(3, 8, residual_channels=4), [data(1, 2, 2, 2, 5)], {}
            ),
            "decoder_avg_pool": (
                lambda: layers.ConvDecoder(3, 8, downsample="avg_pool", residual_channels=4),
                [data(1, 2, 2, 2, 5)], {},
            ),
            "rgb_to_lab": (layers.RGBToLab, [data(1, 2, 5, 5, 3, low=0.0, high=1.0)], {}),
            "lab_to_rgb": (
                layers.LabToRGB,
                [np.concatenate([data(1, 2, 5, 5, 1, low=5.0, high=95.0),
                                 data(2, 2, 5, 5, 2, low=-40.0, high=40.0)], axis=-1)],
                {},
            ),
            "colorization_classification": (layers.LabColorizationHead, features, {}),
            "colorization_regression": (
                lambda: layers.LabColorizationHead(mode="regression", regression_loss="huber"),
                features, {},
            ),
            "masked_conv_a": (lambda: layers.MaskedConv2D(4, 3, mask_type="A"), features, {}),
            "masked_conv_b": (lambda: layers.MaskedConv2D(4, (3, 5), mask_type="B"), features, {}),
            "gated_pixelcnn_a": (
                lambda: layers.GatedPixelCNNBlock(4, mask_type="A"),
                [features[0], features[0]], {},
            ),
            "gated_pixelcnn_b_condition": (
                lambda: layers.GatedPixelCNNBlock(6, 5, mask_type="B"),
                [features[0], data(2, 2, 4, 4, 6), data(3, 2, 3)], {},
            ),
        }
    )
    return cases


CASES = _cases()
AB = data(7, 2, 4, 4, 2, low=-50.0, high=50.0)  # ground truth of the colorization heads' loss


def is_quantizer(layer):
    return isinstance(layer, layers.Quantizer)


def build_case(name, seed=0):
    """`(layer, inputs, kwargs)`: the case's layer, built, with its weights set from NumPy."""
    make, inputs, kwargs = CASES[name]
    layer = make()
    inputs = inputs if inputs is not None else _inputs_for(name, layer)
    layer(*inputs, **kwargs)  # builds
    fill_weights(layer, seed)
    if name == "colorization_classification":
        layer.fit_rebalancing(AB)
    return layer, inputs, kwargs


def to_numpy(x):
    if isinstance(x, keras.Variable):
        x = x.value
    if hasattr(x, "detach"):  # a torch tensor that requires grad has no .numpy()
        x = x.detach()
    return np.asarray(ops.convert_to_numpy(x))


def forward(name):
    """Named NumPy outputs of the case: the call's outputs, the info dict, decode and loss."""
    layer, inputs, kwargs = build_case(name)
    results = {}
    if is_quantizer(layer):
        info = layer(*inputs, return_info=True)
        for key in ("quantized", "indices", "loss", "counts", "perplexity", "usage", "distances"):
            if key in info:
                results[key] = to_numpy(info[key])
        results["encode"] = to_numpy(layer.encode(*inputs))
        results["decode"] = to_numpy(layer.decode(layer.encode(*inputs)))
        return results
    outputs = layer(*inputs, **kwargs)
    outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
    for i, output in enumerate(outputs):
        results[f"output_{i}"] = to_numpy(output)
    if isinstance(layer, layers.LabColorizationHead):
        results["decode"] = to_numpy(layer.decode(outputs[0]))
        results["loss"] = to_numpy(layer.loss(AB, outputs[0]))
        if layer.mode == "classification":
            results["encode"] = to_numpy(layer.encode(AB))
            results["rebalancing_weights"] = to_numpy(layer.rebalancing_weights)
    return results


def _probes(outputs):
    """Fixed random weights that turn the outputs into one scalar objective."""
    return [data(100 + i, *tuple(o.shape)) for i, o in enumerate(outputs)]


def _objective(outputs, losses, probes):
    outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
    total = sum(
        ops.sum(ops.cast(o, "float32") * ops.convert_to_tensor(p)) for o, p in zip(outputs, probes)
    )
    for loss in losses:
        total = total + ops.cast(loss, "float32")
    return total


def gradients(name):
    """The objective `sum(outputs * probes) + sum(layer losses)` and its gradients.

    Gradients reach the inputs and every trainable weight (the codebook of `VectorQuantizer`),
    computed with the backend's own autodiff: `tf.GradientTape`, `jax.value_and_grad` over
    `layer.stateless_call`, or torch autograd. Keys: `objective`, `d_input_<i>`, `d_<path>`.
    """
    layer, inputs, kwargs = build_case(name)
    outputs = layer(*inputs, **kwargs)
    probes = _probes(outputs if isinstance(outputs, (tuple, list)) else (outputs,))
    return gradients_for(layer, inputs, kwargs, probes)


def gradients_for(layer, inputs, kwargs, probes):
    """`gradients` of a built `layer` called on `inputs`, with the given probes."""
    trainable = layer.trainable_variables
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        xs = [tf.convert_to_tensor(x) for x in inputs]
        with tf.GradientTape() as tape:
            tape.watch(xs)
            outputs = layer(*xs, **kwargs)
            objective = _objective(outputs, layer.losses, probes)
        grads = tape.gradient(objective, xs + [v.value for v in trainable])
    elif backend == "jax":
        import jax

        non_trainable = [v.value for v in layer.non_trainable_variables]

        def fn(xs, trainable_values):
            outputs, _, losses = layer.stateless_call(
                trainable_values, non_trainable, *xs, return_losses=True, **kwargs
            )
            return _objective(outputs, losses, probes)

        xs = [jax.numpy.asarray(x) for x in inputs]
        objective, (dx, dw) = jax.value_and_grad(fn, argnums=(0, 1))(
            xs, [v.value for v in trainable]
        )
        grads = list(dx) + list(dw)
    elif backend == "torch":
        import torch

        xs = [torch.tensor(x, requires_grad=True) for x in inputs]
        outputs = layer(*xs, **kwargs)
        objective = _objective(outputs, layer.losses, probes)
        grads = torch.autograd.grad(
            objective, xs + [v.value for v in trainable], allow_unused=True
        )
    else:
        raise ValueError(f"no gradient helper for backend {backend!r}")
    targets = [f"d_input_{i}" for i in range(len(inputs))] + [_weight_key(layer, v) for v in trainable]
    sources = list(inputs) + [to_numpy(v) for v in trainable]
    results = {"objective": to_numpy(objective)}
    for key, grad, source in zip(targets, grads, sources):
        results[key] = np.zeros_like(source) if grad is None else to_numpy(grad)
    return results


def _weight_key(layer, variable):
    """`d_<path below the layer>`: the same on every backend, whatever the layer's own name."""
    return "d_" + variable.path.split("/", 1)[-1]


def save_case(name, path):
    """Saves the case's layer, inside a functional model, as `.keras`; returns the model."""
    model = as_model(name)
    model.save(path)
    return model


def as_model(name):
    """The case's layer, weights set, as the whole of a functional model over its inputs."""
    layer, inputs, kwargs = build_case(name)
    symbolic = [keras.Input(shape=x.shape[1:], batch_size=x.shape[0]) for x in inputs]
    return keras.Model(symbolic, layer(*symbolic, **kwargs)), inputs


def run_all():
    """Every case's forward outputs and gradients, keyed `<case>/<quantity>`."""
    results = {}
    for name in CASES:
        for key, value in forward(name).items():
            results[f"{name}/forward/{key}"] = value
        for key, value in gradients(name).items():
            results[f"{name}/gradients/{key}"] = value
    return results


# --- NumPy references of the quantizers' state updates ----------------------------------------


def np_nearest(flat, codes):
    """Index of each row's nearest code (squared L2), ties to the lowest index."""
    distances = ((flat[:, None, :] - codes[None, :, :]) ** 2).sum(-1)
    return distances.argmin(1)


def np_kmeans(flat, rows, iters):
    """Lloyd's k-means started from `flat[rows]`; empty clusters keep their centroid."""
    centroids = flat[rows]
    for _ in range(iters):
        indices = np_nearest(flat, centroids)
        for k in range(len(centroids)):
            members = flat[indices == k]
            if len(members):
                centroids[k] = members.mean(0)
    return centroids


def np_training_step(state, x, *, ema, decay, epsilon=1e-5, kmeans_rows=None, kmeans_iters=10,
                     restart_rows=None, threshold=0.0):
    """One training call of an l2 quantizer on `state` = dict(codebook, cluster_size, ema_dw,
    initialized), float64: k-means init, lookup, EMA (or usage) update, dead-code restart."""
    state = {k: np.array(v, np.float64) for k, v in state.items()}
    flat = np.asarray(x, np.float64).reshape(-1, state["codebook"].shape[1])
    if kmeans_rows is not None and state["initialized"] < 0.5:
        state["codebook"] = np_kmeans(flat, np.asarray(kmeans_rows), kmeans_iters)
        if ema:  # one pseudo-observation per centroid; VectorQuantizer keeps its usage EMA
            state["cluster_size"] = np.ones_like(state["cluster_size"])
            state["ema_dw"] = state["codebook"].copy()
        state["initialized"] = np.ones(())
    indices = np_nearest(flat, state["codebook"])
    k = len(state["codebook"])
    counts = np.bincount(indices, minlength=k).astype(np.float64)
    size = decay * state["cluster_size"] + (1 - decay) * counts
    if ema:
        sums = np.zeros_like(state["codebook"])
        np.add.at(sums, indices, flat)
        dw = decay * state["ema_dw"] + (1 - decay) * sums
        total = size.sum()
        state["codebook"] = dw / ((size + epsilon) / (total + k * epsilon) * total)[:, None]
        state["ema_dw"] = dw
    if threshold > 0:
        fresh = flat[np.asarray(restart_rows)]
        dead = size < threshold
        state["codebook"][dead] = fresh[dead]
        size[dead] = threshold
        if ema:
            state["ema_dw"][dead] = fresh[dead] * threshold
    state["cluster_size"] = size
    return state, indices


def quantizer_state(layer):
    names = ("cluster_size", "ema_dw", "initialized")
    state = {n: to_numpy(getattr(layer, n)) for n in names if hasattr(layer, n)}
    return {"codebook": to_numpy(layer.get_codebook()), **state}


if __name__ == "__main__":
    np.savez(sys.argv[1], **run_all())
