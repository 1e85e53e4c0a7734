import json
import subprocess
import sys

import pytest

from convmixer.bench import cpu_peak_gflops, training_flops_per_image


def test_training_flops_of_convmixer_256_8():
    # 0.89 GFLOP per training image at p=2, k=5: the figure measured independently in the speed issue
    assert training_flops_per_image(256, 8, 2, 5) / 1e9 == pytest.approx(0.889, abs=0.001)
    # patch 4 has a quarter of the tokens; kernel 9 adds depthwise work
    assert training_flops_per_image(256, 8, 4, 9) < training_flops_per_image(256, 8, 2, 9) / 3.9


@pytest.mark.parametrize("flags,per_cycle", [("fpu sse2 avx fma avx512f", 64), ("sse2 avx fma", 32),
                                             ("sse2 avx", 16), ("sse2", 8)])
def test_cpu_peak_counts_cores_clock_and_vector_width(flags, per_cycle):
    cpuinfo = f"processor\t: 0\ncpu MHz\t\t: 2500.000\nflags\t\t: {flags}\n"
    peak, how = cpu_peak_gflops(cpuinfo, cores=2)
    assert peak == pytest.approx(2 * 2.5 * per_cycle)
    assert "2 cores" in how and "2.50 GHz" in how
    assert cpu_peak_gflops("processor\t: 0\n", cores=2)[0] is None  # unknown clock: no made-up peak


def test_bench_takes_its_run_fields_from_runconfig():
    """bench's flags, spec and record for the run's fields are RunConfig's (same names, help, defaults, checks):
    a field added to or changed in RunConfig cannot drift from bench."""
    import dataclasses

    from convmixer.__main__ import build_parser
    from convmixer.bench import CONFIG_FIELDS, BenchSpec
    from convmixer.training.config import RunConfig

    fields = {f.name: f for f in dataclasses.fields(RunConfig)}
    assert set(CONFIG_FIELDS) <= set(fields)
    bench = build_parser()._subparsers._group_actions[0].choices["bench"]
    options = {a.dest: a for a in bench._actions}
    for name in CONFIG_FIELDS:
        assert options[name].help == fields[name].metadata["help"]
    for name in set(fields) - set(CONFIG_FIELDS):  # what does not change the speed is not a bench flag
        assert name not in options
    args = bench.parse_args(["--recipe", "official-logged", "--patch-size", "1", "--windows", "2"])
    spec = BenchSpec.from_dict({k: getattr(args, k) for k in (*CONFIG_FIELDS, "warmup_windows", "windows",
                                                              "window_batches")})
    assert spec.config == RunConfig(recipe="official-logged", patch_size=1)
    assert spec.config.batch_size == 512  # the recipe's batch, as a run of it would train
    assert BenchSpec.from_dict(spec.to_dict()) == spec  # what a record and a child process carry round-trips
    with pytest.raises(ValueError, match="unknown bench field"):
        BenchSpec.from_dict({**spec.to_dict(), "epochs": 3})


@pytest.mark.parametrize("args,needle", [
    (["--kernel-size", "4"], "kernel_size must be an odd integer"),
    (["--precision", "half"], "precision must be one of ['auto', 'float32', 'mixed_float16', 'mixed_bfloat16']"),
    (["--cases", "fit,fastest"], "cases must be a comma-separated list from ['fit', 'project', 'memory', 'inference']"),
    (["--windows", "0"], "windows must be an integer >= 1"),
    (["--backend", "mxnet"], "backend must be one of ['tensorflow', 'jax', 'torch']"),
    (["--architecture", "transformer"], "architecture must be one of ['convmixer', 'resnet', 'vit', 'mlp_mixer']"),
    (["--architecture", "resnet", "--kernel-size", "5", "--hyperparameters", '{"width": 6, "blocks_per_stage": 3}'],
     "kernel_size does not apply to resnet"),
    (["--architecture", "resnet", "--hyperparameters", '{"width": 6}'], "resnet needs blocks_per_stage"),
    (["--architecture", "vit", "--hyperparameters", "[32]"], "argument --hyperparameters: expected a JSON object"),
    (["--hyperparameters", "{width"], "argument --hyperparameters: expected a JSON object"),
    (["--recipe-overrides", '{"flips": 1}'], "recipe_overrides: unknown key 'flips'"),
    (["--batch-size", "0"], "batch_size must be an integer from 1 to 50,000"),
    (["--hyperparameters", '{"dim": 8}'], "hyperparameters apply to the baselines only"),
    (["--record", "/proc/no-such-folder"], "--record: cannot create the folder /proc/no-such-folder"),
    (["--peak-gflops", "nan"], "--peak-gflops must be a finite number > 0 (the CPU's fp32 peak in GFLOP/s), got nan"),
    (["--peak-gflops=-5"], "--peak-gflops must be a finite number > 0"),
    (["--peak-gflops", "inf"], "--peak-gflops must be a finite number > 0"),
    (["--peak-gflops", "0"], "--peak-gflops must be a finite number > 0"),
])
def test_bad_values_fail_in_one_line_before_measuring(args, needle, capsys):
    from convmixer.__main__ import main

    with pytest.raises(SystemExit) as exit:  # the command line's own path, in this process
        main(["bench", *args])
    out, err = capsys.readouterr()
    assert exit.value.code == 2
    assert needle in err and len(err.strip().splitlines()) == 1
    assert out == ""  # nothing was measured


@pytest.mark.slow
def test_bench_measures_every_case_against_the_plain_fit_baseline():
    proc = subprocess.run(
        [sys.executable, "-m", "convmixer", "bench", "--width", "8", "--depth", "1", "--patch-size", "4",
         "--kernel-size", "3", "--batch-size", "16", "--window-batches", "2", "--windows", "2"],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {r["case"]: r for r in (json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{"))}
    assert list(rows) == ["fit", "project", "memory", "inference"]
    assert rows["fit"]["loop"] == "model.fit" and rows["fit"]["vs_fit"] == 1.0
    assert rows["project"]["loop"] == "compiled custom step" and rows["project"]["onednn"] is True
    assert rows["memory"]["loop"] == "compiled custom step"
    assert rows["fit"]["cpu_layers"] == []  # the baseline is built from Keras' own layers
    assert "patch and 1x1 convolutions as matmul" in rows["project"]["cpu_layers"]
    for r in rows.values():
        assert r["min_images_per_second"] <= r["images_per_second"] <= r["max_images_per_second"]
        assert r["window_images"] == 32
    assert rows["project"]["gflops_per_second"] == pytest.approx(
        rows["project"]["images_per_second"] * training_flops_per_image(8, 1, 4, 3) / 1e9)
    table = [line for line in proc.stdout.splitlines() if line.startswith("| ")]
    assert len(table) == 1 + 4  # header and one row per case


@pytest.mark.slow
def test_bench_times_a_baseline_of_claim_1_without_counting_its_arithmetic(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "convmixer", "bench", "--architecture", "vit", "--patch-size", "8",
         "--hyperparameters", '{"dim": 8, "depth": 1, "heads": 1, "mlp_ratio": 2}', "--batch-size", "16",
         "--window-batches", "2", "--windows", "1", "--cases", "project", "--record", str(tmp_path / "bench")],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("# ViT-8/1 (1 heads, MLP ratio 2, patch 8): ")
    [row] = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert row["model"] == "ViT-8/1 (1 heads, MLP ratio 2, patch 8)" and row["case"] == "project"
    assert row["loop"] == "compiled custom step" and row["images_per_second"] > 0
    assert "gflops_per_second" not in row  # a baseline's FLOPs are not counted, so no made-up fraction of peak
    [record] = (tmp_path / "bench").glob("*.json")  # --record keeps the same measurement, with its machine
    saved = json.loads(record.read_text())
    assert saved["kind"] == "bench" and saved["results"] == [row] and saved["spec"]["batch_size"] == 16
    assert saved["results"][0]["device"]["cpu_vector_extension"] and saved["measured"].endswith("Z")
    assert str(record) in proc.stdout
