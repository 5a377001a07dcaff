# softdistill: the documented entry points. Each target creates/reuses .venv by itself.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DATA   ?= ../shared/data

.PHONY: help venv demo test test-slow lint format check bench protocol-table gpu-check gpu-pools clean

help:
	@echo "make demo       distill the embedded digits dataset into runs/demo (< 3 min on 2 cores)"
	@echo "make test       run the test suite (fast tests; slow ones: make test-slow)"
	@echo "make check      lint + tests"
	@echo "make bench      hypergradient time/memory table -> benchmarks/results/"
	@echo "make protocol-table  baselines + from-scratch cross-arch table (meant for a GPU)"
	@echo "make gpu-pools OUT=DIR   MNIST LeNet pools (original recipe) + adapt/attack runs on a GPU"

# A virtual environment with torch (the CPU wheel pinned below when torch is missing) and the
# package in editable mode. Re-run when pyproject.toml changes.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/softdistill distill --config configs/demo_digits.yaml --out runs/demo --overwrite
	$(BIN)/softdistill report runs/demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

check: lint test

bench: $(STAMP)
	$(BIN)/python benchmarks/hypergrad_bench.py

# Baselines + from-scratch cross-architecture table for one setting (MNIST LeNet, 10 images by
# default; meant for a GPU, not yet timed there). PROTOCOL_OUT=folder, ARGS=extra flags of
# benchmarks/protocol_table.py (e.g. ARGS="--device cpu --outer-steps 300").
PROTOCOL_OUT ?= benchmarks/results/protocol
protocol-table: $(STAMP)
	$(BIN)/python benchmarks/protocol_table.py $(PROTOCOL_OUT) --data-dir $(DATA) \
	  --config configs/mnist_lenet_fixed_10.yaml --outer-steps 3000 --decay-every 1000 $(ARGS)

# Pools of pretrained LeNets with the original recipe, then benchmarks/pretrained.py; < 3 min on
# an H100 is the aim (see benchmarks/gpu_pools.sh). POOLS_ONLY=1 skips the experiments.
gpu-pools: $(STAMP)
	test -n "$(OUT)" || (echo "usage: make gpu-pools OUT=DIR [DATA=...]" && false)
	PYTHON=$(BIN)/python benchmarks/gpu_pools.sh $(OUT) $(DATA)

clean:
	rm -rf runs .pytest_cache .ruff_cache build dist src/*.egg-info
