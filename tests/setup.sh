#!/usr/bin/env bash
# tests/setup.sh: install what the test suite needs on a fresh Debian 12
# machine, from Debian's packages and the Go module proxy only. Idempotent
# and quiet when everything is already there (called by `make test`).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v git >/dev/null || need+=(git)
command -v bwrap >/dev/null || need+=(bubblewrap)
[ -x /usr/lib/postgresql/15/bin/initdb ] || need+=(postgresql-15)
command -v npm >/dev/null || need+=(nodejs npm)
command -v shellcheck >/dev/null || need+=(shellcheck)
command -v pebble >/dev/null || need+=(pebble)
command -v chromium >/dev/null || need+=(chromium) # the dashboard tests (tests/e2e/dashboard_test.go, chromedp)
if ((${#need[@]})); then
  echo "setup: installing ${need[*]}"
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# Pier's own modules download beside the tool builds (network against CPU).
go mod download &
mods=$!
# The real servers the integration tests run (Consul, Nomad, Vault, MinIO),
# built once from their Go modules into ~/.cache/pier/tools: about 20 minutes
# on a fresh 2-core machine, seconds afterwards.
bash tests/tools/build.sh >/dev/null
wait "$mods"
