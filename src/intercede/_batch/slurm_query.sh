#!/bin/sh
# Slurm's view of a set of jobs, and kill: one round trip for any number of jobs.
#   $1 what: "status", "status+chunks" or "cancel"   $2 work root
#   $3 (cancel) our job name   $4 (cancel) the final raw states, "|"-separated
# stdin: "J <job id> <batch>" per job, and for cancel "C <scancel argument>" per range.
# Replies: "@@squeue" then "%i|%T|%u|%j" lines and "@@rc squeue <rc>"; "@@sacct" then
# "JobID|State" lines and "@@rc sacct <rc>"; "@@cancelled" then the ids kill recorded;
# "@@exits" then "<log>:intercede: exit code <n> ..." for jobs both commands forgot;
# with chunks, "@@chunks <batch>" then its "@@chunk" lines; "@@end" last. cancel prints the
# status part, "@@ours <array>" lines, "@@rc scancel <rc>", "@@after", the status part again.
what=$1 r=$2
t=$(mktemp -d) || exit 4
trap 'rm -rf "$t"' EXIT
cat > "$t/in"
sed -n 's/^J //p' "$t/in" > "$t/jobs"
cut -d' ' -f1 "$t/jobs" | cut -d_ -f1 | sort -u > "$t/arrays"

# squeue fails when none of its ids is known to it: the user's whole queue (filtered
# locally) then tells "unknown to Slurm" from "Slurm not answering".
status() {
  echo @@squeue
  # shellcheck disable=SC2016 # $* belongs to the inner sh
  xargs -r -n 500 sh -c 'IFS=,; squeue -h -r -t all -j "$*" -o "%i|%T|%u|%j" 2>/dev/null || squeue -h -r -t all -u "$(id -un)" -o "%i|%T|%u|%j"' sh < "$t/arrays" > "$t/q"
  s=$?
  cut -d'|' -f1 "$t/q" | sort -u > "$t/qk"
  cut -d' ' -f1 "$t/jobs" | sort -u | comm -23 - "$t/qk" > "$t/miss"
  if [ "$s" -eq 0 ] && [ -s "$t/miss" ]; then
    # squeue -r leaves out the last task of a stepped range (7_[1-999:2], what cancelling
    # every other task of a pending array leaves): the array records, expanded, fill it in.
    # shellcheck disable=SC2016 # $* belongs to the inner sh
    cut -d_ -f1 "$t/miss" | sort -u | xargs -r -n 500 sh -c 'IFS=,; squeue -h -t all -j "$*" -o "%i|%T|%u|%j"' sh 2>/dev/null | awk -F'|' '
      FILENAME == ARGV[1] { miss[$0] = 1; next }
      $1 ~ /^[0-9]+_\[/ {
        a = substr($1, 1, index($1, "_") - 1); r = substr($1, index($1, "[") + 1)
        sub(/(%[0-9]+)?\]$/, "", r); rest = substr($0, length($1) + 1)
        n = split(r, part, ",")
        for (k = 1; k <= n; k++) {
          p = part[k]; step = 1
          if (index(p, ":")) { step = substr(p, index(p, ":") + 1) + 0; p = substr(p, 1, index(p, ":") - 1) }
          lo = p; hi = p
          if (index(p, "-")) { lo = substr(p, 1, index(p, "-") - 1); hi = substr(p, index(p, "-") + 1) }
          if (step < 1) step = 1
          for (i = lo + 0; i <= hi + 0; i += step) if ((a "_" i) in miss) print a "_" i rest
        }
      }' "$t/miss" - >> "$t/q"
    cut -d'|' -f1 "$t/q" | sort -u > "$t/qk"
    cut -d' ' -f1 "$t/jobs" | sort -u | comm -23 - "$t/qk" > "$t/miss"
  fi
  cat "$t/q"; echo "@@rc squeue $s"
  echo @@sacct
  # sacct (a slurmdbd query, ~0.1 s) only when squeue left a job out or saw it COMPLETING
  if grep -q '|COMPLETING|' "$t/q" || [ -s "$t/miss" ]; then
    # shellcheck disable=SC2016 # $* belongs to the inner sh
    xargs -r -n 500 sh -c 'IFS=,; exec sacct -n -P -X -j "$*" -o JobID,State' sh < "$t/arrays" > "$t/s"
    s=$?
  else
    : > "$t/s"; s=0
  fi
  cat "$t/s"; echo "@@rc sacct $s"
}

# Tasks this backend cancelled (kill's record, one file per batch): Slurm 22.05 and 24.11 drop
# a task cancelled inside its pending array record from squeue and never give it an sacct row
# of its own, while sacct keeps listing the array's range.
cancelled() {
  echo @@cancelled
  cut -d' ' -f2 "$t/jobs" | sort -u | while read -r b; do
    cat "$r/$b/cancelled" 2>/dev/null
  done
}

# Jobs neither command knows (no accounting, MinJobAge passed): the batch script's last log
# line still says how the payload ended. One grep over just those logs.
exits() {
  echo @@exits
  cut -d'|' -f1 "$t/q" "$t/s" | sort -u > "$t/known"
  # FILENAME, not NR == FNR: the known list is empty exactly when every job was forgotten.
  awk 'FILENAME == ARGV[1] { k[$0] = 1; next } !($1 in k) { print $2 "/logs/" $1 ".log" }' "$t/known" "$t/jobs" > "$t/logs"
  if [ -s "$t/logs" ]; then
    (cd "$r" 2>/dev/null && xargs -r grep -H '^intercede: exit code [0-9]' < "$t/logs" 2>/dev/null)
  fi
}

# Each batch's chunk record, so the caller can check a handle's id against its routing.
chunks() {
  cut -d' ' -f2 "$t/jobs" | sort -u | while read -r b; do
    if [ -f "$r/$b/chunks" ]; then echo "@@chunks $b"; cat "$r/$b/chunks"; fi
  done
}

# Cancel only the arrays squeue shows with our user and job name ("@@ours"): a stale handle
# cannot cancel someone else's job. scancel's own -u/--name filters are not used: with them
# Slurm 22.05 cancels a whole pending array when asked for one task.
cancel() {
  m=$(id -un)
  n=$1 m=$m awk -F'|' '$3 == ENVIRON["m"] && $4 == ENVIRON["n"] { split($1, a, "_"); print a[1] }' "$t/q" | sort -u > "$t/ours"
  sed 's/^/@@ours /' "$t/ours"
  sed -n 's/^C //p' "$t/in" | awk -F_ 'NR == FNR { ok[$0] = 1; next } ($1 in ok)' "$t/ours" - > "$t/cancel"
  xargs -r -n 500 scancel < "$t/cancel"; echo "@@rc scancel $?"
  # The record of what this call cancelled: the tasks of our arrays squeue listed live.
  awk -v final="$2" 'FILENAME == ARGV[1] { split($0, f, "|"); if (f[2] !~ ("^(" final ")")) live[f[1]] = 1; next } ($1 in live) { print $1, $2 }' "$t/q" "$t/jobs" \
    | awk -F_ 'NR == FNR { ok[$0] = 1; next } ($1 in ok)' "$t/ours" - \
    | while read -r j b; do echo "$j" >> "$r/$b/cancelled"; done
  echo @@after
}

case $what in
  status) status; cancelled; exits ;;
  status+chunks) status; cancelled; exits; chunks ;;
  cancel) status; cancelled; cancel "$3" "$4"; status; cancelled ;;
  *) echo "unknown query: $what" >&2; exit 2 ;;
esac
echo @@end
