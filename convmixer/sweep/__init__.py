"""Grids of runs: expand a grid file, plan what is missing, execute the training notebook per run.

Each run lives in ``RESULTS/runs/<run id>/`` and is trained under its lock
(``records.acquire_lock``), so sweeps started at the same time on one results
folder (or on many machines sharing it) train each run once.

  grids     grid files -> validated run configurations
  plan      the state of every run, and what to tidy or check first
  execute   one run: the notebook through papermill, under its lock, never raising
  main      ``python -m convmixer sweep``: here one run after the other, or on Dask
  cluster   the Dask side: connect or start a cluster, probe the workers, submit, wait
  tasks     what runs inside a Dask worker
"""

from .execute import execute_run
from .grids import SweepError, load_grid
from .main import main_sweep
from .plan import check_clean_tree, plan

__all__ = ["SweepError", "check_clean_tree", "execute_run", "load_grid", "main_sweep", "plan"]
