#!/bin/bash
# Docker HEALTHCHECK of the interCEde Slurm stack: one real probe per role, so "healthy" means
# the daemon answers, not merely that its process exists.
set -uo pipefail
role="${INTERCEDE_ROLE:-}"

# Listening sockets are checked with ss, not by connecting: probes that connect and hang up
# fill the daemons' logs with errors that hide real ones.
listening() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }
munge_ok() { munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; }

case "${role}" in
database) mariadb-admin --protocol=socket ping >/dev/null 2>&1 ;;
dbd) munge_ok && listening 6819 ;;
controller) munge_ok && scontrol ping 2>/dev/null | grep -q 'is UP' ;;
worker) munge_ok && listening 6818 && scontrol show slurmd >/dev/null 2>&1 ;;
login) munge_ok && listening 22 ;;
*) exit 1 ;;
esac
