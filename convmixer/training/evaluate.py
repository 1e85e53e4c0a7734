"""Per-image test predictions of a trained model: what a run records besides its accuracy.

Every run is scored on the same test images, so the test set's sampling noise
is shared by all runs; per-image predictions let the report count it
(``report.stats``) and compare two models on the same images. The same
function serves a finishing run and the re-evaluation of an older record's
saved weights (``tools/backfill_predictions.py``).
"""

from __future__ import annotations

import numpy as np

EVAL_BATCH_SIZE = 512  # the batch size of the run's own test evaluation (train.py)


def test_predictions(model, x_test, y_test, batch_size: int = EVAL_BATCH_SIZE) -> dict:
    """{"label", "predicted", "true_probability"} for every test image, from the model's logits."""
    logits = np.asarray(model.predict(x_test, batch_size=batch_size, verbose=0), dtype=np.float64)
    labels = np.asarray(y_test).reshape(-1).astype(np.int64)
    shifted = logits - logits.max(axis=1, keepdims=True)  # a stable softmax
    probabilities = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    return {"label": labels, "predicted": logits.argmax(axis=1),
            "true_probability": probabilities[np.arange(len(labels)), labels]}


def accuracy_of(predictions: dict) -> float:
    """The fraction of images whose predicted class is their label."""
    return float(np.mean(np.asarray(predictions["predicted"]) == np.asarray(predictions["label"])))
