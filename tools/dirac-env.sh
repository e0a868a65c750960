#!/usr/bin/env bash
# Creates .venv-dirac: the real DIRAC (pinned in tools/dirac/requirements.txt), this checkout's
# interCEde and the InterCEdeDIRAC extension (docs/examples/intercede-dirac), both editable.
# The DIRAC scenarios, DIRAC's own dirac-admin-debug-ce and the DIRAC drift tests run in it.
# A second run with unchanged requirements does nothing. `--refresh` re-resolves DIRAC's
# declared requirements for DIRAC_VERSION and rewrites the pinned list (how to move the pin).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DIRAC_VERSION=9.1.22
venv=${INTERCEDE_DIRAC_VENV:-.venv-dirac}
requirements=tools/dirac/requirements.txt
python=${PYTHON:-python3}

# M2Crypto and mysqlclient build from source: swig, OpenSSL and MariaDB headers, pkg-config.
need=()
command -v swig >/dev/null 2>&1 || need+=(swig)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
# Headers: through pkg-config (Nix exports PKG_CONFIG_PATH), else at Debian's paths.
has() { pkg-config --exists "$1" 2>/dev/null || [[ -e $2 ]]; }
has openssl /usr/include/openssl/ssl.h || need+=(libssl-dev)
has libmariadb /usr/include/mariadb/mysql.h || need+=(libmariadb-dev)
if ((${#need[@]})); then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "dirac-env: missing ${need[*]} and no apt-get: provide them (nix develop does)" >&2
    exit 1
  fi
  if [[ $(id -u) == 0 ]]; then sudo=(); elif sudo -n true 2>/dev/null; then sudo=(sudo -n); else
    echo "dirac-env: missing ${need[*]}: install them (apt-get install ${need[*]})" >&2; exit 1
  fi
  echo "dirac-env: installing ${need[*]}" >&2
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if [[ ${1:-} == --refresh ]]; then
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q --no-deps "dirac==$DIRAC_VERSION"
  mapfile -t declared < <("$venv/bin/python" - <<'PY'
import importlib.metadata as m
for req in m.requires("dirac"):
    if "extra ==" not in req and not req.startswith("gfal2-python"):
        print(req)
PY
)
  "$venv/bin/pip" install -q "dirac==$DIRAC_VERSION" "${declared[@]}" mysqlclient opensearch-py \
    pytest pytest-timeout -e .
  {
    sed -n '1,5p' "$requirements"
    "$venv/bin/pip" freeze | grep -v -i -E '^-e|^intercede'
  } > "$requirements.new"
  mv "$requirements.new" "$requirements"
fi

stamp="$venv/.requirements.sha256"
want=$(cat "$requirements" pyproject.toml docs/examples/intercede-dirac/pyproject.toml | sha256sum | cut -d' ' -f1)
if [[ -x $venv/bin/python && -f $stamp && $(cat "$stamp") == "$want" ]]; then
  exit 0
fi
echo "dirac-env: installing DIRAC $DIRAC_VERSION into $venv" >&2
[[ -x $venv/bin/python ]] || "$python" -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
"$venv/bin/pip" install -q --no-deps -r "$requirements"
"$venv/bin/pip" install -q --no-deps -e . -e docs/examples/intercede-dirac
# Fails here, not in a scenario, when the pinned set no longer imports what the agents need.
DIRAC_VERSION=$DIRAC_VERSION "$venv/bin/python" - <<'PY'
import os

import DIRAC
from DIRAC.WorkloadManagementSystem.Agent.SiteDirector import SiteDirector  # noqa: F401
from DIRAC.WorkloadManagementSystem.Agent.PushJobAgent import PushJobAgent  # noqa: F401
from DIRAC.WorkloadManagementSystem.Service.WMSUtilities import killPilotsInQueues  # noqa: F401
from DIRAC.WorkloadManagementSystem.Utilities.RemoteRunner import RemoteRunner  # noqa: F401
from InterCEdeDIRAC.Resources.Computing.InterCEdeComputingElement import (  # noqa: F401
    InterCEdeComputingElement,
)
assert DIRAC.version == os.environ["DIRAC_VERSION"], DIRAC.version
PY
echo "$want" > "$stamp"
