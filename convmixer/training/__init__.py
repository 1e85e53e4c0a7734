"""Training: from a run configuration to a complete, resumable run record.

  config     the typed run configuration (the one schema: CLI, notebook and grids derive from it)
  recipes    the named training recipes and how they differ from their originals
  augment    the official recipe's torchvision augmentation, batched in numpy
  pipeline   per-epoch, seeded training inputs
  steps      one training epoch (a compiled custom step, or model.fit)
  speed      per-device speed settings (oneDNN, XLA, precision)
  checkpoint the atomic per-epoch checkpoint a killed run resumes from
  train      the training loop that writes the run record
"""
