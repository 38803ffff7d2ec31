# Two commands on a fresh machine: `make run` (whole system, demo data, docs URLs) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install run test test-postgres bench clean

# deploy/dev-install.sh prints each step and each package as it goes (a first install takes minutes).
$(STAMP): pyproject.toml deploy/dev-install.sh
	@PYTHON=$(PYTHON) VENV=$(VENV) bash deploy/dev-install.sh
	@touch $(STAMP)

install: $(STAMP)

run: install
	@echo "== migrating the three databases (var/*.db)"
	@$(BIN)/jingzhun migrate
	@test -f var/.demo-loaded || (echo "== loading the demo district (first run only)" && \
	  $(BIN)/jingzhun demo-data && touch var/.demo-loaded)
	@sh deploy/oidc-dev/install.sh
	@echo "== starting broker, relay, registry, benefits, audit and the sign-in provider"
	@$(BIN)/jingzhun run

test: install
	@echo "== running the test suite as two pytest processes (each prints its output when it ends; about 15 minutes)"
	@BIN=$(BIN) bash tests/run_in_two.sh

# The suite again with the PostgreSQL half switched on (needs a local server, trust auth).
test-postgres: install
	JZ_TEST_POSTGRES_URL=$${JZ_TEST_POSTGRES_URL:-postgresql+asyncpg://postgres@127.0.0.1:5432/postgres} \
	JZ_REQUIRE_POSTGRES=1 $(BIN)/pytest -q -rs

# Every throughput benchmark (issue 15) and one table against same-run baselines and targets; PostgreSQL and wrk
# (apt-get install -y wrk). About an hour and a half on two cores (the 1M policy change alone 40+ minutes); `$(BIN)/python -m bench.all --quick` runs each one small.
bench: install
	$(BIN)/python -m bench.all $(BENCH_ARGS)

clean:
	rm -rf var .pytest_cache test-artifacts
