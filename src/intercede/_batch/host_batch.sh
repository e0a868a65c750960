# shellcheck shell=sh
# Shell functions of the host scripts that look at copies (sent in front of them).
#
# has_copy <batch> <index>: whether the batch has that copy (an index below the line count of
# <batch>/copies) and it was not purged (<batch>/purged). A copy has no directory until its
# launcher starts it (or kill marks it), so a missing directory alone does not say the copy
# is unknown. The batch's records are read once for a run of lines of the same batch.
hb='' hn=0 hp=''
has_copy() {
  if [ "$1" != "$hb" ]; then
    hb=$1 hn=0 hp=" "
    [ -f "$1/copies" ] && hn=$(wc -l <"$1/copies")
    [ -f "$1/purged" ] && hp=" $(tr '\n' ' ' <"$1/purged")"
  fi
  [ "$2" -lt "$hn" ] || return 1
  case "$hp" in *" $2 "*) return 1 ;; esac
  return 0
}
