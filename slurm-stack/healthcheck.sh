#!/bin/bash
# Docker HEALTHCHECK of the interCEde Slurm stack: one real probe per role, so "healthy" means
# the daemon answers, not merely that its process exists.
set -uo pipefail
role="${INTERCEDE_ROLE:-}"

tcp_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
munge_ok() { munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; }

case "${role}" in
database) mariadb-admin --protocol=socket ping >/dev/null 2>&1 ;;
dbd) munge_ok && tcp_open 127.0.0.1 6819 ;;
controller) munge_ok && scontrol ping 2>/dev/null | grep -q 'is UP' ;;
worker) munge_ok && tcp_open 127.0.0.1 6818 ;;
login) munge_ok && tcp_open 127.0.0.1 22 ;;
*) exit 1 ;;
esac
