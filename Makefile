# Verbs for a fresh machine with only Python 3: each one sets up what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORPUS ?= data/corpus

.PHONY: setup demo test lint bench docs clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# The CPU build of torch first (constraints.txt pins it), then the package.
	$(BIN)/python -m pip install --quiet -c constraints.txt torch
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev,docs]"
	touch $(STAMP)

setup: $(STAMP)

# Corpus, the demo recipe's pretraining on the CPU and an evaluation report: about a
# quarter of an hour.
demo: setup
	$(BIN)/musicssl demo --corpus $(CORPUS)

test: setup lint
	$(BIN)/pytest

lint: setup
	$(BIN)/ruff format --check src tests bench
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

bench: setup
	$(BIN)/python bench/bench_store.py

# The tutorial book, its chapters executed (cached in docs/_build/.jupyter_cache), to
# docs/_build/html/index.html. MUSICSSL_BOOK_SCALE=tiny runs the chapters at test size.
MUSICSSL_BOOK_SCALE ?= full
docs: setup
	MUSICSSL_BOOK_SCALE=$(MUSICSSL_BOOK_SCALE) $(BIN)/sphinx-build -W --keep-going -b html -d docs/_build/doctrees docs docs/_build/html

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
