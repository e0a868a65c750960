# interCEde host scheduler, counts: the live jobs under the work root.
# $1 work root. Reply: "@@counts <running> <waiting>".
# Waiting: copies of a batch whose launcher lives that it has not started yet (no directory
# or no pid file, not killed, not purged).
cd "$1" 2>/dev/null || { echo "@@counts 0 0"; exit 0; }
leaders=" $(ps -u "$(id -u)" -o pid= -o sid= -o stat= | awk '$1 == $2 && $3 !~ /^Z/ { printf "%s ", $1 }')"
alive() { case "$leaders" in *" $1 "*) return 0 ;; esac; return 1; }
running=0 waiting=0
for l in */launcher.pid; do
  [ -f "$l" ] || continue
  b=${l%/launcher.pid}
  up=
  read -r p <"$l" && alive "$p" && up=1
  i=0 n=0
  [ -n "$up" ] && [ -f "$b/copies" ] && n=$(wc -l <"$b/copies")
  for d in "$b"/[0-9]*; do
    [ -d "$d" ] || continue
    i=$((i + 1))
    if [ -e "$d/killed" ] || [ -f "$d/exit" ]; then continue; fi
    if [ -f "$d/pid" ]; then
      read -r p <"$d/pid" && alive "$p" && running=$((running + 1))
    elif [ -n "$up" ]; then
      waiting=$((waiting + 1))
    fi
  done
  # not started at all (no directory yet) and not purged
  if [ "$n" -gt "$i" ]; then
    p=0
    [ -f "$b/purged" ] && p=$(wc -l <"$b/purged")
    [ "$n" -gt $((i + p)) ] && waiting=$((waiting + n - i - p))
  fi
done
echo "@@counts $running $waiting"
