# Two commands for a fresh machine: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LOCK := requirements.lock
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml $(LOCK) | cksum | cut -d' ' -f1)

# Some machines set PYTHONDONTWRITEBYTECODE: then every process compiles Cadenza's 230
# modules again (about 0.7 s each start), and the suite starts hundreds of processes
# (`cadenza serve`, workers, the CLI). Bytecode goes to the ignored __pycache__ folders.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: run test typecheck install lock lint format migration screenshots mutation breaks clean

# Exactly the versions in requirements.lock (what the tests passed with), then Cadenza
# itself without resolving anything again.
$(STAMP): pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

# Re-resolve pyproject.toml's ranges in a fresh venv and pin the result (after adding or
# raising a dependency; commit requirements.lock once `make test` passes with it).
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade pip
	.lock-venv/bin/python -m pip install --quiet -e '.[dev]'
	echo "# Pinned by 'make lock' from pyproject.toml; installed by 'make install'." > $(LOCK)
	.lock-venv/bin/python -m pip freeze --exclude-editable | grep -v '^-e ' >> $(LOCK)
	rm -rf .lock-venv

run: install
	$(BIN)/cadenza db upgrade
	$(BIN)/cadenza demo --if-empty
	@echo "Demo login: rep@example.com / cadenza-demo. API token: printed above when the demo"
	@echo "was loaded, or make one: $(BIN)/cadenza token create --as rep@example.com"
	$(BIN)/cadenza serve

# Tests run in parallel, one process per CPU (TEST_WORKERS=4 or 0 to override); tests that
# must not overlap share an xdist_group and so one worker (docs/testing.md).
TEST_WORKERS ?= auto

test: install
	scripts/install-test-packages
	$(BIN)/ruff check src tests bench
	$(MAKE) --no-print-directory typecheck
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup

# The layer contracts (import-linter) and the static types (mypy), both configured in
# pyproject.toml (docs/architecture/enforce.md); part of `make test`.
typecheck: install
	$(BIN)/lint-imports --no-cache --no-logo
	$(BIN)/mypy

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

format: install
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

# Refresh the README's pictures from the web app's browser tests.
screenshots: install
	CADENZA_SCREENSHOTS=$(CURDIR)/docs/screenshots $(BIN)/python -m pytest tests/ui -q -k "not http"

# Mutation testing of the guarantee-carrying modules (slow; not part of `make test`).
# One module: make mutation MODULE=cadenza.domain.throttle (docs/testing.md).
mutation: install
	$(BIN)/python scripts/mutation.py $(MODULE)

# Issue 19 §2's breaks, each put back in a copy and caught by its tests; one: BREAK=<id>.
breaks: install
	$(BIN)/python scripts/known_breaks.py $(BREAK)

# Developer use: autogenerate a migration after changing store/models.py.
migration: install
	rm -f /tmp/cadenza-migration.db
	CADENZA_DATABASE_URL=sqlite:////tmp/cadenza-migration.db $(BIN)/cadenza db upgrade
	$(BIN)/python -c "from cadenza.store import migrate; from cadenza.store.db import Database; \
	  migrate.revision(Database('sqlite:////tmp/cadenza-migration.db'), '$(MSG)')"

clean:
	rm -rf $(VENV) .lock-venv .mutation .breaks .pytest_cache .ruff_cache .mypy_cache .hypothesis build cadenza.db cadenza.db-*
