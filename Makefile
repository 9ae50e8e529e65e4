# Two entry points: `make demo` and `make test`. Both create .venv and install into it.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install --quiet --disable-pip-version-check
# torch is pinned to the local CPU wheel: installing it first keeps pip from pulling a CUDA build.
TORCH  := torch==2.13.0

.PHONY: demo test install install-dev bench clean

$(VENV)/.core: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) $(TORCH)
	$(PIP) -e .
	touch $@

$(VENV)/.dev: $(VENV)/.core
	$(PIP) -e '.[dev]'
	touch $@

install: $(VENV)/.core
install-dev: $(VENV)/.dev

demo: $(VENV)/.core
	rm -rf runs/demo
	$(VENV)/bin/textsift train examples/trec/config.yaml --output runs/demo

test: $(VENV)/.dev
	$(PY) -m pytest -q

bench: $(VENV)/.dev
	$(PY) benchmarks/bag_vs_peers.py

clean:
	rm -rf $(VENV) runs .pytest_cache
