# The two commands a newcomer needs are `make serve` and `make test`; the rest are the stages
# of building the model, in order. Everything runs from the project's own virtualenv.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SHARED ?= ../shared

.PHONY: serve test lint dataset train evaluate export bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Serving needs no torch: the base install is onnxruntime, OpenCV, FastAPI and the database drivers,
# and the `fast` extra (OpenVINO), which the service runs on where the CPU has BF16 (model/networks.py).
$(VENV)/.serve: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e ".[fast]"
	touch $@

$(VENV)/.dev: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e ".[train,dev,scale,fast]"
	touch $@ $(VENV)/.serve

serve: $(VENV)/.serve
	$(BIN)/envwatch serve

test: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	YOLO_OFFLINE=1 $(BIN)/python -m pytest

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

dataset: $(VENV)/.dev
	$(BIN)/envwatch dataset build --shared $(SHARED)/datasets --card datasets/CARD.md

train: $(VENV)/.dev
	$(BIN)/envwatch train --cache

evaluate: $(VENV)/.dev
	$(BIN)/envwatch evaluate --split test --out build/metrics-test.json

bench: $(VENV)/.dev
	$(BIN)/python benchmarks/runtime_bench.py

clean:
	rm -rf build .pytest_cache .ruff_cache
