"""``python -m convmixer bench``: steady-state training and inference speed, side by side.

Each case runs in a fresh Python process, so one case's graphs, threads and
memory never slow the next, and the baseline can start TensorFlow exactly as a
user would:

* ``fit``: the baseline. Plain ``model.fit`` of the same model, built from
  Keras' own layers, with TensorFlow's own defaults: TensorFlow is imported
  before ``convmixer``, so the package's speed settings (oneDNN on) do not
  apply, and neither do its faster CPU layers (``models/layers.py``).
* ``project``: the real training path, the code ``train()`` and the notebook run:
  per-epoch inputs from ``train.epoch_inputs`` (the recipe's shuffle and
  augmentation) fed to ``steps.make_epoch_trainer`` with loss and accuracy
  metrics, under ``speed.settings_for_device``.
* ``memory``: the same compiled step fed batches already in memory (no shuffle,
  no augmentation, no dataset): if ``project`` is as fast, the input pipeline is
  not the bottleneck.
* ``inference``: ``model.predict`` images/s (what evaluation costs).

A case times ``windows`` windows of ``window_batches`` batches each after
``warmup_windows`` untimed ones (the first traces the graph) and reports the
median and the spread. The arithmetic of one ConvMixer training image is
counted from the architecture (``training_flops_per_image``) to show the
fraction of the machine's fp32 peak that a case reaches.

``--architecture`` with ``--hyperparameters`` times a baseline of claim 1 the
same way (its arithmetic is not counted), so the models compared there can be
timed one after another on an idle machine, not only while a grid trains.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
import dataclasses
from dataclasses import dataclass
from pathlib import Path

from .training.config import RunConfig

CASES = ("fit", "project", "memory", "inference")
BASELINE = "fit"
TRAINING_CASES = ("fit", "project", "memory")


# The run fields a bench measures, exactly as RunConfig declares them (bench's flags, their help and every
# check come from there): the model, the recipe whose optimizer and augmentation are timed, the batch (None:
# the recipe's) and the speed options.
CONFIG_FIELDS = ("architecture", "width", "depth", "patch_size", "kernel_size", "hyperparameters", "activation",
                 "recipe", "recipe_overrides", "batch_size", "backend", "precision", "jit_compile")


@dataclass
class BenchSpec:
    """What bench times: a run's configuration, and how long to time it."""

    config: RunConfig
    warmup_windows: int = 1
    windows: int = 3
    window_batches: int = 4

    def __post_init__(self):
        for name, least in (("warmup_windows", 0), ("windows", 1), ("window_batches", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")

    @classmethod
    def from_dict(cls, values: dict) -> "BenchSpec":
        """From CONFIG_FIELDS and the timing fields (a record's ``spec``); ValueError names a bad one."""
        timing = [f.name for f in dataclasses.fields(cls) if f.name != "config"]
        unknown = sorted(set(values) - set(CONFIG_FIELDS) - set(timing))
        if unknown:
            raise ValueError(f"unknown bench field(s) {unknown}; allowed are {list(CONFIG_FIELDS) + timing}")
        try:
            config = RunConfig.from_dict({k: v for k, v in values.items() if k in CONFIG_FIELDS})
        except TypeError as exc:  # a wrong type is bad input here too: one line, like the other values
            raise ValueError(str(exc)) from None
        return cls(config, **{k: v for k, v in values.items() if k in timing})

    def to_dict(self) -> dict:
        """The spec as records and child processes carry it: CONFIG_FIELDS (defaults filled in) and timing."""
        return {**{k: getattr(self.config, k) for k in CONFIG_FIELDS},
                **{f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "config"}}


def model_label(spec: BenchSpec) -> str:
    """The timed model as the report names it: ConvMixer-64/4 p2 k9, ResNet-20 (width 6), ..."""
    from .models.names import cell_name

    return cell_name(spec.to_dict())


def spec_flops_per_image(spec: BenchSpec):
    """Training FLOPs of one image of a ConvMixer spec; None for the baselines (not counted)."""
    c = spec.config
    if c.architecture != "convmixer":
        return None
    return training_flops_per_image(c.width, c.depth, c.patch_size, c.kernel_size)


def training_flops_per_image(width, depth, patch_size, kernel_size):
    """fp32 FLOPs of one training image: the forward pass's multiply-adds (``count_macs``: the convolutions
    and the classifier, all but a few percent of the arithmetic) x 2 (FLOPs) x 3 (forward + two backward).

    The elementwise BatchNorm/GELU work is memory-bound and not counted (it costs time without adding FLOPs,
    which is the point).
    """
    from .models.convmixer import count_macs

    return 3 * 2 * count_macs(width, depth, patch_size, kernel_size)


# fp32 FLOPs per cycle per core by the widest vector FMA the CPU has (two FMA pipes).
_FLOPS_PER_CYCLE = (("avx512f", 64), ("fma", 32), ("avx", 16), ("sse2", 8))


def cpu_peak_gflops(cpuinfo=None, cores=None):
    """Estimated fp32 peak of this machine's CPU cores: (GFLOP/s, how it was estimated), or (None, why not).

    cores x clock x FLOPs per cycle of the widest FMA the CPU reports; ``cpuinfo``
    is /proc/cpuinfo's text (read when None), ``cores`` the cores this process may use.
    """
    from .records.provenance import parse_cpuinfo, read_cpuinfo

    info = read_cpuinfo() if cpuinfo is None else parse_cpuinfo(cpuinfo)
    flags, mhz = info["flags"], info["mhz"]
    per_cycle = next((n for flag, n in _FLOPS_PER_CYCLE if flag in flags), None)
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if not per_cycle or not mhz:
        return None, "CPU flags or clock unknown"
    ghz = max(mhz) / 1000
    isa = next(flag for flag, n in _FLOPS_PER_CYCLE if n == per_cycle)
    return cores * ghz * per_cycle, f"{cores} cores x {ghz:.2f} GHz x {per_cycle} FLOP/cycle ({isa})"


# ---------------------------------------------------------------- one case, in a child process


def _random_data(spec, n):
    import numpy as np

    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, 32, 32, 3), dtype="uint8"), rng.integers(0, 10, n).astype("int64")


def _build(spec, settings):
    import keras

    from .models.baselines import build_model
    from .training.optim import make_optimizer

    keras.config.set_dtype_policy(settings["precision"])
    keras.utils.set_random_seed(0)
    config = spec.config
    recipe = config.recipe_obj
    model = build_model(config.architecture, config.model_hyperparameters, normalization=recipe.normalization)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    optimizer = make_optimizer(recipe, recipe.lr)  # the training path's optimizer (clipping included)
    model.compile(optimizer=optimizer, loss=loss_fn, metrics=["accuracy"], jit_compile=settings["jit_compile"])
    return model, loss_fn


def _time_windows(spec, run_window):
    """Seconds of each timed window, after the untimed warm-up windows."""
    for w in range(spec.warmup_windows):
        run_window(w)
    seconds = []
    for w in range(spec.windows):
        start = time.perf_counter()
        run_window(spec.warmup_windows + w)
        seconds.append(time.perf_counter() - start)
    return seconds


def run_case(spec: BenchSpec, case: str) -> dict:
    """Measure one case in this process (``bench`` calls it in a fresh child process)."""
    import keras

    from . import records
    from .models.layers import fast_paths_in
    from .training.speed import onednn_enabled, settings_for_device
    from .training.steps import make_epoch_trainer
    from .training.session import epoch_inputs

    device = records.device_description()
    if case == BASELINE:  # the framework's defaults: float32, no XLA, model.fit
        settings = {"precision": "float32", "jit_compile": False}
    else:
        settings = settings_for_device(device["kind"], spec.config.precision, spec.config.jit_compile)
    if case == BASELINE:  # and Keras' own layers, without this project's faster CPU arithmetic
        from .models.layers import plain_keras_layers

        with plain_keras_layers():
            model, loss_fn = _build(spec, settings)
    else:
        model, loss_fn = _build(spec, settings)
    batch_size = spec.config.batch_size
    window_images = spec.window_batches * batch_size
    x, y = _random_data(spec, window_images)

    if case == "inference":
        def run_window(_):
            model.predict(x, batch_size=batch_size, verbose=0)
        loop = "model.predict"
    elif case == "memory" and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        train_epoch = make_epoch_trainer(model, model.optimizer, loss_fn, jit_compile=settings["jit_compile"])
        batches = [(tf.constant(x[i:i + batch_size]), tf.constant(y[i:i + batch_size]))
                   for i in range(0, window_images, batch_size)]

        def run_window(_):
            train_epoch(batches, None, batch_size)
        loop = train_epoch.kind
    else:
        use_fit = True if case == BASELINE else None  # None: the project's choice per backend
        train_epoch = make_epoch_trainer(model, model.optimizer, loss_fn, jit_compile=settings["jit_compile"],
                                         use_fit=use_fit)
        config = spec.config
        recipe = config.recipe_obj

        def run_window(window):
            if case == "memory":  # other backends: the same trainer, no per-epoch augmentation
                train_epoch(x, y, batch_size)
            else:
                inputs, labels = epoch_inputs(recipe, x, y, config, window)
                train_epoch(inputs, labels, batch_size)
        loop = train_epoch.kind

    seconds = _time_windows(spec, run_window)
    rates = sorted(window_images / s for s in seconds)
    return {
        "case": case,
        "images_per_second": statistics.median(rates),
        "min_images_per_second": rates[0],
        "max_images_per_second": rates[-1],
        "window_images": window_images,
        "loop": loop,
        "backend": keras.backend.backend(),
        "precision": settings["precision"],
        "jit_compile": settings["jit_compile"],
        "onednn": onednn_enabled(keras.backend.backend()),
        "cpu_layers": fast_paths_in(model),
        "device": device,
    }


def child_main(argv):
    """Entry point of a child process: ``--case CASE --spec JSON``; prints one JSON line."""
    p = argparse.ArgumentParser()
    p.add_argument("--case", required=True, choices=CASES)
    p.add_argument("--spec", required=True)
    a = p.parse_args(argv)
    from .training.speed import prefer_onednn

    prefer_onednn()  # a no-op in the baseline's child, which imports TensorFlow first
    result = run_case(BenchSpec.from_dict(json.loads(a.spec)), a.case)
    print("BENCH " + json.dumps(result), flush=True)
    return 0


def _child_command(spec, case):
    # The baseline imports TensorFlow before child_main, so TensorFlow starts with its own
    # defaults (prefer_onednn only turns oneDNN on before TensorFlow is imported, see speed.py).
    first = "import tensorflow, " if case == BASELINE and spec.config.backend == "tensorflow" else "import "
    code = first + "convmixer, sys; from convmixer.bench import child_main; sys.exit(child_main(sys.argv[1:]))"
    return [sys.executable, "-c", code, "--case", case, "--spec", json.dumps(spec.to_dict())]


def measure(spec: BenchSpec, case: str, timeout=3600) -> dict:
    """Run one case in a fresh process and return its result."""
    env = dict(os.environ, KERAS_BACKEND=spec.config.backend)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if case == BASELINE:
        # A user's own TF_ENABLE_ONEDNN_OPTS would not be TensorFlow's default; the
        # package's would not be there for a plain user either.
        env.pop("TF_ENABLE_ONEDNN_OPTS", None)
    out = subprocess.run(_child_command(spec, case), env=env, capture_output=True, text=True, timeout=timeout)
    lines = [line for line in out.stdout.splitlines() if line.startswith("BENCH ")]
    if out.returncode != 0 or not lines:
        tail = (out.stderr or out.stdout).strip().splitlines()[-5:]
        raise RuntimeError(f"bench case {case!r} failed (exit {out.returncode}): " + " | ".join(tail))
    return json.loads(lines[-1][len("BENCH "):])


def summarize(spec: BenchSpec, results: list[dict], peak=None) -> list[dict]:
    """Add the ratio to the baseline and the fraction of peak to each result."""
    flops = spec_flops_per_image(spec)
    baseline = next((r["images_per_second"] for r in results if r["case"] == BASELINE), None)
    rows = []
    for r in results:
        row = dict(r, model=model_label(spec), batch_size=spec.config.batch_size)
        row["vs_fit"] = r["images_per_second"] / baseline if baseline else None
        if r["case"] in TRAINING_CASES and flops is not None:
            row["gflops_per_second"] = r["images_per_second"] * flops / 1e9
            row["fraction_of_peak"] = row["gflops_per_second"] / peak if peak and r["device"]["kind"] == "CPU" else None
        rows.append(row)
    return rows


def format_table(rows) -> str:
    head = "| case | loop | precision | XLA | oneDNN | img/s (median) | spread | x plain fit | GFLOP/s | of CPU peak |"
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        def fmt(value, pattern):
            return "-" if value is None else pattern.format(value)
        lines.append(
            f"| {r['case']} | {r['loop']} | {r['precision']} | {'on' if r['jit_compile'] else 'off'} | "
            f"{fmt(r['onednn'], '{}')} | {r['images_per_second']:.1f} | "
            f"{r['min_images_per_second']:.1f}-{r['max_images_per_second']:.1f} | {fmt(r['vs_fit'], '{:.2f}x')} | "
            f"{fmt(r.get('gflops_per_second'), '{:.1f}')} | {fmt(r.get('fraction_of_peak'), '{:.0%}')} |")
    return "\n".join(lines)


def add_arguments(p):
    """bench's own flags; the run's fields (CONFIG_FIELDS) get RunConfig's flags from the CLI."""
    helps = {
        "warmup_windows": "untimed windows before the timed ones; the first traces the graph (default: %(default)s)",
        "windows": "timed windows; the median and the spread are reported (default: %(default)s)",
        "window_batches": "batches per window (default: %(default)s)",
    }
    for f in dataclasses.fields(BenchSpec):
        if f.name != "config":
            p.add_argument("--" + f.name.replace("_", "-"), type=int, default=f.default, help=helps[f.name])
    p.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, from {list(CASES)}")
    p.add_argument("--peak-gflops", type=float, default=None,
                   help="the CPU's fp32 peak in GFLOP/s, a finite number > 0 (default: estimated from /proc/cpuinfo)")
    p.add_argument("--record", metavar="DIR", default=None,
                   help="also write the measurement as a JSON record into DIR (e.g. results/bench), where the "
                        "report reads the cost of settings it has not run")


def main_bench(args, out=sys.stdout) -> int:
    """The ``bench`` command: validate everything, then measure each case in its own process."""
    timing = [f.name for f in dataclasses.fields(BenchSpec) if f.name != "config"]
    spec = BenchSpec.from_dict({k: getattr(args, k) for k in (*CONFIG_FIELDS, *timing)})
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in cases if c not in CASES]
    if unknown or not cases:
        raise ValueError(f"cases must be a comma-separated list from {list(CASES)}, got {args.cases!r}")
    given = getattr(args, "peak_gflops", None)
    if given is not None and not (isinstance(given, (int, float)) and math.isfinite(given) and given > 0):
        raise ValueError(f"--peak-gflops must be a finite number > 0 (the CPU's fp32 peak in GFLOP/s), got {given!r}")
    if getattr(args, "record", None):  # an unwritable folder fails here, before the minutes of timing
        try:
            Path(args.record).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ValueError(f"--record: cannot create the folder {args.record}: {exc.strerror or exc}") from None
    peak, how = (given, "given with --peak-gflops") if given is not None else cpu_peak_gflops()
    flops = spec_flops_per_image(spec)
    print(f"# {model_label(spec)}: {json.dumps(spec.to_dict())}", file=out)
    print(f"# one training image = {'not counted' if flops is None else f'{flops / 1e9:.3f} GFLOP'}; CPU fp32 peak "
          f"{'unknown' if peak is None else f'{peak:.0f} GFLOP/s'} ({how})", file=out, flush=True)
    started, load_at_start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), _load()
    results = []
    for case in cases:
        results.append(measure(spec, case))
        print(json.dumps(summarize(spec, results, peak)[-1]), file=out, flush=True)
    print(format_table(summarize(spec, results, peak)), file=out, flush=True)
    if getattr(args, "record", None):
        path = write_record(args.record, spec, summarize(spec, results, peak), started, load_at_start)
        print(f"# recorded in {path}", file=out)
    return 0


def write_record(folder, spec: BenchSpec, rows: list[dict], started: str, load_at_start=None) -> Path:
    """One measurement as ``FOLDER/<start time>_<model>_<recipe>_b<batch>.json``, written atomically.

    It holds what a reader needs to trust a cost taken from it: the spec, every
    case's result (with the machine and its vector extension), when it ran, the
    load average at the start and the end, and the code's commit.
    """
    import re

    from .records import atomic_write_json
    from .records.provenance import git_commit

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^A-Za-z0-9]+", "-", f"{model_label(spec)}_{spec.config.recipe}_b{spec.config.batch_size}").strip("-")
    path = folder / f"{started.replace(':', '')}_{slug}.json"
    atomic_write_json(path, {"kind": "bench", "measured": started, "load_average": [load_at_start, _load()],
                             "git_commit": git_commit(), "spec": spec.to_dict(), "results": rows})
    return path


def _load():
    try:
        return float(os.getloadavg()[0])
    except OSError:
        return None
