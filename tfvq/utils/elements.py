"""What a dataset element holds: images (or codes) and optional labels, in any usual form."""

_IMAGE_KEYS = ("image", "images")
_LABEL_KEYS = ("label", "labels")


def split_element(element, owner="tfvq", keys=_IMAGE_KEYS):
    """Splits `x`, `(x,)`, `(x, labels)`, `(x, labels, weights)` or a tfds-style dict.

    The one place that knows the element forms: plain tensors and arrays, the tuples Keras
    passes to `train_step`, and the feature dicts that `tfds.load` yields (`{"image": ...,
    "label": ...}`; other keys are ignored).

    Args:
        element: what a dataset yields, or what a user passes to `fit` / `predict`.
        owner: who asks, to start error messages.
        keys: the dict keys that may hold `x`, first match wins.

    Returns:
        `(x, labels)`; `labels` is None where the element has none.

    Example:
    >>> split_element({"image": 1, "label": 2, "id": "a"})
    (1, 2)
    >>> split_element((1,))
    (1, None)
    """
    if isinstance(element, dict):
        x = next((element[k] for k in keys if k in element), None)
        if x is None:
            raise ValueError(
                f"{owner} expects a dict element with one of the keys {list(keys)}; got keys "
                f"{sorted(element)}"
            )
        labels = next((element[k] for k in _LABEL_KEYS if k in element), None)
        return x, labels
    if isinstance(element, (tuple, list)):
        if not 1 <= len(element) <= 3:
            raise ValueError(
                f"{owner} expects x, (x,), (x, labels) or (x, labels, weights); got a "
                f"{type(element).__name__} of {len(element)} items"
            )
        x = element[0]
        if isinstance(x, dict):
            return split_element(x, owner, keys)[0], (element[1] if len(element) > 1 else None)
        return x, (element[1] if len(element) > 1 else None)
    return element, None
