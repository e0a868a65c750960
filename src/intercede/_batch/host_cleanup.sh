# interCEde host scheduler, cleanup of a submit in doubt: remove <work root>/<batch> unless
# its submit still runs or one of its copies waits or runs.
# $1 work root, $2 batch id (32 hex digits, checked by the caller).
# Reply: @@busy, "@@live <job id> <Waiting|Running>" lines (nothing removed), @@removed or @@gone.
# uses: host_batch.sh
cd "$1" 2>/dev/null || { echo @@gone; exit 0; }
b=$2
if [ -f "$b/submitting" ] && kill -0 "$(cat "$b/submitting")" 2>/dev/null; then
  echo @@busy; exit 0
fi
[ -e "$b" ] || { echo @@gone; exit 0; }
mkdir -p .host && exec 8>".host/launch.lock" || exit 5
flock -w 20 8 || { echo "the host launch lock stayed busy" >&2; exit 5; }
leaders=" $(ps -u "$(id -u)" -o pid= -o sid= -o stat= | awk '$1 == $2 && $3 !~ /^Z/ { printf "%s ", $1 }')"
alive() { case "$leaders" in *" $1 "*) return 0 ;; esac; return 1; }
up=
[ -f "$b/launcher.pid" ] && read -r p <"$b/launcher.pid" && alive "$p" && up=1
live=
n=0
[ -f "$b/copies" ] && n=$(wc -l <"$b/copies")
i=0
while [ "$i" -lt "$n" ]; do
  d=$b/$i id=${b}_$i
  i=$((i + 1))
  if [ -e "$d/killed" ] || [ -f "$d/exit" ]; then continue; fi
  if [ -f "$d/pid" ]; then
    read -r p <"$d/pid" && alive "$p" && { echo "@@live $id Running"; live=1; }
  elif [ -n "$up" ] && has_copy "$b" "${d##*/}"; then
    # not started yet (its directory is made when it starts), not purged
    echo "@@live $id Waiting"; live=1
  fi
done
[ -n "$live" ] && exit 0
rm -rf "$b" && echo @@removed
