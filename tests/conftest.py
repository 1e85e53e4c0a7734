import os

# Quiet TensorFlow and pin the backend before any test imports Keras.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# Tests must never depend on the machine's dataset setting.
os.environ.pop("CONVMIXER_DATA", None)
# Sweeps in tests run from the working tree, clean or not (the refusal has its own test).
os.environ["CONVMIXER_ALLOW_DIRTY"] = "1"
# Tests train as the CLI does: oneDNN on before anything imports TensorFlow (importing the package no
# longer sets it; the CLI, train() and bench's children do, and a test process may import TensorFlow first).
from convmixer.training.speed import prefer_onednn  # noqa: E402

prefer_onednn()
