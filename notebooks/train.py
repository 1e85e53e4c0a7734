# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Train one configuration (a ConvMixer or a claim-1 baseline) on CIFAR-10
#
# Papermill runs this notebook once per run of a grid (`python -m convmixer sweep grids/NAME.yaml`); in Colab, edit the parameters cell and run all. The logic lives in the `convmixer` package; this notebook only validates the parameters, calls `convmixer.training.train.train`, and shows the result.

# %%
# Colab / a fresh kernel: install the package when it is not importable (a no-op elsewhere).
import importlib.util, os, subprocess, sys
if importlib.util.find_spec("convmixer") is None:
    repo = os.environ.get("CONVMIXER_REPO", "https://github.com/convmixer-repro/convmixer-repro")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"convmixer-repro[tensorflow] @ git+{repo}"],
                   check=True)

# %% tags=["parameters"]
# Parameters (papermill overrides these; plain literals only): every RunConfig field with its help text.
architecture = 'convmixer'  # model family: convmixer, resnet, vit or mlp_mixer
width = None  # ConvMixer width (channels); None: 256
depth = None  # ConvMixer depth (blocks); None: 8
patch_size = None  # patch size (ConvMixer, ViT, MLP-Mixer); None: 2 for ConvMixer
kernel_size = None  # ConvMixer depthwise kernel size; None: 5
hyperparameters = {}  # a baseline's size, e.g. {"dim": 32, "depth": 4, "heads": 4, "mlp_ratio": 2} for vit (see convmixer/models/baselines.py)
activation = 'gelu'  # ConvMixer activation: gelu or relu
recipe = 'seed'  # training recipe: seed, official or official-logged (see convmixer/training/recipes.py)
recipe_overrides = {}  # recipe fields to change, e.g. {"lr": 0.005}
epochs = None  # epochs; None: the recipe's default
batch_size = None  # batch size; None: the recipe's default
seed = 0  # random seed (initialisation, data order, augmentation)
data = None  # data source; None: $CONVMIXER_DATA, else canonical CIFAR-10
train_subset = None  # train on this many (stratified) images; None: all
test_subset = None  # test on this many images; None: all
backend = 'tensorflow'  # Keras backend: tensorflow, jax or torch
precision = 'auto'  # auto, float32, mixed_float16 or mixed_bfloat16
jit_compile = 'auto'  # XLA: auto (on GPU/TPU only), on or off
out_dir = None  # None: results/runs/<run id> in the repository's checkout (./results where installed without one)
run_lock = None  # set by the sweep: the token of the run's lock it holds for this notebook

# %%
# Validate every parameter through the package before anything heavy is imported.
from pathlib import Path
from convmixer.training.config import RunConfig, PARAMETER_NAMES

from convmixer.training.speed import quiet_tensorflow_logs

quiet_tensorflow_logs()  # TensorFlow's C++ start-up lines, unless you set TF_CPP_MIN_LOG_LEVEL
config = RunConfig.from_dict({name: globals()[name] for name in PARAMETER_NAMES})
from convmixer.records import default_results_dir

# Not relative to the working directory: papermill starts kernels wherever it was started.
run_dir = Path(out_dir) if out_dir else default_results_dir() / "runs" / config.run_id
os.environ["KERAS_BACKEND"] = config.backend  # Keras reads it on first import, below
print(config.run_id, "->", run_dir)

# %%
from convmixer.training.train import train

# A progress bar within each epoch when ipywidgets is installed (Colab has it), and one line per epoch.
metrics = train(config, run_dir, lock_token=run_lock)

# %% [markdown]
# ## Learning curves and metrics

# %%
from convmixer.training.show import plot_history, metrics_table

plot_history(run_dir);
metrics_table(metrics)
