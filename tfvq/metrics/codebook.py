"""Statistics of VQ-VAE codes over a whole split: perplexity, usage, the most-frequent-code guess.

They are computed from the counts of all the codes at once, not averaged over batches: a
per-batch perplexity falls with the batch size (perfectly uniform use of 512 codes reads about
448 on a 32-image batch of 8 x 8 maps).
"""

import keras
import numpy as np

from tfvq.layers import code_statistics


def _counts(codes, num_embeddings, name):
    codes = np.asarray(codes)
    if not np.issubdtype(codes.dtype, np.integer):
        raise ValueError(f"summarize_codes expects integer {name}; got dtype {codes.dtype}")
    if codes.size == 0:
        raise ValueError(f"summarize_codes expects at least one code in {name}; got none")
    low, high = int(codes.min()), int(codes.max())
    if low < 0 or high >= num_embeddings:
        raise ValueError(f"summarize_codes expects {name} in [0, {num_embeddings}); got values "
                         f"from {low} to {high}")
    return np.bincount(codes.ravel(), minlength=num_embeddings)


def summarize_codes(codes, num_embeddings, reference=None):
    """Perplexity, usage and the accuracy of always guessing the most frequent code.

    Perplexity and usage are `tfvq.layers.code_statistics` of the codes' counts; this adds
    the counting, the checks and the most-frequent-code guess, for codes already in NumPy.

    The last one is the floor a prior's accuracy has to be read against: a prior that ignores
    all context and always predicts the most frequent code scores it, and a codebook that has
    collapsed onto a few codes makes it high.

    Args:
        codes: integer codes in [0, num_embeddings), any shape (the (N, h, w) maps of
            `VQVAE.encode_to_indices`, or their levels).
        num_embeddings: the codebook size K.
        reference: codes whose most frequent code is the guess, such as the training split's,
            so that the guess is not fitted to `codes`; by default `codes` themselves.

    Returns:
        A dict: `perplexity` (exp of the entropy of the code frequencies, in [1, K]), `usage`
        (the fraction of the K codes that occur), `most_frequent_code` (of `reference`) and
        `most_frequent_code_accuracy` (the fraction of `codes` equal to it).

    Raises:
        ValueError: non-integer or empty codes, or codes outside [0, num_embeddings).

    Example:
    >>> stats = summarize_codes(np.array([[0, 0], [1, 2]]), num_embeddings=4)
    >>> round(stats["perplexity"], 3), stats["usage"], stats["most_frequent_code_accuracy"]
    (2.828, 0.75, 0.5)
    """
    if isinstance(num_embeddings, bool) or not isinstance(num_embeddings, (int, np.integer)) \
            or num_embeddings < 1:
        raise ValueError(f"summarize_codes expects a positive integer num_embeddings; got "
                         f"{num_embeddings!r}")
    counts = _counts(codes, num_embeddings, "codes")
    guess_counts = counts if reference is None else _counts(reference, num_embeddings,
                                                            "reference")
    perplexity, usage = code_statistics(counts)
    guess = int(np.argmax(guess_counts))
    return {
        "perplexity": float(keras.ops.convert_to_numpy(perplexity)),
        "usage": float(keras.ops.convert_to_numpy(usage)),
        "most_frequent_code": guess,
        "most_frequent_code_accuracy": float(counts[guess] / counts.sum()),
    }
