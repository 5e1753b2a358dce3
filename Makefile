# The two commands of the README: `make test` and `make rehearse`. Both set everything up.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: test test-fast lint reformat rehearse bench lock clean-venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

reformat: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# One test module at a time to each worker (--dist loadfile: a module's fixtures are made once),
# the modules with slow tests first (tests/conftest.py orders them; --no-loadscope-reorder keeps
# that order): both workers stay busy to the end instead of one finishing a long queue alone.
DIST := -n 2 --dist loadfile --no-loadscope-reorder

test: lint
	$(BIN)/pytest $(DIST) $(PYTEST_ARGS)

# The quick loop: everything but the tests marked slow (real builds, rehearsals, act runs).
test-fast: lint
	$(BIN)/pytest $(DIST) -m "not slow" $(PYTEST_ARGS)

rehearse: $(STAMP)
	$(BIN)/upm-ci rehearse examples/upm-sample --out rehearsal

bench: $(STAMP)
	$(BIN)/python -m benchmarks

# The composite actions install upm-ci's dependencies from this hash-pinned, universal lock:
# the light install and the pipeline and image extras (every phase).
lock: $(STAMP)
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --extra pipeline --extra image --generate-hashes \
		--universal --python-version 3.10 --no-header -o actions/setup/requirements.txt
	printf 'uv==%s\n' "$$($(BIN)/uv --version | cut -d' ' -f2)" | $(BIN)/uv pip compile - \
		--generate-hashes --universal --no-header -o actions/setup/uv.txt

clean-venv:
	rm -rf $(VENV)
