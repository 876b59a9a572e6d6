# make demo   set everything up, then run magicmask on its built-in sample video
# make test   set everything up, then run the test suite (tox)
# make bench  set everything up, then run the benchmarks in bench/
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: setup system demo test bench golden clean

setup: system $(VENV)/.installed

system:
	@scripts/install-system.sh

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,dask,bench,plot]' tox
	touch $@

demo: setup
	$(BIN)/magicmask demo -o demo

test: setup
	$(BIN)/tox

bench: setup
	cd bench && ../$(BIN)/python bench_seed_vs_run.py --keyframes 20 --engine native --engine wand
	cd bench && ../$(BIN)/python bench_seed_vs_run.py --keyframes 80 --engine native --engine wand
	cd bench && ../$(BIN)/python bench_seed_vs_run.py --clip wall --keyframes 80 --engine native --sheet
	cd bench && ../$(BIN)/python bench_seed_vs_run.py --clip wall --keyframes 20 --engine native --sheet
	cd bench && ../$(BIN)/python bench_native_stages.py
	cd bench && ../$(BIN)/python bench_memory.py
	cd bench && ../$(BIN)/python bench_cluster.py

golden: setup
	PYTHON=$(abspath $(BIN)/python) golden/regenerate.sh

clean:
	rm -rf $(VENV) .tox demo bench/out
