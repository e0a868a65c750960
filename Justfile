# interCEde: sync facade, DIRAC migration path and the Slurm e2e harness.
# Run through ./just on a fresh machine (it prepares .venv and rust-just first).

set shell := ["bash", "-euo", "pipefail", "-c"]

variant := env_var_or_default("SLURM_VARIANT", "bookworm")
keep := env_var_or_default("KEEP", "0")

# List the recipes.
default:
    @just --list

# Debian packages the harness and checks use (root on Debian; otherwise says what to install).
deps:
    tools/debian-deps.sh

# Install and start a container engine if none answers (root on Debian only).
engine: deps
    python -m harness engine

# Lint and type check: ruff + mypy --strict on src/, harness/, tools/ and the DIRAC adapter example, plus the generator check.
lint:
    ruff check src harness tests benchmarks tools docs/examples
    ruff format --check src harness tests benchmarks tools docs/examples
    mypy
    python -m tools.gen_sync --check

# Format the code.
fmt:
    ruff format src harness tests benchmarks tools docs/examples
    ruff check --fix src harness tests benchmarks tools docs/examples

# Regenerate the sync facade's surface from intercede/protocols.py.
generate:
    python -m tools.gen_sync

# Fast tests, no cluster.
unit *ARGS:
    pytest tests/unit -q {{ARGS}}

# The README's test command: unit tests, then every e2e test against a live cluster.
# The stack comes up first (a cold image build is not a test's job) and both pytest sessions
# share it; tests marked `faults` disturb the shared cluster, so they run alone, after the rest.
# The stack is torn down at the end unless it was already running or KEEP=1.
test *ARGS: engine
    #!/usr/bin/env bash
    set -euo pipefail
    up=$(python -m harness up --variant {{variant}})
    echo "$up"
    if [[ "$up" != *reused* && "{{keep}}" != 1 ]]; then trap 'python -m harness down' EXIT; fi
    pytest tests -q -n 2 --dist loadgroup -m "not faults" {{ARGS}}
    pytest tests/e2e -q -m faults {{ARGS}}

# The main job: cluster up (or reuse), debug-CE spike on every partition, every DIRAC scenario.
e2e *ARGS: engine
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

# Run the debug-CE spike against the harness's generated config (or your own).
debug-ce *ARGS:
    intercede-debug-ce {{ARGS}}

# Every benchmark (prints tables, writes JSON under benchmarks/results/).
bench: bench-facade bench-bulk bench-stack

bench-stack: engine
    python benchmarks/stack_startup.py --variant {{variant}}

bench-bulk: engine
    python benchmarks/bulk_ops.py

bench-facade:
    python benchmarks/facade_overhead.py

# Every scenario and the spike against both Slurm variants; report under reports/.
regress: engine
    python -m harness regress --variants bookworm,trixie

# Mutation testing (mutmut) of the batch backend, models, config and the sync runtime against
# the unit tests; scope in pyproject.toml [tool.mutmut]. CPU heavy: hours on two cores; a
# scheduled workflow runs it, not every CI run. Fails below an 85% kill rate.
mutate *ARGS:
    python -c 'import mutmut' 2>/dev/null || python -m pip install -q 'mutmut==3.8.1'
    mutmut run {{ARGS}}
    mutmut export-cicd-stats
    mutmut results > mutants/survivors.txt || true
    python -m tools.mutation_score --survivors-file mutants/survivors.txt

# Build the docs site strictly.
docs:
    python -m tools.gen_config_reference
    mkdocs build --strict --site-dir site
