#!/bin/sh
# Installs the development sign-in provider's packages (package-lock.json, exact versions) into
# deploy/oidc-dev/node_modules. Offline-tolerant on purpose: without Node or a reachable npm registry the
# system still runs (development tokens from `jingzhun token` work), only the docs' sign-in is missing,
# so this says so and exits 0 instead of failing `make`.
cd "$(dirname "$0")" || exit 0
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "oidc-dev: Node.js/npm not found: staff sign-in through the docs is unavailable (jingzhun token still works)"
  exit 0
fi
if [ -d node_modules/oidc-provider ] && [ node_modules/.package-lock.json -nt package-lock.json ]; then
  exit 0  # installed from this lock already
fi
log="${TMPDIR:-/tmp}/jingzhun-oidc-dev-npm.log"
if npm ci --no-audit --no-fund --loglevel=error >"$log" 2>&1; then
  echo "oidc-dev: sign-in provider installed (deploy/oidc-dev/node_modules)"
else
  echo "oidc-dev: npm could not install the sign-in provider (offline? see $log): staff sign-in through the docs is unavailable (jingzhun token still works)"
  rm -rf node_modules  # half an install must not look like a working one to the launcher
fi
exit 0
