#!/usr/bin/env bash
# Installs the Debian packages the tests need when they are missing: the PostgreSQL
# server binaries (the Go tests start throwaway servers from them) and Chromium (the
# browser tests drive it headless). As root it installs them; otherwise it names
# what to install and fails. Used by `make test` and .ci/run.
set -euo pipefail

need=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v make >/dev/null || need+=(make)
command -v git >/dev/null || need+=(git)
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "missing Debian packages: ${need[*]}; install them with: sudo apt-get install ${need[*]}" >&2
  exit 1
fi
echo "installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}"
# The postgresql package starts a cluster of its own; tests start theirs.
service postgresql stop >/dev/null 2>&1 || true
