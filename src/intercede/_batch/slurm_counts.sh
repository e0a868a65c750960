#!/bin/sh
# This backend's own jobs, one squeue state a line: our user, our job name, our partition if
# fixed; then, for a fixed partition, "@@partition" and "<name>|<state>" (nothing follows when
# Slurm has no such partition).
#   $1 job name   $2 partition ("" = any)
if [ -z "$2" ]; then
  exec squeue -h -r -u "$(id -un)" -n "$1" -o '%T'
fi
squeue -h -r -u "$(id -un)" -n "$1" -p "$2" -o '%T' || exit $?
echo @@partition
scontrol show partition -o "$2" 2>/dev/null | sed -n 's/^PartitionName=\([^ ]*\) .* State=\([A-Z_]*\).*/\1|\2/p'
