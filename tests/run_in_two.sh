#!/usr/bin/env bash
# `make test`: the suite as two pytest processes side by side. Most tests wait on databases, the broker and
# child processes (one pytest keeps a core about half busy), and the machine has two cores, so two halves
# finish in a little over half the time. Each half prints its whole output when it ends; the exit status is
# the first failing half's. Any pytest arguments go to both halves (e.g. `-k village`).
set -uo pipefail
BIN="${BIN:-.venv/bin}"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
# Half A carries a PostgreSQL-parametrized folder (audit) so that each half's JZ_REQUIRE_POSTGRES check
# (tests/conftest.py: some [postgres] test must pass) has something to count.
# The chaos suite, the broker-epoch tests (about 140 s together) and the DCI API (about 5 minutes with its
# fuzz) go with A to keep the halves even.
# The benchmark smokes and the OpenAPI example replay (about 6 minutes together) go with A as well: on the
# last local run half B took 26 minutes to A's 17.
HALF_A=(tests/unit tests/e2e tests/integration/test_openapi_fuzz.py tests/integration/test_openapi_fuzz_postgres.py
        tests/integration/audit
        tests/integration/test_chaos.py tests/integration/test_broker_epochs.py tests/integration/registry/dci
        tests/integration/test_bench_smoke_http.py tests/integration/test_bench_smoke_verify.py
        tests/integration/test_openapi_docs.py)
HALF_B=(tests/integration --ignore=tests/integration/test_openapi_fuzz.py
        --ignore=tests/integration/test_openapi_fuzz_postgres.py --ignore=tests/integration/audit
        --ignore=tests/integration/test_chaos.py --ignore=tests/integration/test_broker_epochs.py
        --ignore=tests/integration/registry/dci --ignore=tests/integration/test_bench_smoke_http.py
        --ignore=tests/integration/test_bench_smoke_verify.py --ignore=tests/integration/test_openapi_docs.py)
"$BIN/pytest" -q -rs --durations=15 -p no:cacheprovider "${HALF_A[@]}" "$@" >"$out/a" 2>&1 &
a=$!
"$BIN/pytest" -q -rs --durations=15 -p no:cacheprovider "${HALF_B[@]}" "$@" >"$out/b" 2>&1 &
b=$!
wait "$a"; status_a=$?
wait "$b"; status_b=$?
echo "== half A: ${HALF_A[*]} (exit $status_a)"; cat "$out/a"
echo "== half B: ${HALF_B[*]} (exit $status_b)"; cat "$out/b"
[ "$status_a" -ne 0 ] && exit "$status_a"
exit "$status_b"
