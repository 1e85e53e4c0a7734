"""Training: from a run configuration to a complete, resumable run record.

  config     the typed run configuration (the one schema: CLI, notebook and grids derive from it)
  recipes    the named training recipes and how they differ from their originals
  augment    the official recipe's torchvision augmentation, batched in numpy
  pipeline   per-epoch, seeded training inputs
  steps      one training epoch (a compiled custom step, or model.fit)
  speed      per-device speed settings (oneDNN, XLA, precision)
  optim      the recipe's optimizer and learning-rate schedule
  guards     refusals before any work (backend, memory, records not to overwrite, non-finite loss)
  session    the pieces of one run: data splits, model and optimizer, one epoch, metrics
  progress   a progress bar within each epoch
  checkpoint the atomic per-epoch checkpoint a killed run resumes from
  train      the training loop: set up, restore, loop over epochs, select, write the record
  show       what the train notebook shows of its run (learning curves, headline metrics)
"""
