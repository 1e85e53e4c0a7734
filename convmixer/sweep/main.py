"""``python -m convmixer sweep``: plan a grid, then run what is missing here or on a Dask cluster."""

from __future__ import annotations

import os
import sys
from pathlib import Path


from .. import records
from .execute import NOTEBOOK, execute_run, outcome_line, show_notebook_output
from .grids import SweepError, load_grid
from .plan import print_plan, check_clean_tree, check_data_paths, check_data_sources, plan, tidy_done_runs


def main_sweep(grid, *, jobs=1, force=False, dry_run=False, results=None, stream=sys.stdout,
               allow_dirty=False, scheduler=None, dashboard=False, take_over_after=None) -> int:
    """Run a grid; exit status 0 when every run is complete, 1 when any failed.

    ``jobs`` > 1: a local Dask cluster of that many worker processes;
    ``scheduler`` ("tcp://HOST:PORT"): a running Dask cluster (sweep/cluster.py);
    ``dashboard``: the local cluster of ``jobs`` > 1 serves Dask's dashboard on 127.0.0.1;
    ``take_over_after`` (``--take-over-locks``): take over another host's run lock not refreshed
    for that many seconds (``records.take_over_stale_lock``). ``results``: default ``records.default_results_dir()``.
    """
    from .tasks import FORWARDED_ENV, restored_environment

    # --allow-dirty and the resolved data source hold for this sweep only
    with restored_environment(*FORWARDED_ENV):
        if not isinstance(jobs, int) or jobs < 1:
            raise SweepError(f"--jobs must be an integer >= 1, got {jobs!r}")
        if scheduler is not None and jobs != 1:
            raise SweepError("--jobs and --scheduler exclude each other: "
                             "the cluster's workers set how many runs at once")
        if take_over_after is not None and (isinstance(take_over_after, bool)
                                            or not isinstance(take_over_after, (int, float))
                                            or not 0 <= take_over_after < float("inf")):
            raise SweepError(f"--take-over-locks must be a duration >= 0, got {take_over_after!r}")
        if dashboard and (scheduler is not None or jobs == 1):
            raise SweepError("--dashboard serves the dashboard of the local cluster that --jobs N > 1 starts "
                             "(--jobs 1 starts none; a --scheduler's cluster serves its own)")
        if scheduler is not None:
            from .cluster import check_scheduler_address

            check_scheduler_address(scheduler)
        if not NOTEBOOK.exists():
            raise SweepError(f"the training notebook {NOTEBOOK} is missing: "
                             "run the sweep from a clone of the repository")
        configs = load_grid(grid)
        # Absolute paths: the notebook kernels must find the same folders and data as this process.
        results = Path(results or records.default_results_dir()).resolve()
        problem = records.folder_problem(results, write=not dry_run)  # a dry run only reads
        if problem:
            raise SweepError(f"--results {results} {problem}")
        if os.environ.get("CONVMIXER_DATA"):
            from ..data import resolve_source

            os.environ["CONVMIXER_DATA"] = resolve_source(None)
        if scheduler is None:  # a cluster's workers check their own access (run_on_dask's probe)
            check_data_paths(configs)
        planned = plan(configs, results, take_over_after)
        replace = {p.config.run_id for p in planned if force and p.state == "done"}
        print_plan(planned, stream, replace)
        if dry_run:
            return 0
        check_clean_tree(allow_dirty)
        tidy_done_runs([p for p in planned if p.config.run_id not in replace], stream)
        # A run another process holds now may be free by the time its turn comes: execute_run decides.
        todo = [p for p in planned if p.state != "done" or p.config.run_id in replace]
        if scheduler is None:  # a cluster's workers are probed instead, each for its own access (run_on_dask)
            check_data_sources([p.config for p in todo])
        show_notebook_output(stream)
        # Kernels inherit the environment: keep TensorFlow's C++ start-up chatter out of the log.
        from ..training.speed import quiet_tensorflow_logs

        quiet_tensorflow_logs()
        summary = {"completed": 0, "skipped": len(planned) - len(todo), "failed": 0, "elsewhere": 0}
        failed = []
        per_worker = None

        if todo and (scheduler is not None or jobs > 1):
            # One Dask task per run, each calling execute_run in a worker process (raises ClusterError, a SweepError).
            from .cluster import format_runs_per_worker, run_on_dask

            outcomes = run_on_dask(todo, scheduler=scheduler, jobs=None if scheduler is not None else jobs,
                                   replace=replace, results_dir=results,
                                   stream=stream, dashboard=dashboard, take_over_after=take_over_after)
            for p, outcome in zip(todo, outcomes):
                summary[outcome.status] += 1
                if outcome.status == "failed":
                    failed.append((p, outcome))
            per_worker = format_runs_per_worker(outcomes)
        else:
            from tqdm.auto import tqdm

            with tqdm(total=len(todo), desc="runs", unit="run", file=sys.stderr, disable=not todo) as bar:
                for p in todo:  # --jobs 1: in this process, one run after the other
                    outcome = execute_run(p.config, p.run_dir, replace=p.config.run_id in replace,
                                          take_over_after=take_over_after)
                    summary[outcome.status] += 1
                    if outcome.status == "failed":
                        failed.append((p, outcome))
                    bar.update(1)
                    bar.write(outcome_line(outcome.status, p.config.run_id, outcome.note), file=stream)
        print(
            f"summary: {summary['completed']} completed, {summary['skipped']} skipped, {summary['failed']} failed, "
            f"{summary['elsewhere']} running elsewhere",
            file=stream,
        )
        if per_worker:
            print(f"  {per_worker}", file=stream)
        for p, outcome in failed:
            error = outcome.where / records.ERROR
            see = f"; see {error}" if error.exists() else ""
            print(f"  failed: {p.config.run_id}: {outcome.note or 'failed'}{see}", file=stream)
        return 1 if failed else 0
