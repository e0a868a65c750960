# interCEde: sync facade, DIRAC migration path and the Slurm e2e harness.
# Run through ./just on a fresh machine (it prepares .venv and rust-just first).

set shell := ["bash", "-euo", "pipefail", "-c"]

variant := env_var_or_default("SLURM_VARIANT", "bookworm")
keep := env_var_or_default("KEEP", "0")

# List the recipes.
default:
    @just --list

# Programs the harness and checks call: says what is missing and installs it from Debian (root
# or passwordless sudo), or with --dry-run only says what it would install. Nothing when all is on PATH.
deps *ARGS:
    tools/debian-deps.sh {{ARGS}}

# Install and start a container engine if none answers (root on Debian only).
engine: deps
    python -m harness engine

# The real DIRAC (9.1.22, pinned in tools/dirac/requirements.txt) in .venv-dirac, with this
# checkout's interCEde and the InterCEdeDIRAC extension: the DIRAC scenarios run in it.
dirac-env:
    tools/dirac-env.sh

# Lint and type check: ruff + mypy --strict on src/, harness/, tools/ and the DIRAC adapter example, plus the generator check.
lint:
    ruff check src harness tests benchmarks tools docs/examples
    ruff format --check src harness tests benchmarks tools docs/examples
    mypy
    python -m tools.gen_sync --check
    shellcheck --shell=sh src/intercede/_batch/*.sh

# Format the code.
fmt:
    ruff format src harness tests benchmarks tools docs/examples
    ruff check --fix src harness tests benchmarks tools docs/examples

# Regenerate the sync facade's surface from intercede/protocols.py.
generate:
    python -m tools.gen_sync

# Fast tests, no cluster (the DIRAC drift test reads the pinned DIRAC in .venv-dirac).
unit *ARGS: dirac-env
    pytest tests/unit -q {{ARGS}}

# The README's test command: unit tests, then every e2e test against a live cluster.
# The stack comes up first (a cold image build is not a test's job) and both pytest sessions
# share it; tests marked `faults` disturb the shared cluster, so they run alone, after the rest.
# The stack is torn down at the end unless it was already running or KEEP=1; when anything
# failed, every container's log is saved to reports/logs/<stack>/ first.
test *ARGS: engine dirac-env
    #!/usr/bin/env bash
    set -euo pipefail
    up=$(python -m harness up --variant {{variant}})
    echo "$up"
    teardown=0
    if [[ "$up" != *reused* && "{{keep}}" != 1 ]]; then teardown=1; fi
    finish() {
      local status=$?
      if [ "$status" != 0 ]; then python -m harness logs --save || true; fi
      if [ "$teardown" = 1 ]; then python -m harness down; fi
      return "$status"
    }
    trap finish EXIT
    pytest tests/unit tests/e2e -q -n 2 --dist loadgroup -m "not faults" {{ARGS}}
    pytest tests/e2e -q -m faults {{ARGS}}
    just dirac-tests

# The InterCEde CE's tests inside the real DIRAC (.venv-dirac; no cluster).
dirac-tests *ARGS: dirac-env
    .venv-dirac/bin/python -m pytest -p no:harness.pytest_plugin tests/dirac -q {{ARGS}}

# The main job: cluster up (or reuse), debug-CE spike on every partition, every DIRAC scenario.
e2e *ARGS: engine dirac-env
    python -m harness e2e --variant {{variant}} {{ if keep == "1" { "--keep" } else { "" } }} {{ARGS}}

# Cluster lifecycle.
stack-up *ARGS: engine
    python -m harness up --variant {{variant}} {{ARGS}}

stack-down:
    python -m harness down

stack-logs *ARGS:
    python -m harness logs {{ARGS}}

stack-status:
    python -m harness status

# Open a shell on the login node as the submit user.
ssh:
    python -m harness ssh

# Run the debug-CE spike: against the running stack's config unless ARGS name a .toml file.
debug-ce *ARGS:
    #!/usr/bin/env bash
    set -euo pipefail
    set -- {{ARGS}}
    for arg in "$@"; do [[ "$arg" == *.toml ]] && exec intercede-debug-ce "$@"; done
    exec intercede-debug-ce "$(python -m harness config-path)" "$@"

# Every benchmark (prints tables, writes JSON under benchmarks/results/).
bench: bench-facade bench-bulk bench-stack

bench-stack: engine
    python benchmarks/stack_startup.py --variant {{variant}}

bench-bulk: engine
    python benchmarks/bulk_ops.py

# DIRAC's SiteDirector/killPilotsInQueues: InterCEde CE vs DIRAC's SSH/SSHBatch CEs (needs a running stack).
bench-dirac: dirac-env
    python benchmarks/dirac_site_director.py

bench-facade:
    python benchmarks/facade_overhead.py

# Every scenario and the spike against both Slurm variants; report under reports/.
regress: engine dirac-env
    python -m harness regress --variants bookworm,trixie

# Mutation testing (mutmut) of the batch backend, models, config and the sync runtime against
# the unit tests; scope in pyproject.toml [tool.mutmut]. CPU heavy: hours on two cores; a
# scheduled workflow runs it, not every CI run. Fails below an 85% kill rate.
mutate *ARGS:
    python -c 'import mutmut' 2>/dev/null || python -m pip install -q 'mutmut==3.8.1'
    mutmut run {{ARGS}} || true
    mutmut export-cicd-stats
    mutmut results > mutants/survivors.txt || true
    python -m tools.mutation_score --survivors-file mutants/survivors.txt

# Build the docs site strictly.
docs:
    python -m tools.gen_config_reference
    mkdocs build --strict --site-dir site
