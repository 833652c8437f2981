# The two commands of the README: `make book` and `make test`. Each sets up what is
# missing (a .venv with the library and its tools, the offline Fashion-MNIST), then runs.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
# The torch build tried first; on this project's machines pip finds it on local disk.
# The project's metadata keeps ranges (torch>=2.4), so Colab's torch is left alone.
TORCH_PIN ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.xdx-installed
SYSTEM_FMNIST := /usr/share/datasets/fashion-mnist
PROFILE ?= book
# The chapters start from the teacher the repository ships (pretrained/), when it is the
# profile's; TEACHER=train trains it here instead (15 epochs: 11 to 40 min on two cores).
TEACHER ?= shipped
BOOK_FLAGS := -W -n --keep-going --all
# _config.yml stops a cell after 3600 s, a guard for the CPU profiles. On the GPU profiles
# a chapter's experiment cell takes as long as its experiment does: the build reads a copy
# of _config.yml without the limit, written to _build/ (tools/book_config.py).
NO_CELL_LIMIT := colab paper
BOOK_CONFIG := $(if $(filter $(PROFILE),$(NO_CELL_LIMIT)),_build/_config.$(PROFILE).yml)

.PHONY: help setup data book test unit reader notebooks book-smoke lint clean reproduce \
	reproduce-usage gpu-check teacher-check

help:
	@echo "make book   set up, execute the notebooks (profile $(PROFILE)), build _build/html;"
	@echo "            TEACHER=train trains the teacher instead of installing pretrained/'s"
	@echo "make test   set up, lint, unit tests, the wheel and Colab in fresh environments,"
	@echo "            notebooks under nbval (smoke), strict book build"

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -c "import torch, torchvision" 2>/dev/null || $(PY) -m pip install -q $(TORCH_PIN) \
	  || $(PY) -m pip install -q "torch>=2.4" "torchvision>=0.19"
	$(PY) -m pip install -q -e ".[book,test]"
	@touch $(STAMP)

# Fashion-MNIST offline: Debian's dataset-fashion-mnist, installed when we may (root).
data: $(STAMP)
	@if [ ! -f data/FashionMNIST/raw/train-images-idx3-ubyte ] && [ ! -d $(SYSTEM_FMNIST) ] \
	    && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 \
	  || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1; } \
	  || echo "note: could not install dataset-fashion-mnist with apt-get"; \
	fi
	@$(PY) -m xdx_lib data --dataset fashion_mnist

lint: $(STAMP)
	$(BIN)/ruff check .

unit: $(STAMP) data
	$(PY) -m pytest -q -m "not reader" tests

# The paths a reader takes, each in a fresh virtual environment (tests/test_reader.py):
# the wheel with its base dependencies, and every chapter on a simulated Colab. After
# `notebooks` it is faster: the chapters find the models trained there in runs/.
reader: $(STAMP) data
	$(PY) -m pytest -q -m reader tests

notebooks: $(STAMP) data
	XDX_PROFILE=smoke $(PY) -m pytest -q --nbval-lax book/

# The chapters as plain Jupyter (Colab) shows them: each MyST role replaced by what the book
# shows (tools/colab_copies.py), then checked for anything left raw. make test also fails on
# a sentence the readings wrote that runs past 35 words.
COLAB_COPIES = $(PY) tools/colab_copies.py _build/jupyter_execute/book _build/colab \
	  --note "Built on the $(1) profile." $(2) >/dev/null && $(PY) tools/colab_copies.py --check _build/colab \
	  && $(PY) tools/colab_copies.py --check-html _build/html/book

book-smoke: $(STAMP) data
	XDX_PROFILE=smoke $(BIN)/jupyter-book build $(BOOK_FLAGS) .
	$(call COLAB_COPIES,smoke,--max-words 35)

test: lint unit notebooks reader book-smoke

teacher-check:
	@case "$(TEACHER)" in shipped|train) ;; *) echo "error: TEACHER=$(TEACHER): use" \
	  "TEACHER=shipped (the default: pretrained/'s teacher) or TEACHER=train" >&2; exit 2;; esac

book: teacher-check $(STAMP) data
	$(PY) -m xdx_lib runs teacher --profile $(PROFILE) $(if $(filter train,$(TEACHER)),--train)
	$(if $(BOOK_CONFIG),$(PY) tools/book_config.py $(BOOK_CONFIG))
	XDX_PROFILE=$(PROFILE) $(BIN)/jupyter-book build $(BOOK_FLAGS) \
	  $(if $(BOOK_CONFIG),--config $(BOOK_CONFIG)) .
	$(call COLAB_COPIES,$(PROFILE))
	@echo "book: _build/html/index.html; Colab copies of the chapters: _build/colab/"

# Run the experiment notebook through papermill with one config; the executed notebook and
# the results land in runs/<name>/. A failed run leaves runs/<name>/results.failed.ipynb.
# PARAMS: more papermill parameters (-p NAME VALUE), checked against each notebook's declared
# names and types (papermill --help-notebook) before anything runs.
EXPERIMENT_NOTEBOOKS ?= results
PARAMS ?=
reproduce-usage:
	@test -n "$(CONFIG)" || { echo "error: no CONFIG given; usage: make reproduce CONFIG=configs/<name>.yaml" >&2; exit 2; }
	@test -f "$(CONFIG)" || { echo "error: $(CONFIG) does not exist; see configs/" >&2; exit 2; }

reproduce: reproduce-usage $(STAMP) data
	@$(PY) -m xdx_lib experiment "$(CONFIG)" --check
	@for nb in $(EXPERIMENT_NOTEBOOKS); do \
	  $(PY) -m xdx_lib check-params "book/$$nb.ipynb" -p config "$(abspath $(CONFIG))" $(PARAMS) \
	    >/dev/null || exit 2; \
	done
	@name=$$(basename "$(CONFIG)" .yaml); out=$${XDX_RUNS:-runs}/$$name; mkdir -p "$$out"; \
	for nb in $(EXPERIMENT_NOTEBOOKS); do \
	  part="$$out/.$$nb.partial.ipynb"; \
	  if $(BIN)/papermill "book/$$nb.ipynb" "$$part" --cwd book -p config "$(abspath $(CONFIG))" \
	      $(PARAMS) --log-level WARNING; then mv "$$part" "$$out/$$nb.ipynb"; echo "reproduce: $$out/$$nb.ipynb"; \
	  else mv "$$part" "$$out/$$nb.failed.ipynb" 2>/dev/null; \
	    echo "error: book/$$nb.ipynb failed with $(CONFIG); see $$out/$$nb.failed.ipynb"; exit 1; fi; \
	done; echo "results: $${XDX_RUNS:-runs}/$$name/results/"

# The GPU check (a few minutes on one GPU): writes results/gpu/<gpu>-<commit>.json.
gpu-check: $(STAMP)
	$(PY) benchmarks/gpu_check.py

clean:
	rm -rf _build
