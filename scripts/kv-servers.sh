#!/usr/bin/env bash
# Installs the key-value servers the shared-state backends are tested against, when
# missing: Redis 7 (Debian's redis-server) and Valkey 8 (valkey-server, from
# bookworm-backports). Prints the two server binaries, one per line (redis, valkey).
# Nothing is started here: the tests start their own servers on free loopback ports.
set -euo pipefail

need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v valkey-server >/dev/null || need+=(valkey-server)
if ((${#need[@]})); then
  sudo=()
  if [[ "$(id -u)" != 0 ]]; then
    command -v sudo >/dev/null || {
      echo "kv-servers.sh: ${need[*]} missing and not root (no sudo): install them first" >&2
      exit 1
    }
    sudo=(sudo)
  fi
  echo "installing ${need[*]}" >&2
  if [[ " ${need[*]} " == *" valkey-server "* ]] && ! apt-cache policy valkey-server 2>/dev/null | grep -q Candidate:.*[0-9]; then
    # Valkey is in bookworm-backports.
    codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
    echo "deb http://deb.debian.org/debian ${codename}-backports main" |
      "${sudo[@]}" tee /etc/apt/sources.list.d/switchyard-backports.list >/dev/null
  fi
  "${sudo[@]}" apt-get update -qq >&2
  for package in "${need[@]}"; do
    target=()
    [[ "$package" == valkey-server ]] && target=(-t "$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")-backports")
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${target[@]}" "$package" >&2
  done
fi
for server in redis-server valkey-server; do
  path=$(command -v "$server") || { echo "kv-servers.sh: $server did not install" >&2; exit 1; }
  "$path" --version >/dev/null || { echo "kv-servers.sh: $path does not run" >&2; exit 1; }
  echo "$path"
done
