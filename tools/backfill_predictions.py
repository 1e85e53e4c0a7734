"""Give completed records made before runs kept per-image predictions their ``test_predictions.npz``.

    CONVMIXER_DATA=PATH python tools/backfill_predictions.py [--results results] [--dry-run]

For each completed run without predictions, the run's saved weights are loaded
into its model and evaluated on its test images, exactly as the run's own test
evaluation did (same images, order and batch size). The file is written only
when the data's fingerprint equals the record's and the predictions reproduce
the recorded test accuracy to the image; otherwise the run is named with the
reason and left as it was. A run another process holds (its lock) is skipped.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))


def backfill(results: Path, *, dry_run: bool = False, out=sys.stdout) -> dict:
    """{"written": [...], "skipped": [(run id, reason)], "missing": [...]} for the records in ``results``."""
    from convmixer import records
    from convmixer.data import load_cifar10, take_subset
    from convmixer.training.evaluate import accuracy_of, test_predictions
    from convmixer.training.speed import prefer_onednn
    from convmixer.training.train import load_trained_model

    prefer_onednn()  # the kernels the runs trained with: before the data or a model imports TensorFlow
    report = {"written": [], "skipped": [], "missing": []}
    datasets = {}
    for run_dir in sorted((results / "runs").iterdir()) if (results / "runs").is_dir() else []:
        record = records.RunRecord(run_dir)
        state = record.state()
        if state.state != "completed" or record.has(records.PREDICTIONS):
            continue
        report["missing"].append(run_dir.name)
        if dry_run:
            continue
        params, metrics = state.params, state.metrics
        source = params.get("data")
        if source not in datasets:
            datasets[source] = load_cifar10(source)
        ds = datasets[source]
        if ds.fingerprint != metrics.get("dataset", {}).get("fingerprint"):
            report["skipped"].append((run_dir.name, "the data here is not the data the record names (fingerprint)"))
            continue
        x_test, y_test = take_subset(ds.x_test, ds.y_test, params.get("test_subset"), seed=0, name="test_subset")
        try:
            with records.acquire_lock(run_dir, what="backfill"):
                predictions = test_predictions(load_trained_model(run_dir), x_test, y_test)
                if abs(accuracy_of(predictions) - metrics["test_accuracy"]) > 0.5 / len(y_test):
                    report["skipped"].append((run_dir.name, f"re-evaluated accuracy {accuracy_of(predictions):.4f} "
                                                            f"is not the recorded {metrics['test_accuracy']:.4f}"))
                    continue
                record.write_predictions(**predictions)
        except records.RunLocked as exc:
            report["skipped"].append((run_dir.name, f"locked: {exc}"))
            continue
        report["written"].append(run_dir.name)
        print(f"{run_dir.name}: predictions written ({accuracy_of(predictions):.4f})", file=out, flush=True)
    return report


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", default=str(REPOSITORY / "results"), help="the results folder (default: results/)")
    p.add_argument("--dry-run", action="store_true", help="only list the completed runs without predictions")
    args = p.parse_args(argv)
    report = backfill(Path(args.results), dry_run=args.dry_run)
    for name, reason in report["skipped"]:
        print(f"{name}: not written: {reason}", file=sys.stderr)
    print(f"{len(report['missing'])} completed run(s) without predictions; {len(report['written'])} written, "
          f"{len(report['skipped'])} skipped")
    return 1 if report["skipped"] else 0


if __name__ == "__main__":
    sys.exit(main())
