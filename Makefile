# Two commands on a fresh machine: `make run` (whole system, demo data, docs URLs) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install run test test-postgres bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/jingzhun migrate
	@test -f var/.demo-loaded || ($(BIN)/jingzhun demo-data && touch var/.demo-loaded)
	$(BIN)/jingzhun run

test: install
	BIN=$(BIN) bash tests/run_in_two.sh

# The suite again with the PostgreSQL half switched on (needs a local server, trust auth).
test-postgres: install
	JZ_TEST_POSTGRES_URL=$${JZ_TEST_POSTGRES_URL:-postgresql+asyncpg://postgres@127.0.0.1:5432/postgres} \
	JZ_REQUIRE_POSTGRES=1 $(BIN)/pytest -q -rs

bench: install
	$(BIN)/python -m bench.bench_engine

clean:
	rm -rf var .pytest_cache test-artifacts
