#!/usr/bin/env bash
# Installs the Debian packages the harness and the checks call as programs: debootstrap (base
# images without a registry), openssh-client (`harness ssh`, key minting), nix-bin (the flake
# parse check). Silent when everything is present.
set -euo pipefail
need=()
command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || need+=(debootstrap)
command -v ssh-keygen >/dev/null 2>&1 || need+=(openssh-client)
command -v nix-instantiate >/dev/null 2>&1 || need+=(nix-bin)
command -v shellcheck >/dev/null 2>&1 || need+=(shellcheck)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "missing: ${need[*]} — install them with your package manager (Debian: apt-get install ${need[*]})" >&2
  exit 1
fi
echo "==> installing Debian packages: ${need[*]}" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
