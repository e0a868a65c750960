#!/bin/sh
# What output collection may take. $1 work root; stdin: "B <batch>" per batch, "P <path>"
# per job directory and log. Replies: "@@manifest <batch>", its manifest, "@@end"; with a
# chunk record "@@chunks <batch>", its "@@chunk" lines, "@@end"; "@@copies <batch> <n>" (the
# line count of its copies record) and "@@purged <batch>", its purged copies, "@@end"; then
# "@@find" and find's
# "%y %s %p\0%l\0" records, NUL-separated (names may hold newlines). A path that does not
# exist (a job that never started, or was purged) is simply absent from the answer.
# One awk reads the batches' files and hands the paths to find (through xargs, so any number
# of them): every process forked here is time on the caller's clock.
cd "$1" || exit 3
exec awk '
$1 == "B" { batches[++nb] = substr($0, 3); next }
$1 == "P" { paths[++np] = substr($0, 3) }
END {
  for (i = 1; i <= nb; i++) {
    b = batches[i]
    print "@@manifest " b
    file = b "/manifest.json"
    while ((getline line < file) > 0) print line
    close(file)
    print ""
    print "@@end"
    # how many copies the batch has and which were purged: a copy without a directory that
    # the batch has and nobody purged has not started yet (its output is empty, not gone)
    file = b "/copies"
    n = 0
    while ((getline line < file) > 0) n++
    close(file)
    print "@@copies " b " " n
    file = b "/purged"
    print "@@purged " b
    while ((getline line < file) > 0) print line
    close(file)
    print "@@end"
    file = b "/chunks"
    got = (getline line < file)
    if (got >= 0) {
      print "@@chunks " b
      if (got > 0) { print line; while ((getline line < file) > 0) print line }
      print "@@end"
    }
    close(file)
  }
  print "@@find"
  fflush()
  find = "xargs -r sh -c \047exec find \"$@\" -printf \"%y %s %p\\0%l\\0\"\047 sh 2>/dev/null"
  for (i = 1; i <= np; i++) print paths[i] | find
  close(find)
}
'
