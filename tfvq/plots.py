"""Matplotlib figures for looking at autoencoders: image grids, latent spaces, curves, codebooks.

Every function returns a `matplotlib.figure.Figure` and, given `path`, also writes it as a PNG.
Figures are built with `Figure` directly rather than `pyplot`, so nothing opens a window, no
backend has to be chosen (saving goes through Agg), and no figure stays alive in pyplot's global
registry: a figure is freed as soon as the caller drops it.

Inputs may be NumPy arrays, lists, or tensors of any Keras backend.

Example:
    >>> import numpy as np
    >>> from tfvq import plots
    >>> images = np.random.rand(16, 28, 28, 1)
    >>> fig = plots.image_grid(images, path="/tmp/grid.png")
"""

import math
import os
from collections.abc import Mapping

import keras
import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from tfvq.layers.quantizer import code_statistics
from tfvq.utils.checks import check_int, is_int

__all__ = [
    "codebook_usage",
    "image_grid",
    "interpolation_strip",
    "latent_scatter",
    "reconstruction_grid",
    "search_results",
    "training_curves",
]

_DPI = 100


# ----------------------------------------------------------------------------------------------
# Input conversion


def _to_numpy(x, name):
    if x is None:
        raise ValueError(f"{name} must be an array or tensor; got None")
    if isinstance(x, np.ndarray):
        return x
    try:
        return np.asarray(keras.ops.convert_to_numpy(x))
    except Exception as error:  # noqa: BLE001 - re-raised with the argument named
        raise ValueError(
            f"{name} must be an array or tensor; got {type(x).__name__}"
        ) from error


def _as_images(images, name, value_range, leading_dims=1):
    """Returns float images in [0, 1] shaped (*leading, H, W, C) with C in {1, 3}."""
    array = _to_numpy(images, name)
    rank = leading_dims + 3
    if array.ndim == rank - 1:
        array = array[..., None]  # grayscale given without a channel axis
    if array.ndim != rank or array.shape[-1] not in (1, 3):
        expected = "(N, H, W, C)" if leading_dims == 1 else "(R, S, H, W, C)"
        raise ValueError(
            f"{name} must be shaped {expected} with C in {{1, 3}}; got shape {array.shape}"
        )
    if array.size == 0:
        raise ValueError(f"{name} must hold at least one image; got shape {array.shape}")

    if array.dtype == np.bool_:
        return array.astype(np.float32)
    if np.issubdtype(array.dtype, np.integer):
        if array.min() < 0 or array.max() > 255:
            raise ValueError(
                f"{name} has integer dtype {array.dtype}, read as 8-bit pixels in [0, 255]; "
                f"got values in [{array.min()}, {array.max()}]"
            )
        return array.astype(np.float32) / 255.0
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"{name} must hold numbers; got dtype {array.dtype}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} holds NaN or infinite values")
    low, high = value_range
    if not high > low:
        raise ValueError(f"value_range must be (low, high) with high > low; got {value_range}")
    # Decoders overshoot [0, 1] a little; clipping shows what the user would see when saving.
    return np.clip((array.astype(np.float32) - low) / (high - low), 0.0, 1.0)


def _show(ax, image):
    if image.shape[-1] == 1:
        ax.imshow(image[..., 0], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
        ax.imshow(image, interpolation="nearest")
    _hide_frame(ax)


def _hide_frame(ax):
    # Ticks and spines off but the axis itself on, so that row labels (set_ylabel) still show.
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def _finish(fig, path, dpi):
    if path is not None:
        path = os.fspath(path)
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        # No bbox_inches="tight": the PNG is then exactly figsize * dpi pixels, as documented.
        fig.savefig(path, dpi=dpi, format="png")
    return fig


# ----------------------------------------------------------------------------------------------
# Image grids


def image_grid(
    images,
    nrows=None,
    titles=None,
    title=None,
    value_range=(0.0, 1.0),
    cell_size=1.5,
    dpi=_DPI,
    path=None,
):
    """Draws images in a grid, row by row.

    Args:
        images: (N, H, W, C) or (N, H, W) images, C in {1, 3}; floats in `value_range` (clipped
            to it) or 8-bit integers in [0, 255].
        nrows: number of rows; by default the grid is as square as possible.
        titles: optional list of N strings, one above each image.
        title: optional title of the whole figure.
        value_range: (low, high) of float images, e.g. (-1, 1) for tanh decoders.
        cell_size: width and height of one image cell, in inches.
        dpi: resolution of the saved PNG.
        path: where to write a PNG, if given.

    Returns:
        A `matplotlib.figure.Figure` of ncols * cell_size by nrows * cell_size inches.
    """
    images = _as_images(images, "images", value_range)
    count = len(images)
    if nrows is None:
        ncols = math.ceil(math.sqrt(count))
        nrows = math.ceil(count / ncols)
    else:
        if not is_int(nrows, minimum=1) or nrows > count:
            raise ValueError(f"nrows must be an integer in [1, {count}]; got {nrows!r}")
        nrows = int(nrows)
        ncols = math.ceil(count / nrows)
    if titles is not None and len(titles) != count:
        raise ValueError(f"titles must hold one string per image ({count}); got {len(titles)}")

    fig = Figure(figsize=(ncols * cell_size, nrows * cell_size), dpi=dpi)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for index, ax in enumerate(axes.flat):
        if index >= count:
            ax.set_axis_off()
            continue
        _show(ax, images[index])
        if titles is not None:
            ax.set_title(str(titles[index]), fontsize=8)
    if title is not None:
        fig.suptitle(title)
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.9 if title else 0.98,
                        wspace=0.05, hspace=0.25 if titles is not None else 0.05)
    return _finish(fig, path, dpi)


def reconstruction_grid(
    originals,
    reconstructions,
    n=8,
    value_range=(0.0, 1.0),
    cell_size=1.5,
    dpi=_DPI,
    path=None,
):
    """Draws the first `n` originals in a top row and their reconstructions below them.

    Args:
        originals: (N, H, W, C) or (N, H, W) images, as in `image_grid`.
        reconstructions: images of the same shape as `originals`.
        n: number of pairs to show (at most N).
        value_range: (low, high) of float images.
        cell_size: width and height of one image cell, in inches.
        dpi: resolution of the saved PNG.
        path: where to write a PNG, if given.

    Returns:
        A `matplotlib.figure.Figure` of min(n, N) * cell_size by 2 * cell_size inches.
    """
    originals = _as_images(originals, "originals", value_range)
    reconstructions = _as_images(reconstructions, "reconstructions", value_range)
    if originals.shape != reconstructions.shape:
        raise ValueError(
            "originals and reconstructions must have the same shape; got "
            f"{originals.shape} and {reconstructions.shape}"
        )
    n = min(int(check_int("reconstruction_grid", "n", n)), len(originals))

    fig = Figure(figsize=(n * cell_size, 2 * cell_size), dpi=dpi)
    axes = fig.subplots(2, n, squeeze=False)
    for column in range(n):
        _show(axes[0, column], originals[column])
        _show(axes[1, column], reconstructions[column])
    axes[0, 0].set_ylabel("original")
    axes[1, 0].set_ylabel("reconstruction")
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.02, top=0.98, wspace=0.05, hspace=0.05)
    return _finish(fig, path, dpi)


def interpolation_strip(
    images,
    value_range=(0.0, 1.0),
    cell_size=1.5,
    dpi=_DPI,
    path=None,
):
    """Draws latent interpolations: one row per pair of end points, one column per step.

    Args:
        images: (S, H, W, C) for a single interpolation of S steps, or (R, S, H, W, C) for R of
            them; C in {1, 3}.
        value_range: (low, high) of float images.
        cell_size: width and height of one image cell, in inches.
        dpi: resolution of the saved PNG.
        path: where to write a PNG, if given.

    Returns:
        A `matplotlib.figure.Figure` of S * cell_size by R * cell_size inches.
    """
    array = _to_numpy(images, "images")
    if array.ndim == 4:
        array = array[None]
    if array.ndim != 5:
        raise ValueError(
            "images must be shaped (S, H, W, C) or (R, S, H, W, C); got shape "
            f"{array.shape}"
        )
    array = _as_images(array, "images", value_range, leading_dims=2)
    rows, steps = array.shape[:2]

    fig = Figure(figsize=(steps * cell_size, rows * cell_size), dpi=dpi)
    axes = fig.subplots(rows, steps, squeeze=False)
    for row in range(rows):
        for step in range(steps):
            _show(axes[row, step], array[row, step])
    axes[0, 0].set_title("start", fontsize=8)
    if steps > 1:
        axes[0, -1].set_title("end", fontsize=8)
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.9, wspace=0.05, hspace=0.05)
    return _finish(fig, path, dpi)


# ----------------------------------------------------------------------------------------------
# Latent space


def _pca_2d(latents):
    """Projects onto the two leading principal axes; returns (points, explained variance ratio).

    The sign of each axis is fixed (largest loading positive) so that the picture does not flip
    between runs on the same data.
    """
    centred = latents - latents.mean(axis=0, keepdims=True)
    _, singular_values, components = np.linalg.svd(centred, full_matrices=False)
    components = components[:2]
    signs = np.sign(components[np.arange(2), np.argmax(np.abs(components), axis=1)])
    components = components * np.where(signs == 0, 1.0, signs)[:, None]
    variance = singular_values**2
    total = variance.sum()
    ratio = variance[:2] / total if total > 0 else np.zeros(2)
    return centred @ components.T, ratio


def _tsne_2d(latents, perplexity, seed):
    # Imported here: scikit-learn takes seconds to import and only t-SNE needs it.
    from sklearn.manifold import TSNE

    # t-SNE requires perplexity < number of points.
    perplexity = min(float(perplexity), max(1.0, (len(latents) - 1) / 3))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(
        latents
    )


def latent_scatter(
    latents,
    labels=None,
    method="auto",
    class_names=None,
    perplexity=30.0,
    seed=0,
    point_size=6.0,
    figsize=(6.0, 5.0),
    dpi=_DPI,
    path=None,
):
    """Scatters latent codes in 2-D, coloured by class.

    Latents of dimension 2 are drawn as they are; wider ones are projected by PCA (NumPy SVD)
    or, with `method="tsne"`, by scikit-learn's t-SNE.

    Args:
        latents: (N, D) latent vectors, D >= 2.
        labels: optional (N,) integer class of each vector.
        method: "auto" (as is for D == 2, else PCA), "pca" or "tsne".
        class_names: optional names of the classes, indexed by label, shown in the legend.
        perplexity: t-SNE perplexity (capped for small N).
        seed: t-SNE random seed.
        point_size: marker area, in points^2.
        figsize: (width, height) in inches.
        dpi: resolution of the saved PNG.
        path: where to write a PNG, if given.

    Returns:
        A `matplotlib.figure.Figure` of `figsize` inches.
    """
    latents = _to_numpy(latents, "latents")
    if latents.ndim != 2 or latents.shape[1] < 2 or latents.shape[0] < 2:
        raise ValueError(
            f"latents must be shaped (N, D) with N >= 2 and D >= 2; got shape {latents.shape}"
        )
    latents = latents.astype(np.float64)
    if not np.all(np.isfinite(latents)):
        raise ValueError("latents hold NaN or infinite values")
    if method not in ("auto", "pca", "tsne"):
        raise ValueError(f"method must be 'auto', 'pca' or 'tsne'; got {method!r}")

    if labels is not None:
        labels = _to_numpy(labels, "labels")
        if labels.ndim == 2 and labels.shape[1] == 1:
            labels = labels[:, 0]
        if labels.shape != (len(latents),):
            raise ValueError(
                f"labels must be shaped ({len(latents)},), one per latent; got {labels.shape}"
            )
        if not np.issubdtype(labels.dtype, np.integer):
            if not np.all(np.mod(labels, 1) == 0):
                raise ValueError(f"labels must be integer class ids; got dtype {labels.dtype}")
            labels = labels.astype(np.int64)
        if labels.min() < 0:
            raise ValueError(f"labels must be non-negative class ids; got {labels.min()}")
        if class_names is not None and len(class_names) <= labels.max():
            raise ValueError(
                f"class_names has {len(class_names)} names but labels go up to {labels.max()}"
            )

    if method == "auto":
        method = "identity" if latents.shape[1] == 2 else "pca"
    if method == "identity":
        points, axis_labels = latents, ("z[0]", "z[1]")
    elif method == "pca":
        points, ratio = _pca_2d(latents)
        axis_labels = (f"PC1 ({100 * ratio[0]:.1f}% var.)", f"PC2 ({100 * ratio[1]:.1f}% var.)")
    else:
        points, axis_labels = _tsne_2d(latents, perplexity, seed), ("t-SNE 1", "t-SNE 2")

    fig = Figure(figsize=figsize, dpi=dpi)
    ax = fig.subplots()
    if labels is None:
        ax.scatter(points[:, 0], points[:, 1], s=point_size)
    else:
        classes = np.unique(labels)
        if labels.max() < 20:
            # One legend entry per class while a qualitative colour map can tell them apart.
            cmap = colormaps["tab10" if labels.max() < 10 else "tab20"]
            for label in classes:
                chosen = labels == label
                name = class_names[label] if class_names is not None else str(label)
                ax.scatter(points[chosen, 0], points[chosen, 1], s=point_size,
                           color=cmap(int(label)), label=name)
            ax.legend(markerscale=2, fontsize=8, loc="best", frameon=False)
        else:
            scatter = ax.scatter(points[:, 0], points[:, 1], s=point_size, c=labels,
                                 cmap="viridis")
            fig.colorbar(scatter, ax=ax, label="class")
    ax.set_xlabel(axis_labels[0])
    ax.set_ylabel(axis_labels[1])
    fig.tight_layout()
    return _finish(fig, path, dpi)


# ----------------------------------------------------------------------------------------------
# Training


def training_curves(history, metrics=None, figsize_per_plot=(4.0, 3.0), dpi=_DPI, path=None):
    """Plots training and validation curves, one subplot per metric.

    Args:
        history: a `keras.callbacks.History` (what `fit` returns) or its `.history` dict of
            metric name -> list of per-epoch values.
        metrics: a metric name or list of names (without "val_"); by default every metric, loss
            first. Each subplot shows "name" and "val_name" when present.
        figsize_per_plot: (width, height) of one subplot, in inches.
        dpi: resolution of the saved PNG.
        path: where to write a PNG, if given.

    Returns:
        A `matplotlib.figure.Figure` with up to three subplots per row.
    """
    logs = getattr(history, "history", history)
    if not isinstance(logs, Mapping):
        raise ValueError(
            "history must be a keras History or a dict of metric name -> per-epoch values; got "
            f"{type(history).__name__}"
        )
    if not logs:
        raise ValueError("history is empty: no metric was recorded")

    available = []
    for key in logs:
        name = key[4:] if key.startswith("val_") else key
        if name not in available:
            available.append(name)
    if "loss" in available:
        available.remove("loss")
        available.insert(0, "loss")

    if metrics is None:
        metrics = available
    elif isinstance(metrics, str):
        metrics = [metrics]
    metrics = list(metrics)
    if not metrics:
        raise ValueError("metrics must name at least one metric")
    unknown = [name for name in metrics if name not in available]
    if unknown:
        raise ValueError(f"metrics {unknown} are not in the history; available: {available}")

    ncols = min(3, len(metrics))
    nrows = math.ceil(len(metrics) / ncols)
    width, height = figsize_per_plot
    fig = Figure(figsize=(ncols * width, nrows * height), dpi=dpi)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax, name in zip(axes.flat, metrics):
        for key, label in ((name, "train"), ("val_" + name, "validation")):
            if key not in logs:
                continue
            values = np.asarray([float(_to_numpy(v, key)) for v in logs[key]], dtype=np.float64)
            epochs = np.arange(1, len(values) + 1)
            ax.plot(epochs, values, marker="o" if len(values) <= 30 else None, markersize=3,
                    label=label)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, frameon=False)
    for ax in axes.flat[len(metrics):]:
        ax.set_axis_off()
    fig.tight_layout()
    return _finish(fig, path, dpi)


# ----------------------------------------------------------------------------------------------
# Codebook


def _code_counts(indices_or_counts, num_embeddings, kind):
    array = _to_numpy(indices_or_counts, "indices_or_counts")
    if kind == "auto":
        # A vector exactly num_embeddings long is read as counts (np.bincount's output); pass
        # kind="indices" for a flat list of that many indices.
        kind = "counts" if array.ndim == 1 and len(array) == num_embeddings else "indices"
    if kind == "counts":
        if array.shape != (num_embeddings,):
            raise ValueError(
                f"counts must be shaped (num_embeddings,) = ({num_embeddings},); got {array.shape}"
            )
        counts = array.astype(np.float64)
        if not np.all(np.isfinite(counts)) or counts.min() < 0:
            raise ValueError("counts must be finite and non-negative")
        return counts
    if kind != "indices":
        raise ValueError(f"kind must be 'auto', 'indices' or 'counts'; got {kind!r}")
    if array.size == 0:
        raise ValueError("indices must hold at least one code index")
    if not np.issubdtype(array.dtype, np.integer):
        if not (np.all(np.isfinite(array)) and np.all(np.mod(array, 1) == 0)):
            raise ValueError(f"indices must be integers; got dtype {array.dtype}")
        array = array.astype(np.int64)
    if array.min() < 0 or array.max() >= num_embeddings:
        raise ValueError(
            f"indices must lie in [0, num_embeddings) = [0, {num_embeddings}); got values in "
            f"[{array.min()}, {array.max()}]"
        )
    return np.bincount(array.ravel(), minlength=num_embeddings).astype(np.float64)


def codebook_usage(
    indices_or_counts,
    num_embeddings,
    kind="auto",
    log_scale=False,
    figsize=(7.0, 3.5),
    dpi=_DPI,
    path=None,
):
    """Draws how often each codebook entry is used, most used first.

    The title reports the perplexity exp(-sum p log p) of the usage distribution (num_embeddings
    when usage is uniform, 1 when a single code is used) and the number of dead (never used)
    codes, the two numbers that tell a healthy codebook from a collapsed one.

    Args:
        indices_or_counts: code indices of any shape (e.g. (B, h, w) from
            `VQVAE.encode_to_indices`) or a (num_embeddings,) vector of usage counts.
        num_embeddings: codebook size K.
        kind: "auto" (a vector of exactly K entries is counts, anything else indices),
            "indices" or "counts".
        log_scale: use a logarithmic y axis (useful when a few codes dominate).
        figsize: (width, height) in inches.
        dpi: resolution of the saved PNG.
        path: where to write a PNG, if given.

    Returns:
        A `matplotlib.figure.Figure` of `figsize` inches.
    """
    num_embeddings = int(check_int("codebook_usage", "num_embeddings", num_embeddings))
    counts = _code_counts(indices_or_counts, num_embeddings, kind)
    total = counts.sum()
    if total <= 0:
        raise ValueError("counts sum to zero: there is no usage to plot")
    probs = counts / total
    perplexity = float(code_statistics(counts)[0])  # the one definition, as CodeUsage reports
    dead = int(np.sum(counts == 0))

    fig = Figure(figsize=figsize, dpi=dpi)
    ax = fig.subplots()
    ranks = np.arange(num_embeddings)
    ax.bar(ranks, np.sort(probs)[::-1], width=1.0, linewidth=0)
    ax.axhline(1.0 / num_embeddings, color="k", linestyle="--", linewidth=0.8, label="uniform")
    if log_scale:
        ax.set_yscale("log")
    ax.set_xlim(-0.5, num_embeddings - 0.5)
    ax.set_xlabel("code (sorted by usage)")
    ax.set_ylabel("fraction of uses")
    ax.legend(fontsize=8, frameon=False)
    ax.set_title(
        f"perplexity {perplexity:.1f} of {num_embeddings}, "
        f"dead codes {dead} ({100 * dead / num_embeddings:.1f}%)"
    )
    fig.tight_layout()
    return _finish(fig, path, dpi)


# ----------------------------------------------------------------------------------------------
# Hyperparameter search


def search_results(tuner, figsize=(6.0, 4.0), dpi=_DPI, path=None):
    """Draws a search's objective against parameter count, one point per completed trial.

    Points are coloured by step time, so the cheapest of the good models stand out, and the
    best trial is starred.

    Args:
        tuner: a keras-tuner `Tuner` (or its oracle) after a search, e.g. from
            `tfvq.tuning.search`.
        figsize: (width, height) in inches.
        dpi: resolution of the saved PNG.
        path: where to write a PNG, if given.

    Returns:
        A `matplotlib.figure.Figure` of `figsize` inches.
    """
    # Imported here so that `tfvq.plots` does not load keras-tuner; a caller holding a tuner
    # has loaded it already.
    from tfvq.tuning.results import trials_table

    oracle = getattr(tuner, "oracle", tuner)
    name = oracle.objective.name
    rows = [r for r in trials_table(oracle)
            if r["status"] == "COMPLETED" and r[name] is not None and r["parameters"] is not None
            and math.isfinite(r[name])]
    if not rows:
        raise ValueError("search_results: the search has no completed trial with a score to plot")
    params = np.array([r["parameters"] for r in rows], dtype=float)
    scores = np.array([r[name] for r in rows], dtype=float)
    times = np.array([np.nan if r["step_time"] is None else r["step_time"] * 1e3 for r in rows])
    best = int(np.argmax(scores) if oracle.objective.direction == "max" else np.argmin(scores))

    fig = Figure(figsize=figsize, dpi=dpi)
    ax = fig.subplots()
    points = ax.scatter(params, scores, c=times, cmap="viridis", s=36, edgecolors="k",
                        linewidths=0.5)
    fig.colorbar(points, ax=ax, label="step time (ms)")
    ax.scatter(params[best:best + 1], scores[best:best + 1], marker="*", s=260,
               facecolors="none", edgecolors="red", linewidths=1.5,
               label=f"best: trial {rows[best]['trial_id']}")
    if params.max() / max(params.min(), 1) > 20:
        ax.set_xscale("log")
    ax.margins(0.1)
    ax.set_xlabel("parameters")
    ax.set_ylabel(f"{name} ({oracle.objective.direction})")
    ax.set_title(f"{len(rows)} trials")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False, loc="best")
    fig.tight_layout()
    return _finish(fig, path, dpi)
