#!/usr/bin/env bash
# The programs the harness and the checks call, and the Debian package of each: debootstrap
# (base images without a registry), ssh-keygen (`harness ssh`, key minting), nix-instantiate
# (the flake parse check), shellcheck (actionlint checks the workflows' shell steps with it).
# A program already on PATH is never installed, whoever provided it (Debian, Nix, Homebrew):
# under `nix develop` or `nix run .#e2e` everything is on PATH and this does nothing.
#
#   tools/debian-deps.sh             say what is missing and install it (root or passwordless
#                                    sudo on Debian/Ubuntu; otherwise say what to install)
#   tools/debian-deps.sh --dry-run   say what it would install, change nothing
#
# Exit status: 0 when everything is present (or was installed), 1 when something is missing.
set -euo pipefail
dry_run=0
case "${1:-}" in
  "") ;;
  --dry-run | -n) dry_run=1 ;;
  *) echo "usage: $0 [--dry-run]" >&2; exit 2 ;;
esac

# program:package, in the order they are reported.
wanted=(debootstrap:debootstrap ssh-keygen:openssh-client nix-instantiate:nix-bin shellcheck:shellcheck)
need=()
have=()
for pair in "${wanted[@]}"; do
  program="${pair%%:*}"
  package="${pair#*:}"
  # debootstrap lives in /usr/sbin, which is not on every user's PATH.
  if command -v "$program" >/dev/null 2>&1 || { [ "$program" = debootstrap ] && [ -x /usr/sbin/debootstrap ]; }; then
    have+=("$program")
  else
    echo "deps: $program not found (Debian package $package)" >&2
    need+=("$package")
  fi
done
if [ ${#need[@]} -eq 0 ]; then
  echo "deps: all present (${have[*]}); nothing to install" >&2
  exit 0
fi
if [ "$dry_run" = 1 ]; then
  echo "deps: would install: ${need[*]}" >&2
  exit 1
fi
missing() {
  echo "deps: missing: ${need[*]} — install them (Debian/Ubuntu: apt-get install ${need[*]})" >&2
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
echo "deps: installing Debian packages: ${need[*]}" >&2
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
