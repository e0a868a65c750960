#!/usr/bin/env bash
# Installs the Debian packages the harness and the checks call as programs: debootstrap (base
# images without a registry), openssh-client (`harness ssh`, key minting), nix-bin (the flake
# parse check), shellcheck (actionlint checks the workflows' shell steps with it). Silent when
# everything is present; uses sudo when not root and sudo needs no password.
set -euo pipefail
need=()
command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || need+=(debootstrap)
command -v ssh-keygen >/dev/null 2>&1 || need+=(openssh-client)
command -v nix-instantiate >/dev/null 2>&1 || need+=(nix-bin)
command -v shellcheck >/dev/null 2>&1 || need+=(shellcheck)
[ ${#need[@]} -eq 0 ] && exit 0
missing() {
  echo "missing: ${need[*]} — install them (Debian/Ubuntu: apt-get install ${need[*]})" >&2
  exit 1
}
command -v apt-get >/dev/null 2>&1 || missing
if [ "$(id -u)" = 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo=(sudo -n)  # not root but passwordless sudo, e.g. GitHub's runners
else
  missing
fi
echo "==> installing Debian packages: ${need[*]}" >&2
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
