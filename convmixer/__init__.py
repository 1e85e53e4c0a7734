"""ConvMixer ("Patches Are All You Need?") on CIFAR-10: a reproducibility study in Keras 3.

The pipeline, one subpackage (or module) per stage:
  models    ConvMixer and the claim-1 baselines (ResNet, ViT, MLP-Mixer)
  data      CIFAR-10 sources (canonical, local archives, image folders, synthetic)
  training  configuration, recipes, augmentation, the resumable training loop
  records   the run folder: its files, states, locks and provenance
  sweep     grids of runs, executed through papermill (one machine or a Dask cluster)
  report    statistics, verdicts, tables, figures and the HTML report
  bench     training-speed measurements

Keras is imported lazily, so ``import convmixer`` is cheap and the backend can
still be chosen; importing it changes no global setting. What trains (the CLI,
``training.train.train``, the bench's children) turns TensorFlow's oneDNN on
first (``training.speed.prefer_onednn``).
"""

__version__ = "0.1.0"
