# softdistill: the documented entry points. Each target creates/reuses .venv by itself.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# the datasets' folder (softdistill datasets --help); default: $SOFTDISTILL_DATA
DATA   ?= $(SOFTDISTILL_DATA)
NEED_DATA = @test -n "$(DATA)" || (echo "set DATA=FOLDER (the datasets' folder) or SOFTDISTILL_DATA"; exit 2)
DEST   ?= .devdata

.PHONY: report-shot help venv demo test test-slow lint format check bench bench-scale gpu-bench protocol-table gpu-text reproduce-text text-devdata reproduce gpu-reproduce datasets gpu-pools clean

help:
	@echo "make demo       distill the embedded digits dataset into runs/demo (< 3 min on 2 cores)"
	@echo "make test       run the test suite (fast tests; slow ones: make test-slow)"
	@echo "make check      lint + tests"
	@echo "make bench      hypergradient time/memory, nets loop vs vmap, memory vs T -> benchmarks/results/"
	@echo "                (about 1.5 h single-threaded; BENCH_FLAGS=--quick for a smoke run)"
	@echo "make gpu-bench OUT=DIR   one GPU script (< 3 min on an H100): speed and memory tables -> DIR"
	@echo "make datasets   list known datasets and which DATA=$(DATA) holds"
	@echo "make reproduce  run paper presets (PRESETS='glob ...') -> benchmarks/results/reproduce.md (long)"
	@echo "make gpu-reproduce OUT=DIR   CIFAR-10 AlexCifarNet preset on a GPU, ~3 min -> DIR"
	@echo "make protocol-table  baselines + from-scratch cross-arch table (meant for a GPU)"
	@echo "make reproduce-text  text rows (TREC-6, SST-5, IMDB) -> benchmarks/results/text.md (hours on CPU)"
	@echo "make gpu-text OUT=DIR  all text rows on one CUDA GPU in parallel (~3 min on an H100) -> DIR"
	@echo "make gpu-pools OUT=DIR   MNIST LeNet pools (original recipe) + adapt/attack runs on a GPU"
	@echo "make report-shot RUN=DIR  a 1280 px screenshot of DIR/report/index.html (needs chromium)"

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
	$(BIN)/python benchmarks/hypergrad_bench.py $(BENCH_FLAGS)
	$(MAKE) bench-scale

# Speed and memory at scale (README "Speed and memory at scale"): loop vs vmap over nets,
# peak memory vs T per hypergradient mode, and a torch.profiler table of one outer step.
# On a shared machine run with OMP_NUM_THREADS=1 (one thread per process): the tables say how
# many threads were used.
BENCH_FLAGS ?=
bench-scale: $(STAMP)
	$(BIN)/python benchmarks/nets_bench.py $(BENCH_FLAGS)
	$(BIN)/python benchmarks/memory_bench.py $(BENCH_FLAGS)
	$(BIN)/python benchmarks/profile_step.py

# One self-contained GPU run: needs only a python with a CUDA build of torch (the package is
# imported from src/ via PYTHONPATH, nothing is installed). Writes $(OUT)/gpu_bench.md and .json.
GPU_PYTHON ?= python3
OUT ?= benchmarks/results/gpu
gpu-bench:
	PYTHONPATH=src $(GPU_PYTHON) benchmarks/gpu_bench.py $(OUT)

datasets: $(STAMP)
	$(NEED_DATA)
	$(BIN)/softdistill datasets --data-dir $(DATA)

# The papers' image rows from configs/<setting>.yaml; long (see the table's times). Examples:
#   make reproduce PRESETS='mnist_lenet_fixed_5 mnist_lenet_fixed_10_hard'
#   make reproduce PRESETS='mnist_*' REPRODUCE_ARGS=--reuse   (re-tabulate finished runs)
PRESETS ?= mnist_lenet_fixed_10 mnist_lenet_fixed_10_hard mnist_lenet_fixed_5
reproduce: $(STAMP)
	$(NEED_DATA)
	$(BIN)/python benchmarks/reproduce.py $(PRESETS) --data-dir $(DATA) $(REPRODUCE_ARGS)

# CIFAR-10 AlexCifarNet fixed init, 100 soft-label images, cut to ~110 s of distillation on a GPU.
gpu-reproduce: $(STAMP)
	$(NEED_DATA)
	@test -n "$(OUT)" || (echo "usage: make gpu-reproduce OUT=DIR"; exit 2)
	$(BIN)/python benchmarks/gpu_reproduce.py $(OUT) --data-dir $(DATA) $(GPU_ARGS)

# Baselines + from-scratch cross-architecture table for one setting (MNIST LeNet, 10 images by
# default; meant for a GPU, not yet timed there). PROTOCOL_OUT=folder, ARGS=extra flags of
# benchmarks/protocol_table.py (e.g. ARGS="--device cpu --outer-steps 300").
PROTOCOL_OUT ?= benchmarks/results/protocol
protocol-table: $(STAMP)
	$(NEED_DATA)
	$(BIN)/python benchmarks/protocol_table.py $(PROTOCOL_OUT) --data-dir $(DATA) \
	  --config configs/mnist_lenet_fixed_10.yaml --outer-steps 3000 --decay-every 1000 $(ARGS)

reproduce-text: $(STAMP)
	$(NEED_DATA)
	$(BIN)/python benchmarks/reproduce_text.py --data-dir $(DATA) --runs runs/text

# All text rows on one CUDA GPU, in parallel, ~3 minutes (per-row time budget; see the script).
# Writes DIR/runs/<row>/, DIR/logs/ and the table DIR/text_gpu.md.
gpu-text: $(STAMP)
	$(NEED_DATA)
	@test -n "$(OUT)" || (echo "usage: make gpu-text OUT=DIR" && exit 2)
	PY=$(BIN)/python bash benchmarks/gpu_text.sh $(OUT) $(DATA)

# The text data of the GPU rows, compact enough to copy to a GPU machine (IMDB gzipped).
text-devdata:
	$(NEED_DATA)
	mkdir -p $(DEST)/text/trec6 $(DEST)/text/sst5 $(DEST)/text/imdb $(DEST)/embeddings
	cp $(DATA)/text/trec6/train.tsv $(DATA)/text/trec6/test.tsv $(DEST)/text/trec6/
	cp $(DATA)/text/sst5/train.tsv $(DATA)/text/sst5/test.tsv $(DEST)/text/sst5/
	gzip -c $(DATA)/text/imdb/train.tsv > $(DEST)/text/imdb/train.tsv.gz
	gzip -c $(DATA)/text/imdb/test.tsv > $(DEST)/text/imdb/test.tsv.gz
	cp $(DATA)/embeddings/glove.6B.100d.top2716.txt $(DEST)/embeddings/
	du -sh $(DEST)

# Pools of pretrained LeNets with the original recipe, then benchmarks/pretrained.py; < 3 min on
# an H100 is the aim (see benchmarks/gpu_pools.sh). POOLS_ONLY=1 skips the experiments.
gpu-pools: $(STAMP)
	$(NEED_DATA)
	test -n "$(OUT)" || (echo "usage: make gpu-pools OUT=DIR [DATA=...]" && false)
	PYTHON=$(BIN)/python benchmarks/gpu_pools.sh $(OUT) $(DATA)

# A screenshot of a run's report at 1280 px (the layout check; needs chromium):
#   make report-shot RUN=runs/demo   -> runs/demo/report/screenshot.png
report-shot: $(STAMP)
	@test -n "$(RUN)" || (echo "usage: make report-shot RUN=RUN_DIR" && exit 2)
	$(BIN)/softdistill report $(RUN)
	chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1280,2200 \
	  --screenshot=$(RUN)/report/screenshot.png file://$(abspath $(RUN))/report/index.html

clean:
	rm -rf runs .pytest_cache .ruff_cache build dist src/*.egg-info
