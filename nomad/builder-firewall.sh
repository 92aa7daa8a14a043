#!/usr/bin/env bash
# nomad/builder-firewall.sh: keep builds away from the cluster. Run as root
# at every boot of a build node (node pool "builds"), before the Nomad
# client starts; terraform/modules/control-region installs it as the
# pier-builder-firewall systemd unit, and the Vagrantfile runs it too.
#
# A build runs code from a user's repository (install scripts, build
# commands). It needs the internet (package registries, git hosts) and
# nothing else: not Consul, Nomad or Vault, not the database, not the
# cloud's metadata service. This script
#   - creates the Docker network "pier-builds" that jobs/specs' build job
#     uses with the docker driver, and rejects its traffic to private,
#     shared, link-local and loopback addresses (DOCKER-USER chain);
#   - creates the user "pier-build" that the exec variant runs builds as,
#     and rejects that user's traffic to the same addresses, except DNS to
#     the node's resolvers.
# It is idempotent: running it again adds nothing twice.
#
# Usage: builder-firewall.sh            (no arguments; reads /etc/resolv.conf)
set -euo pipefail

readonly network=pier-builds
readonly user=pier-build
readonly blocked_v4=(10.0.0.0/8 172.16.0.0/12 192.168.0.0/16 100.64.0.0/10 169.254.0.0/16 127.0.0.0/8)
readonly blocked_v6=(fc00::/7 fe80::/10 ::1/128)

# rule TOOL CHAIN ARGS...: append ARGS to CHAIN unless already there.
rule() {
  local tool=$1 chain=$2
  shift 2
  if ! "$tool" -C "$chain" "$@" 2>/dev/null; then
    "$tool" -A "$chain" "$@"
  fi
}

# first TOOL CHAIN ARGS...: insert ARGS at the top of CHAIN unless there.
first() {
  local tool=$1 chain=$2
  shift 2
  if ! "$tool" -C "$chain" "$@" 2>/dev/null; then
    "$tool" -I "$chain" 1 "$@"
  fi
}

if [ "$(id -u)" != 0 ]; then
  echo "builder-firewall: run as root" >&2
  exit 1
fi

# The exec driver: builds run as $user.
if ! id "$user" >/dev/null 2>&1; then
  useradd --system --no-create-home --shell /usr/sbin/nologin "$user"
fi
uid=$(id -u "$user")
for cidr in "${blocked_v4[@]}"; do
  rule iptables OUTPUT -m owner --uid-owner "$uid" -d "$cidr" -j REJECT
done
for cidr in "${blocked_v6[@]}"; do
  rule ip6tables OUTPUT -m owner --uid-owner "$uid" -d "$cidr" -j REJECT
done
# DNS to the node's resolvers stays open (on AWS the VPC resolver is a
# private address); accept rules go above the rejects.
while read -r key addr _; do
  [ "$key" = nameserver ] || continue
  tool=iptables
  case $addr in *:*) tool=ip6tables ;; esac
  for proto in udp tcp; do
    first "$tool" OUTPUT -m owner --uid-owner "$uid" -d "$addr" -p "$proto" --dport 53 -j ACCEPT
  done
done </etc/resolv.conf

# The docker driver: builds run on $network, whose containers reach DNS
# through Docker's embedded resolver (it forwards from the host).
if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
  if ! docker network inspect "$network" >/dev/null 2>&1; then
    docker network create --driver bridge \
      --opt com.docker.network.bridge.name="$network" \
      --opt com.docker.network.bridge.enable_icc=false \
      "$network" >/dev/null
  fi
  for cidr in "${blocked_v4[@]}"; do
    first iptables DOCKER-USER -i "$network" -d "$cidr" -j REJECT
  done
fi

echo "builder-firewall: builds on docker network $network and as user $user reach the internet only"
