#!/bin/sh
# Slurm's view of a set of jobs, and kill: one round trip for any number of jobs.
#   $1 what: "status", "status+chunks" or "cancel"   $2 work root
#   $3 (cancel) our job name   $4 (cancel) the final raw states, "|"-separated
# stdin: "J <job id> <batch>" per job, and for cancel "C <scancel argument>" per range.
# Replies: "@@squeue" then "%i|%T|%u|%j" lines and "@@rc squeue <rc>"; "@@sacct" then
# "JobID|State" lines and "@@rc sacct <rc>"; "@@cancelled" then the ids kill recorded;
# "@@exits" then "<log>:intercede: exit code <n> ..." for jobs both commands forgot;
# with chunks, "@@chunks <batch>" then its "@@chunk" lines; "@@end" last. cancel prints the
# status part, "@@ours <array>" lines, "@@rc scancel <rc>", "@@after", and only when scancel
# failed the status part again (the normal case reads the status once).
#
# One awk does it all: it runs squeue, sacct and scancel itself (each "<command>; echo @@rc $?"
# through a pipe, so their exit codes arrive as lines) and reads the batches' record files
# directly. Every process this script forks is time on the caller's clock (a status of 1000
# jobs is a few times squeue's own cost), so nothing here is a separate sed, sort or cat.
# Ids and batch names reach the shell only after the caller validated them (digits, ranges,
# hex); the work root and squeue's options only as the variables q_root and q_o.
case $1 in
  status | status+chunks | cancel) ;;
  *) echo "unknown query: $1" >&2; exit 2 ;;
esac
q_what=$1 q_root=$2 q_name=$3 q_final=$4 q_o="-h -r -t all -o %i|%T|%u|%j"
q_records="-h -t all -o %i|%T|%u|%j"
export q_what q_root q_name q_final q_o q_records
# mawk where it is installed, in the C locale: it starts and reads squeue's lines faster than
# gawk (a status of 1000 tasks: 16-19 ms with mawk, 25-27 ms with gawk, squeue alone 9-11 ms).
# Everything compared here is bytes (ids, states, user and job names), in any locale.
LC_ALL=C
export LC_ALL
awk="awk"
if command -v mawk > /dev/null 2>&1; then awk="mawk"; fi
# shellcheck disable=SC2016 # an awk program: its $ are awk's fields and the shell's of its pipes
exec "$awk" '
# Runs cmd (its stdout are lines) and returns its exit code, from the "@@rc" line it ends with.
function run(cmd, sink,    line, rc) {
  rc = -1
  cmd = cmd "; echo @@rc $?"
  while ((cmd | getline line) > 0) {
    if (line ~ /^@@rc /) { rc = substr(line, 6) + 0; continue }
    consume(sink, line)
  }
  close(cmd)
  return rc
}

function consume(sink, line,    f, a) {
  print line
  if (sink == "") return
  split(line, f, "|")
  if (sink == "squeue") {
    queue[f[1]] = f[2]
    if (f[2] == "COMPLETING") completing = 1
    if (f[3] == me && f[4] == ENVIRON["q_name"]) { split(f[1], a, "_"); mine[a[1]] = 1 }
  } else {
    accounted[f[1]] = 1
  }
}

# The array ids, 500 per call: the remote argv stays far under the kernel limit for any N.
function each(cmd_head, cmd_tail, sink,    i, j, ids, rc, worst) {
  worst = 0
  for (i = 1; i <= narrays; i += 500) {
    ids = arrays[i]
    for (j = i + 1; j < i + 500 && j <= narrays; j++) ids = ids "," arrays[j]
    rc = run(cmd_head ids cmd_tail, sink)
    if (rc != 0) worst = rc
  }
  return worst
}

# squeue fails when none of its ids is known to it: the whole queue of the user (filtered by
# the caller) then tells "unknown to Slurm" from "Slurm not answering". sacct (a slurmdbd query,
# ~0.1 s) runs only when squeue left a job out or saw it COMPLETING.
function status(    k, need, rc) {
  split("", queue); split("", accounted); split("", mine); completing = 0
  print "@@squeue"
  rc = each("squeue $q_o -j ", " 2>/dev/null || squeue $q_o -u \"$(id -un)\"", "squeue")
  if (rc == 0) fill()
  print "@@rc squeue " rc
  print "@@sacct"
  need = completing
  for (k = 1; k <= njobs && !need; k++) if (!(job[k] in queue)) need = 1
  rc = need ? each("sacct -n -P -X -o JobID,State -j ", "", "sacct") : 0
  print "@@rc sacct " rc
}

# squeue -r leaves out the last task of a stepped range (7_[1-999:2], what cancelling every
# other task of a pending array leaves; Slurm 22.05 and 24.11): the array records of the
# arrays with a job squeue -r left out, expanded here, fill those jobs in.
function fill(    k, x, seen_a, list, nl, i, j, ids) {
  nl = 0
  for (k = 1; k <= njobs; k++) {
    if (job[k] in queue) continue
    split(job[k], x, "_")
    if (!(x[1] in seen_a)) { seen_a[x[1]] = 1; list[++nl] = x[1] }
  }
  for (i = 1; i <= nl; i += 500) {
    ids = list[i]
    for (j = i + 1; j < i + 500 && j <= nl; j++) ids = ids "," list[j]
    records("squeue $q_records -j " ids " 2>/dev/null")
  }
}

# The tasks of each collapsed array record ("7_[1-9:2,12%4]|PENDING|...") that were asked for
# and are not known yet, as squeue -r would have printed them.
function records(cmd,    line, f, a, r, parts, np, p, step, lo, hi, i, id, rest) {
  while ((cmd | getline line) > 0) {
    if (line !~ /^[0-9]+_\[/) continue
    split(line, f, "|")
    rest = substr(line, length(f[1]) + 1)
    a = substr(f[1], 1, index(f[1], "_") - 1)
    r = substr(f[1], index(f[1], "[") + 1)
    sub(/(%[0-9]+)?\]$/, "", r)
    np = split(r, parts, ",")
    for (p = 1; p <= np; p++) {
      step = 1; lo = parts[p]
      if (index(lo, ":")) { step = substr(lo, index(lo, ":") + 1) + 0; lo = substr(lo, 1, index(lo, ":") - 1) }
      hi = lo
      if (index(lo, "-")) { hi = substr(lo, index(lo, "-") + 1); lo = substr(lo, 1, index(lo, "-") - 1) }
      if (step < 1) step = 1
      for (i = lo + 0; i <= hi + 0; i += step) {
        id = a "_" i
        if ((id in wanted) && !(id in queue)) consume("squeue", id rest)
      }
    }
  }
  close(cmd)
}

# Tasks this backend cancelled (the record of kill, one file per batch): Slurm 22.05 and 24.11 drop
# a task cancelled inside its pending array record from squeue and never give it an sacct row
# of its own, while sacct keeps listing the range of the array.
function cancelled(    b, file, line) {
  print "@@cancelled"
  for (b in batches) {
    file = root "/" b "/cancelled"
    while ((getline line < file) > 0) if (line in wanted) print line
    close(file)
  }
}

# Jobs neither command knows (no accounting, MinJobAge passed): the last log line of the
# batch script still says how the payload ended.
function exits(    k, path, line) {
  print "@@exits"
  for (k = 1; k <= njobs; k++) {
    if (job[k] in queue || job[k] in accounted) continue
    path = batch[k] "/logs/" job[k] ".log"
    while ((getline line < (root "/" path)) > 0)
      if (line ~ /^intercede: exit code [0-9]/) print path ":" line
    close(root "/" path)
  }
}

# The chunk record of each batch, so the caller can check the id of a handle against its
# routing.
function chunks(    b, file, line, got) {
  for (b in batches) {
    file = root "/" b "/chunks"
    got = (getline line < file)
    if (got < 0) continue
    print "@@chunks " b
    if (got > 0) { print line; while ((getline line < file) > 0) print line }
    close(file)
  }
}

# Cancel only the arrays squeue shows with our user and job name ("@@ours"): a stale handle
# cannot cancel the job of someone else. The -u/--name filters of scancel are not used: with them
# Slurm 22.05 cancels a whole pending array when asked for one task. The record of what this
# call cancelled: the tasks of our arrays squeue listed live.
function cancel(    a, k, args, n, rc, worst, t, b, out) {
  for (a in mine) print "@@ours " a
  worst = 0; n = 0; args = ""
  for (k = 1; k <= nranges; k++) {
    split(ranges[k], t, "_")
    if (!(t[1] in mine)) continue
    args = args " " ranges[k]
    if (++n == 500) { rc = run("scancel" args " >&2"); if (rc != 0) worst = rc; n = 0; args = "" }
  }
  if (n > 0) { rc = run("scancel" args " >&2"); if (rc != 0) worst = rc }
  print "@@rc scancel " worst
  for (k = 1; k <= njobs; k++) {
    split(job[k], t, "_")
    if (!(t[1] in mine) || !(job[k] in queue) || queue[job[k]] ~ ("^(" ENVIRON["q_final"] ")")) continue
    # A batch folder that is gone must not end the reply: its writer still reads every line
    # (awk writing to a pipe nobody reads would die of SIGPIPE).
    out = "{ cat >> \"$q_root/" batch[k] "/cancelled\"; } 2>/dev/null || cat > /dev/null"
    print job[k] | out
    record[out] = 1
  }
  for (out in record) close(out)
  return worst
}

$1 == "J" {
  job[++njobs] = $2; batch[njobs] = $3; wanted[$2] = 1; batches[$3] = 1
  split($2, t, "_")
  if (!(t[1] in seen)) { seen[t[1]] = 1; arrays[++narrays] = t[1] }
  next
}
$1 == "C" { ranges[++nranges] = $2 }

END {
  root = ENVIRON["q_root"]; what = ENVIRON["q_what"]
  if (what == "cancel") { "id -un" | getline me; close("id -un") }
  status(); cancelled()
  if (what == "cancel") {
    if (cancel() != 0) { print "@@after"; status(); cancelled() } else print "@@after"
  } else {
    exits()
    if (what == "status+chunks") chunks()
  }
  print "@@end"
}
'
