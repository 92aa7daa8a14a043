#!/usr/bin/env bash
# tests/tools/build.sh: build the real servers the integration tests run —
# Consul, Nomad and Vault agents and MinIO — from their Go modules (the only
# registry that has them here), into a cache that outlives the checkout:
#   ${PIER_TOOLS_DIR:-$HOME/.cache/pier/tools}/<name>-<version>
# A binary already in the cache is not rebuilt. Each tool has a wrapper
# module beside this script pinning a version whose whole dependency graph
# the proxy serves (see the go.mod comments and docs/testing.md).
#
# Usage: tests/tools/build.sh [name ...]   (default: all; prints the bin dir)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${PIER_TOOLS_DIR:-$HOME/.cache/pier/tools}"
mkdir -p "$bin"

# name  version  main package  GONOSUMDB  default|optional
# Optional tools are built only when named: terraform (the last MPL
# release; 4 minutes cold) lets tests/ops run `terraform fmt -check`, which
# otherwise checks formatting with hclwrite, the same formatter.
tools=(
  "consul v1.19.2 github.com/hashicorp/consul - default"
  "nomad v1.10.0 github.com/hashicorp/nomad github.com/hashicorp/nomad/api default"
  "vault v1.16.3 github.com/hashicorp/vault github.com/hashicorp/vault/sdk,github.com/hashicorp/vault/api default"
  "minio v0.0.0-20260212201848-7aac2a2c5b7c github.com/minio/minio - default"
  "terraform v1.5.7 github.com/hashicorp/terraform - optional"
)

want=("$@")
selected() { # name kind
  if ((${#want[@]})); then
    [[ " ${want[*]} " == *" $1 "* ]]
  else
    [ "$2" != optional ]
  fi
}

# Fetch the modules of every tool still to build at once, in the
# background: fetching is network-bound, so it overlaps the compiles below
# (each compile waits only for its own tool's fetch). A failed fetch is not
# fatal here; the build then fetches again and reports the error.
declare -A fetch
for spec in "${tools[@]}"; do
  read -r name version pkg nosum kind <<<"$spec"
  selected "$name" "$kind" || continue
  [ -x "$bin/$name-$version" ] && continue
  (
    cd "$here/$name"
    GONOSUMDB="${nosum#-}" GOFLAGS="-mod=mod -buildvcs=false" go list -deps "$pkg" >/dev/null 2>&1
  ) &
  fetch[$name]=$!
done

for spec in "${tools[@]}"; do
  read -r name version pkg nosum kind <<<"$spec"
  selected "$name" "$kind" || continue
  out="$bin/$name-$version"
  if [ -x "$out" ]; then continue; fi
  [ -z "${fetch[$name]:-}" ] || wait "${fetch[$name]}" || true
  # One build per tool at a time, across processes (parallel test packages).
  exec 9>"$out.lock"
  flock 9
  if [ -x "$out" ]; then exec 9>&-; continue; fi
  echo "tools: building $name $version (once; cached in $bin)" >&2
  start=$SECONDS
  (
    cd "$here/$name"
    GONOSUMDB="${nosum#-}" GOFLAGS="-mod=mod -buildvcs=false" go build -trimpath -ldflags "-s -w" -o "$out.tmp" "$pkg"
  )
  mv "$out.tmp" "$out"
  exec 9>&-
  echo "tools: built $name in $((SECONDS - start))s" >&2
done
echo "$bin"
