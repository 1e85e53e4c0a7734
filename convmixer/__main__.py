"""Command line: ``python -m convmixer {train,sweep,report,bench} ...``.

Every argument is validated (through RunConfig) before data or Keras is loaded;
a bad value exits with status 2 and one line naming the parameter.
"""

from __future__ import annotations

import argparse
import json
import sys

from .config import RunConfig


def _optional_int(text):
    return None if text.lower() == "none" else int(text)


def _add_train_args(p):
    d = RunConfig.__dataclass_fields__
    p.add_argument("--width", type=int, default=d["width"].default)
    p.add_argument("--depth", type=int, default=d["depth"].default)
    p.add_argument("--patch-size", type=int, default=d["patch_size"].default)
    p.add_argument("--kernel-size", type=int, default=d["kernel_size"].default)
    p.add_argument("--activation", default=d["activation"].default)
    p.add_argument("--recipe", default=d["recipe"].default)
    p.add_argument("--recipe-overrides", type=json.loads, default={}, metavar="JSON",
                   help='e.g. \'{"lr": 0.002}\'')
    p.add_argument("--epochs", type=_optional_int, default=None, help="default: the recipe's")
    p.add_argument("--batch-size", type=_optional_int, default=None, help="default: the recipe's")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", default=None, help="cifar10 | synthetic | PATH (default: $CONVMIXER_DATA or cifar10)")
    p.add_argument("--train-subset", type=_optional_int, default=None)
    p.add_argument("--test-subset", type=_optional_int, default=None)
    p.add_argument("--backend", default=d["backend"].default)
    p.add_argument("--out", default=None, help="run folder (default: results/runs/<run id>)")


def _config_from_args(args) -> RunConfig:
    values = {k: v for k, v in vars(args).items() if k in RunConfig.__dataclass_fields__}
    return RunConfig.from_dict(values)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, like our own validation errors
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


def build_parser():
    parser = _Parser(prog="python -m convmixer", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    t = sub.add_parser("train", help="train one configuration and write its run record")
    _add_train_args(t)

    s = sub.add_parser("sweep", help="run every missing run of a grid through the training notebook")
    s.add_argument("grid", help="grids/NAME.yaml")
    s.add_argument("--jobs", type=int, default=1)
    s.add_argument("--force", action="store_true", help="re-run runs that are already complete")
    s.add_argument("--dry-run", action="store_true", help="print the plan only")
    s.add_argument("--results", default="results", help="results folder (runs go in RESULTS/runs/)")

    r = sub.add_parser("report", help="execute the aggregation notebook and render the HTML report")
    r.add_argument("--results", default="results")
    r.add_argument("--out", default="report/index.html")

    b = sub.add_parser("bench", help="measure training and inference images/s against a plain model.fit baseline")
    from .bench import add_arguments

    add_arguments(b)
    return parser


def _fail(command, exc):
    # Configuration and data errors: one line naming the parameter, no traceback, exit status 2.
    print(f"python -m convmixer {command}: error: {exc}", file=sys.stderr)
    sys.exit(2)


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.command == "train":
        try:
            config = _config_from_args(args)
        except (ValueError, TypeError) as exc:
            _fail("train", exc)
        from pathlib import Path

        from .data import DataError
        from .train import RunConflict, train

        out = args.out or str(Path("results") / "runs" / config.run_id)
        try:
            metrics = train(config, out)
        except (DataError, RunConflict) as exc:
            _fail("train", exc)
        return 0 if metrics.get("status") == "completed" else 1
    if args.command == "sweep":
        from .sweep import SweepError, main_sweep

        try:
            return main_sweep(args.grid, jobs=args.jobs, force=args.force, dry_run=args.dry_run,
                              results=args.results)
        except SweepError as exc:
            _fail("sweep", exc)
    if args.command == "report":
        from .report import ReportError, build_report

        try:
            build_report(results=args.results, out=args.out)
        except ReportError as exc:
            _fail("report", exc)
        return 0
    if args.command == "bench":
        from .bench import main_bench

        try:
            return main_bench(args)
        except (ValueError, RuntimeError) as exc:  # bad values; a case that failed in its process
            _fail("bench", exc)
    return 2


if __name__ == "__main__":
    sys.exit(main())
