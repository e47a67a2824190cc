# gradstudy -- reproducible numerical studies of vanishing/exploding gradients.
# Needs only GNU make and Python >= 3.10 (3.11 preferred); every target creates the
# virtual environment from constraints.txt on first use.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# the extras the environment is built with (CI adds bench: torch, for the PyTorch-peer tests)
EXTRAS ?= test,docs
# pytest-xdist workers: the suite is mostly XLA compilation, one core per process; two
# workers took it from 10.8 to 7.4 minutes on a 2-core CPU (TEST_WORKERS=0: one process)
TEST_WORKERS ?= 2
LATEXMK ?= latexmk
LINT_PATHS := $(wildcard gradstudy experiments tests benchmarks)

.DEFAULT_GOAL := help
.PHONY: help install figures smoke test lint bench paper check docs clean distclean

help:
	@echo "gradstudy make targets:"
	@echo "  make install    create $(VENV) and install gradstudy with pinned versions (constraints.txt)"
	@echo "  make figures    run all studies at paper scale -> figures/, results/, figures/claims.tex"
	@echo "  make smoke      run all studies at smoke scale (fast; writes figures/smoke/)"
	@echo "  make test       ruff check + pytest on TEST_WORKERS=2 processes (PYTEST_ARGS='...')"
	@echo "  make bench      install the bench extra (torch) once, then run benchmarks/bench_sweep.py and bench_train.py"
	@echo "  make paper      build paper/paper.pdf with latexmk (after make figures)"
	@echo "  make check      paper-scale run; exit 1 if any claim fails"
	@echo "  make docs       build the documentation (Sphinx + myst-nb, pages executed) -> docs/_build/html"
	@echo "  make clean      remove results/, figures/smoke/ and docs/_build/ (keeps committed figures/)"
	@echo "  make distclean  clean + remove $(VENV)"
	@echo "Variables: PYTHON=$(PYTHON) VENV=$(VENV)"

$(STAMP): pyproject.toml constraints.txt
	@test -n "$(PYTHON)" || { echo "error: python3.11 or python3 not found on PATH" >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -c constraints.txt -e ".[$(EXTRAS)]"
	touch $(STAMP)

install: $(STAMP)

figures: $(STAMP)
	$(BIN)/gradstudy reproduce --scale paper

smoke: $(STAMP)
	$(BIN)/gradstudy reproduce --scale smoke

lint: $(STAMP)
	$(BIN)/ruff check $(LINT_PATHS)

test: $(STAMP)
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

# the bench extra (torch, for the PyTorch peers) once, and again only when the pins change
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP) pyproject.toml constraints.txt
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[bench]"
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python benchmarks/bench_sweep.py
	PYTHONPATH=. $(BIN)/python benchmarks/bench_train.py

# latexmk is checked before the (long) paper-scale run, so that a missing TeX fails at once.
paper:
	@command -v $(LATEXMK) >/dev/null 2>&1 || { \
		echo "make paper: error: '$(LATEXMK)' not found; it is needed (with pdflatex and bibtex) to build paper/paper.pdf." >&2; \
		echo "  install TeX Live, e.g. 'sudo apt-get install latexmk texlive-latex-extra texlive-science' (Debian/Ubuntu)," >&2; \
		echo "  'brew install --cask mactex-no-gui' (macOS) or 'tlmgr install latexmk', then run make paper again." >&2; \
		exit 1; }
	$(MAKE) figures
	cd paper && $(LATEXMK) -pdf -interaction=nonstopmode -halt-on-error paper.tex

check: $(STAMP)
	$(BIN)/gradstudy reproduce --scale paper --check

# Every page's code cells are executed (an error fails the build) and every warning is an
# error; HTML, executed notebooks and the pages' own outputs all go under docs/_build.
SPHINXOPTS ?=
docs: $(STAMP)
	$(BIN)/sphinx-build -W --keep-going -b html $(SPHINXOPTS) docs docs/_build/html
	@echo "docs: open docs/_build/html/index.html"

clean:
	rm -rf results figures/smoke docs/_build

distclean: clean
	rm -rf $(VENV)
