#!/bin/sh
# Remove <work root>/<batch> unless its submit still runs there or one of its jobs is live.
#   $1 work root   $2 batch id (32 hex digits, checked by the caller)
#   $3 the final raw states, comma-separated: any other state counts as live
# A job belongs to the batch when its comment carries "intercede:<batch>" or its array id is
# in the batch's chunk record (a --comment in submit_extra replaces ours). Replies: "@@busy",
# "@@rc squeue <n>" (squeue failed: nothing removed), "@@live <id> <state>" lines (nothing
# removed), "@@removed" or "@@gone".
cd "$1" 2>/dev/null || { echo @@gone; exit 0; }
b=$2
if [ -f "$b/submitting" ] && kill -0 "$(cat "$b/submitting")" 2>/dev/null; then
  echo @@busy; exit 0
fi
t=$(mktemp -d) || exit 4
trap 'rm -rf "$t"' EXIT
squeue -h -r -t all -u "$(id -un)" -o "%i|%T|%k" > "$t/q"
s=$?; [ "$s" -eq 0 ] || { echo "@@rc squeue $s"; exit 0; }
[ -f "$b/chunks" ] && cut -d" " -f4 "$b/chunks" | cut -d";" -f1 > "$t/arrays"
touch "$t/arrays"
awk -F'|' -v c="|intercede:$b" -v final="$3" '
  BEGIN { n = split(final, f, ","); for (i = 1; i <= n; i++) done[f[i]] = 1 }
  FILENAME == ARGV[1] { a[$0] = 1; next }
  { split($1, id, "_"); split($2, w, " "); st = w[1]; sub(/\+$/, "", st) }
  (index($0, c) || (id[1] in a)) && !(st in done) { print "@@live " $1 " " $2 }
' "$t/arrays" "$t/q" > "$t/live"
if [ -s "$t/live" ]; then cat "$t/live"; exit 0; fi
[ -e "$b" ] || { echo @@gone; exit 0; }
rm -rf "$b" && echo @@removed
