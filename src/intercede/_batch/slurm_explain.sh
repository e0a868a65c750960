#!/bin/sh
# Each job's state, pending reason and partition (squeue), then every partition's state.
# stdin: job ids, one a line. Replies: "@@squeue" then "%i|%T|%r|%P" lines, "@@partitions"
# then "<name>|<state>" lines, "@@end".
t=$(mktemp -d) || exit 4
trap 'rm -rf "$t"' EXIT
cut -d_ -f1 | sort -u > "$t/arrays"
echo @@squeue
# shellcheck disable=SC2016 # $* belongs to the inner sh
xargs -r -n 500 sh -c 'IFS=,; squeue -h -r -t all -j "$*" -o "%i|%T|%r|%P"' sh < "$t/arrays" 2>/dev/null
echo @@partitions
scontrol show partition -o 2>/dev/null | sed -n 's/^PartitionName=\([^ ]*\) .* State=\([A-Z_]*\).*/\1|\2/p'
echo @@end
