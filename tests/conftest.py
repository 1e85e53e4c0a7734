import os

# Quiet TensorFlow and pin the backend before any test imports Keras.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# Tests must never depend on the machine's dataset setting.
os.environ.pop("CONVMIXER_DATA", None)
# Sweeps in tests run from the working tree, clean or not (the refusal has its own test).
os.environ["CONVMIXER_ALLOW_DIRTY"] = "1"
