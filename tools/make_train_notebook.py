"""Regenerates notebooks/train.ipynb (committed without outputs). Edit here, then run it."""
from pathlib import Path

import nbformat as nbf

OUT = Path(__file__).resolve().parent.parent / "notebooks" / "train.ipynb"

md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell
cells = [
    md("# Train one ConvMixer configuration on CIFAR-10\n\n"
       "Papermill runs this notebook once per run of a grid (`python -m convmixer sweep grids/NAME.yaml`); "
       "in Colab, edit the parameters cell and run all. The logic lives in the `convmixer` package; this "
       "notebook only validates the parameters, calls `convmixer.train.train`, and shows the result."),
    code("# Colab / a fresh kernel: install the package when it is not importable (a no-op elsewhere).\n"
         "import importlib.util, os, subprocess, sys\n"
         "if importlib.util.find_spec(\"convmixer\") is None:\n"
         "    repo = os.environ.get(\"CONVMIXER_REPO\", \"https://github.com/convmixer-repro/convmixer-repro\")\n"
         "    subprocess.run([sys.executable, \"-m\", \"pip\", \"install\", \"-q\", f\"git+{repo}\"], check=True)"),
]
params = code(
    "# Parameters (papermill overrides these; plain literals only)\n"
    "width = 256\n"
    "depth = 8\n"
    "patch_size = 2\n"
    "kernel_size = 5\n"
    "activation = \"gelu\"\n"
    "recipe = \"seed\"          # \"seed\" (the reference report's) or \"official\" (the authors' script)\n"
    "recipe_overrides = {}\n"
    "epochs = None            # None: the recipe's default\n"
    "batch_size = None        # None: the recipe's default\n"
    "seed = 0\n"
    "data = None              # None: $CONVMIXER_DATA or canonical CIFAR-10; \"synthetic\"; or a path\n"
    "train_subset = None\n"
    "test_subset = None\n"
    "backend = \"tensorflow\"  # \"tensorflow\", \"jax\" (the GPU machines' framework) or \"torch\"\n"
    "precision = \"auto\"       # \"auto\": float32 on CPU, mixed precision on GPU; or \"float32\", \"mixed_float16\", \"mixed_bfloat16\"\n"
    "jit_compile = \"auto\"     # \"auto\": XLA on GPU/TPU only (10-70x slower on CPU); or \"on\", \"off\"\n"
    "out_dir = None           # None: results/runs/<run id> next to the notebooks folder"
)
params.metadata["tags"] = ["parameters"]
cells += [
    params,
    code("# Validate every parameter through the package before anything heavy is imported.\n"
         "from pathlib import Path\n"
         "from convmixer.config import RunConfig, PARAMETER_NAMES\n"
         "\n"
         "config = RunConfig.from_dict({name: globals()[name] for name in PARAMETER_NAMES})\n"
         "run_dir = Path(out_dir) if out_dir else Path(\"..\") / \"results\" / \"runs\" / config.run_id\n"
         "os.environ[\"KERAS_BACKEND\"] = config.backend  # Keras reads it on first import, below\n"
         "print(config.run_id, \"->\", run_dir)"),
    code("from convmixer.train import train\n"
         "\n"
         "metrics = train(config, run_dir)"),
    md("## Learning curves and metrics"),
    code("from convmixer.plots import plot_history, metrics_table\n"
         "\n"
         "plot_history(run_dir);\n"
         "metrics_table(metrics)"),
]
for i, cell in enumerate(cells):
    cell.id = f"train-{i:02d}"  # stable ids: regenerating gives an identical file
nb = nbf.v4.new_notebook(cells=cells)
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nb.metadata["language_info"] = {"name": "python"}
nbf.write(nb, OUT)
