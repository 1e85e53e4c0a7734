"""Command line: ``python -m convmixer {train,sweep,report,bench} ...``.

Every argument is validated (through RunConfig) before data or Keras is loaded;
a bad value exits with status 2 and one line naming the parameter. A run that
cannot be written (no space, read-only, permission) or that fails (a non-finite
loss) exits with status 1 and one line naming the path or the reason.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .training.config import RunConfig


def _optional_int(text):
    if text.lower() == "none":
        return None
    try:
        return int(text)
    except ValueError:  # "1e23", "2.5": argparse would only say "invalid _optional_int value"
        raise argparse.ArgumentTypeError(f"expected a whole number (or none), got {text!r}") from None


def _int(text):
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def _optional_str(text):
    return None if text.lower() == "none" else text


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
TAKE_OVER_HELP = ("take over a run's lock held by another host when it has not been refreshed for longer than AGE "
                  "(e.g. 30m, 2h, 1d; 0: any age), saying whose lock it was and how old: for a machine that is gone, "
                  "such as a Colab runtime after a disconnect. A live run refreshes its lock after every epoch, so "
                  "AGE must exceed the longest epoch. Without it another host's lock counts as live for 24 h; a "
                  "lock of this machine is taken over only once its processes have ended, with or without it")


def _duration(text):
    """Seconds from "90s", "30m", "2h", "1d" or "0" (an argparse type: one line naming the option when wrong)."""
    import re

    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if match is None or (not match.group(2) and float(match.group(1)) != 0):
        raise argparse.ArgumentTypeError(f"expected a duration with a unit, e.g. 90s, 30m, 2h or 1d (or 0), "
                                         f"got {text!r}")
    return float(match.group(1)) * _UNITS.get(match.group(2) or "s")


def _json_mapping(text):
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def _add_config_args(p, names=None):
    """One flag per RunConfig field (``names``: only these), typed and documented from the field itself
    (config.py is the schema, for train and for bench)."""
    import dataclasses
    import typing

    hints = typing.get_type_hints(RunConfig)
    for f in dataclasses.fields(RunConfig):
        if names is not None and f.name not in names:
            continue
        hint = hints[f.name]
        optional = typing.get_origin(hint) is typing.Union
        base = [a for a in typing.get_args(hint) if a is not type(None)][0] if optional else hint
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if base is dict:
            kind, metavar = _json_mapping, "JSON"
        elif base is int:
            kind, metavar = (_optional_int if optional else _int), None
        else:
            kind, metavar = (_optional_str if optional else str), None
        p.add_argument("--" + f.name.replace("_", "-"), type=kind, default=default, metavar=metavar,
                       help=f.metadata.get("help"))


def _add_train_args(p):
    _add_config_args(p)
    p.add_argument("--out", default=None, help="run folder (default: results/runs/<run id> of this checkout, "
                                               "where the sweep and the report look)")
    p.add_argument("--take-over-locks", type=_duration, default=None, metavar="AGE", help=TAKE_OVER_HELP)


def _config_from_args(args) -> RunConfig:
    values = {k: v for k, v in vars(args).items() if k in RunConfig.__dataclass_fields__}
    return RunConfig.from_dict(values)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, like our own validation errors
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


def build_parser():
    parser = _Parser(prog="python -m convmixer",
                     description="A reproducibility study of ConvMixer on CIFAR-10: train one configuration, sweep "
                                 "a grid of them, report on the results, bench the training speed.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser,
                                help="what to do (each command has its own --help)")

    t = sub.add_parser("train", help="train one configuration and write its run record")
    _add_train_args(t)

    s = sub.add_parser("sweep", help="run every missing run of a grid through the training notebook")
    s.add_argument("grid", help="grids/NAME.yaml")
    s.add_argument("--jobs", type=int, default=1,
                   help="runs at once: N > 1 starts a local Dask cluster of N worker processes")
    s.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                   help="run each missing run as a task on this running Dask cluster (README: Many machines)")
    s.add_argument("--take-over-locks", type=_duration, default=None, metavar="AGE", help=TAKE_OVER_HELP)
    s.add_argument("--dashboard", action="store_true",
                   help="with --jobs N > 1: serve Dask's dashboard for the local cluster, on 127.0.0.1 only "
                        "(default: no dashboard)")
    s.add_argument("--force", action="store_true", help="re-run runs that are already complete")
    s.add_argument("--dry-run", action="store_true", help="print the plan only")
    s.add_argument("--results", default=None, help="results folder (runs go in RESULTS/runs/; default: this "
                                                   "checkout's results/, whatever the working directory)")
    s.add_argument("--allow-dirty", action="store_true",
                   help="run even though the code has uncommitted changes (each record notes it)")

    r = sub.add_parser("report", help="execute the aggregation notebook and render the HTML report")
    r.add_argument("--results", default=None, help="results folder to report on (RESULTS/runs/<run id>/; "
                                                   "default: this checkout's results/)")
    r.add_argument("--out", default=None, metavar="FILE.html|FOLDER",
                   help="where to write the HTML report (a folder gets index.html); claims.json goes beside it. "
                        "Default: report/index.html for the repository's own results/, RESULTS/report/index.html "
                        "for any other results folder, so the committed report is never overwritten by another's")
    r.add_argument("--update-readme", action="store_true",
                   help="refresh README.md's Results block from these results (done anyway for the "
                        "repository's own results/)")

    b = sub.add_parser("bench", help="measure training and inference images/s against a plain model.fit baseline")
    from .bench import CONFIG_FIELDS, add_arguments

    _add_config_args(b, CONFIG_FIELDS)
    add_arguments(b)
    return parser


def _fail(command, exc, status=2):
    # One line, no traceback: status 2 for refused inputs (naming the parameter), 1 for runs that failed.
    print(f"python -m convmixer {command}: error: {' '.join(str(exc).split())}", file=sys.stderr)
    sys.exit(status)


def readme_to_update(results, update_readme: bool):
    """The README whose Results block a report on ``results`` refreshes (``build_report``'s ``readme``).

    Only the repository's own ``results/`` (or an explicit ``--update-readme``)
    may change README.md: a report on a scratch or downloaded folder must not.
    """
    from .records import REPOSITORY

    if update_readme:
        return REPOSITORY / "README.md"
    return "auto" if Path(results).resolve() == (REPOSITORY / "results").resolve() else None


def main(argv=None):
    # TensorFlow's C++ start-up lines (oneDNN, CUDA probing, absl) would bury the project's own
    # messages; the user's own TF_CPP_MIN_LOG_LEVEL wins.
    from .training.speed import prefer_onednn, quiet_tensorflow_logs

    quiet_tensorflow_logs()
    # Before anything imports TensorFlow, here and in the processes this one starts (the sweep's
    # notebook kernels, the bench's children inherit the variable).
    prefer_onednn()
    args = build_parser().parse_args(argv)
    if args.command == "train":
        try:
            config = _config_from_args(args)
        except (ValueError, TypeError) as exc:
            _fail("train", exc)
        from . import records
        from .data import DataError
        from .records import RunLocked
        from .training.guards import NonFiniteLoss, RunConflict, RunRefused
        from .training.train import train

        out = args.out or str(records.default_results_dir() / "runs" / config.run_id)
        # Before the data is loaded; a completed record needs no writing ("nothing to do").
        try:
            done = records.validate_record(out, config.config_hash).state == "completed"
        except OSError:  # a folder above is not searchable: folder_problem says so
            done = False
        problem = records.folder_problem(out, write=not done)
        if problem:
            _fail("train", f"--out {out} {problem}")
        try:
            if args.take_over_locks is not None:
                taken = records.take_over_stale_lock(out, args.take_over_locks)
                if taken:
                    print(taken, flush=True)
            metrics = train(config, out)
        except (DataError, RunConflict, RunRefused, RunLocked) as exc:
            _fail("train", exc)
        except (OSError, NonFiniteLoss) as exc:
            _fail("train", exc, status=1)
        return 0 if metrics.get("status") == "completed" else 1
    if args.command in ("sweep", "report") and args.results is None:
        from .records import default_results_dir

        args.results = str(default_results_dir())
    if args.command == "sweep":
        from .sweep import SweepError, main_sweep

        try:
            return main_sweep(args.grid, jobs=args.jobs, force=args.force, dry_run=args.dry_run,
                              results=args.results, allow_dirty=args.allow_dirty, scheduler=args.scheduler,
                              dashboard=args.dashboard, take_over_after=args.take_over_locks)
        except SweepError as exc:
            _fail("sweep", exc)
        except OSError as exc:
            _fail("sweep", exc, status=1)
    if args.command == "report":
        if not Path(args.results).is_dir():
            what = "is not a folder" if Path(args.results).exists() else "does not exist"
            _fail("report", f"--results {args.results} {what}: give the results folder (RESULTS/runs/<run id>/)")
        runs = Path(args.results) / "runs"
        if not runs.is_dir() or not any(p.is_dir() for p in runs.iterdir()):
            # an empty report, exiting 0, would look like a result
            _fail("report", f"--results {args.results} holds no runs (no folder {runs}/<run id>/): nothing to report; "
                            "give the results folder a sweep or train wrote")
        from .records import folder_problem
        from .report import ReportError, build_report
        from .report.build import CLAIMS_FILE, report_path

        folder = report_path(args.results, args.out).parent
        problem = folder_problem(folder)
        if problem:
            _fail("report", f"--out {args.out}: {folder} {problem}" if args.out else
                  f"--results {args.results}: its report folder {folder} {problem}")

        try:
            html = build_report(results=args.results, out=args.out,
                                readme=readme_to_update(args.results, args.update_readme))
        except ReportError as exc:
            _fail("report", exc, status=1)
        except OSError as exc:
            _fail("report", exc, status=1)
        print(f"wrote {html} and {html.parent / CLAIMS_FILE}")
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
