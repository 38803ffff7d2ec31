#!/usr/bin/env bash
# `make install` (and so the first `make run` / `make test`): the virtual environment and the project's packages,
# saying what it is doing as it goes. A first install takes one to three minutes; a silent terminal for that long
# looks like a hang, so every package pip collects and every step is printed with the time it took.
set -uo pipefail
PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
started=$(date +%s)
elapsed() { echo "$(( $(date +%s) - started )) s"; }

echo "== [1/3] Python virtual environment in $VENV"
if [ -x "$VENV/bin/python" ]; then
  echo "   already there ($("$VENV/bin/python" --version 2>&1))"
else
  "$PYTHON" -m venv "$VENV" || { echo "could not create $VENV with $PYTHON (is python3-venv installed?)" >&2; exit 1; }
  echo "   created with $("$VENV/bin/python" --version 2>&1)"
fi

echo "== [2/3] the project and its packages (pip; a first install takes 1-3 minutes)"
log="$VENV/pip-install.log"
# pip's own progress bar is off when its output is not a terminal, so its log lines are the progress: one line
# per package collected, then what was installed. Everything else goes to the log, printed in full on failure.
"$VENV/bin/pip" install --disable-pip-version-check -e '.[dev]' 2>&1 | tee "$log" | awk '
  /^Collecting / { n++; printf "   [%3d] %s\n", n, $2; fflush(); next }
  /^Installing collected packages/ { print "   installing…"; fflush(); next }
  /^Successfully installed/ { m = split($0, a, " ") - 2; print "   installed " m " packages"; fflush(); next }
  /^Requirement already satisfied/ { s++; next }
  END { if (s && !n) print "   everything already installed (" s " requirements satisfied)" }'
status=${PIPESTATUS[0]}
if [ "$status" -ne 0 ]; then
  echo "pip failed (exit $status); its full output:" >&2
  grep -v "is ignored: it is neither a file nor a directory" "$log" >&2
  exit "$status"
fi
echo "   done in $(elapsed)"

echo "== [3/3] development sign-in provider (OpenID Connect, Node)"
if [ -x deploy/oidc-dev/install.sh ]; then
  bash deploy/oidc-dev/install.sh || echo "   skipped: staff sign-in through OIDC is unavailable; development tokens still work"
else
  echo "   not part of this checkout"
fi
echo "== installed in $(elapsed)"
