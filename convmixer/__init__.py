"""ConvMixer ("Patches Are All You Need?") on CIFAR-10: a reproducibility study in Keras 3.

Modules, one job each:
  model     the ConvMixer builder and the paper's parameter counts
  speed     per-device speed settings (oneDNN, XLA, precision) and the benchmark
  data      CIFAR-10 sources (canonical, local archives, image folders, synthetic)
  config    the typed run configuration and its run id
  recipes   the "seed" and "official" training recipes
  pipeline  per-epoch, seeded training inputs
  train     the resumable training loop and the run record
  records   atomic files and provenance
  sweep     grids of runs, executed through papermill
  results   loading run records into a table
  report    the aggregation notebook rendered to HTML
  plots     figures for notebooks and the report

Keras is imported lazily, so ``import convmixer`` is cheap and the backend can
still be chosen.
"""

__version__ = "0.1.0"

from .speed import prefer_onednn as _prefer_onednn

# Must run before TensorFlow is imported: oneDNN more than doubles training speed on
# CPUs where TensorFlow leaves it off by default (see speed.py).
_prefer_onednn()
