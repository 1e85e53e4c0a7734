import os
import subprocess
import sys

import pytest

from convmixer.training.speed import choose_settings


def test_cpu_gets_float32_without_xla():
    s = choose_settings("CPU")
    assert (s["precision"], s["jit_compile"]) == ("float32", False)


@pytest.mark.parametrize("kind,capability,precision", [
    ("GPU", 9.0, "mixed_bfloat16"),  # H100/H200: bfloat16, no loss scaling needed
    ("GPU", 8.0, "mixed_bfloat16"),  # A100
    ("GPU", 7.5, "mixed_float16"),   # T4: no fast bfloat16
    ("GPU", None, "mixed_float16"),  # unknown: float16 works on every CUDA GPU Keras supports
    ("TPU", None, "mixed_bfloat16"),
])
def test_accelerators_get_mixed_precision_and_xla(kind, capability, precision):
    s = choose_settings(kind, gpu_compute_capability=capability)
    assert (s["precision"], s["jit_compile"]) == (precision, True)


def test_parameters_override_the_choice_and_are_recorded():
    s = choose_settings("GPU", precision="float32", jit_compile="off", gpu_compute_capability=9.0)
    assert (s["precision"], s["jit_compile"]) == ("float32", False)
    assert s["requested"] == {"precision": "float32", "jit_compile": "off"}
    assert choose_settings("CPU", jit_compile="on")["jit_compile"] is True


def test_jax_always_compiles_unless_told_not_to():
    # Keras runs JAX op by op without jit_compile: slower still than XLA on this CPU.
    assert choose_settings("CPU", backend="jax")["jit_compile"] is True
    assert choose_settings("CPU", backend="jax", jit_compile="off")["jit_compile"] is False


def test_bad_values_name_the_parameter_and_the_choices():
    with pytest.raises(ValueError, match=r"precision must be one of \['auto', 'float32'"):
        choose_settings("CPU", precision="half")
    with pytest.raises(ValueError, match=r"jit_compile must be one of \['auto', 'on', 'off'\]"):
        choose_settings("CPU", jit_compile=True)


REPORT_ONEDNN = "\nfrom convmixer.training.speed import onednn_enabled\nprint(onednn_enabled())"


def _last_line_in_fresh_process(env_value, code):
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if env_value is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = env_value
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()[-1]


PREFER_ONEDNN = "from convmixer.training.speed import prefer_onednn; prefer_onednn()\n"


def test_importing_convmixer_changes_no_global_setting():
    code = "import os; before = dict(os.environ); import convmixer; print(dict(os.environ) == before)"
    assert _last_line_in_fresh_process(None, code) == "True"


@pytest.mark.slow
def test_prefer_onednn_before_tensorflow_turns_onednn_on():
    assert _last_line_in_fresh_process(None, PREFER_ONEDNN + "import tensorflow" + REPORT_ONEDNN) == "True"


@pytest.mark.slow
def test_a_users_choice_and_an_earlier_tensorflow_import_are_respected():
    assert _last_line_in_fresh_process("0", PREFER_ONEDNN + "import tensorflow" + REPORT_ONEDNN) == "False"
    # TensorFlow imported first: too late to matter, so the variable is left alone.
    code = "import tensorflow\n" + PREFER_ONEDNN + "import os; print(os.environ.get('TF_ENABLE_ONEDNN_OPTS'))"
    assert _last_line_in_fresh_process(None, code) == "None"
    assert _last_line_in_fresh_process(None, PREFER_ONEDNN + REPORT_ONEDNN) == "None"  # TensorFlow not in use


def test_the_cli_turns_onednn_on_for_what_it_starts():
    """The sweep's notebook kernels and the bench's children inherit the variable from the CLI's process."""
    code = ("import os, sys\nfrom convmixer.__main__ import main\ntry:\n    main(['--help'])\n"
            "except SystemExit:\n    pass\nprint(os.environ.get('TF_ENABLE_ONEDNN_OPTS'))")
    assert _last_line_in_fresh_process(None, code) == "1"
