# Two commands do everything on a fresh Linux machine with Python >= 3.10:
#   make all    sweep the grid's missing runs, then build report/index.html
#   make test   run the test suite
# Both create the virtual environment .venv on first use.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The grids this machine can afford (see README); e.g. make all GRID=grids/kernel-patch.yaml on a GPU.
# cpu-one-cycle (claims 2 and 3 at the end of a one-cycle schedule) and cpu-architectures (claim 1) lead; the others
# add a like-for-like row and the 4-epoch early-training grids; cpu-paper-scale (ConvMixer-256/8 against
# the published logs, tens of CPU-hours) and cpu-gap-diagnostics (one known difference from the official
# script at a time) come last (each grid is described in its own header).
GRID ?= grids/cpu-one-cycle.yaml grids/cpu-architectures.yaml grids/cpu-reference-row.yaml \
        grids/cpu-full.yaml grids/cpu-trends.yaml grids/cpu-paper-scale.yaml grids/cpu-gap-diagnostics.yaml
JOBS ?= 1

.PHONY: all sweep report test test-fast notebooks browser clean-venv

all: $(VENV)/.installed
	@# Build the report even when some runs failed (it lists them), then report the sweeps' status.
	status=0; for grid in $(GRID); do $(PY) -m convmixer sweep $$grid --jobs $(JOBS) || status=1; done; \
	$(PY) -m convmixer report && exit $$status

sweep: $(VENV)/.installed
	for grid in $(GRID); do $(PY) -m convmixer sweep $$grid --jobs $(JOBS) || exit 1; done

report: $(VENV)/.installed
	$(PY) -m convmixer report

test: $(VENV)/.installed browser
	$(PY) -m pytest -q -rs --durations=20

# The edit-test loop: every test not marked slow (no training, no notebook execution).
test-fast: $(VENV)/.installed
	$(PY) -m pytest -q -m "not slow" -n auto

# Write notebooks/*.ipynb from their jupytext sources notebooks/*.py.
notebooks: $(VENV)/.installed
	$(PY) tools/sync_notebooks.py

# constraints.txt: the exact versions the committed results were produced with (tools/constraints.py).
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[tensorflow,test]'
	touch $@

# The report test opens the HTML in a real headless browser (Debian's chromium).
# Installed when we may (root with apt); otherwise that one test is skipped.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
	  || echo "chromium not installed: the browser test will be skipped"; }

clean-venv:
	rm -rf $(VENV)
