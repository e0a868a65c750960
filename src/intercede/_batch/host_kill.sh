# interCEde host scheduler, kill: each job's process group, or its place in the queue.
# $1 work root; stdin: "<job id> <batch> <index>" per job.
# Reply: "<job id> <what>" per job, what = killed (it was running: its group got SIGTERM,
# and SIGKILL if still there after 3 s), dequeued (it was waiting: it will never start),
# killed-before (an earlier kill did it), ended <rc> / lost / unknown (nothing to do);
# then "@@end".
# uses: host_batch.sh
cd "$1" 2>/dev/null || { sed 's/ .*/ unknown/'; echo @@end; exit 0; }
mkdir -p .host && exec 8>".host/launch.lock" || exit 5
flock -w 20 8 || { echo "the host launch lock stayed busy" >&2; exit 5; }
# Process groups with a live (not zombie) member; no copy starts while we hold the lock.
groups_alive() { ps -u "$(id -u)" -o pgid= -o stat= | awk '$2 !~ /^Z/ { printf "%s ", $1 }'; }
live=" $(groups_alive)"
groups=
while read -r id b i; do
  d=$b/$i
  if [ ! -d "$d" ] && ! has_copy "$b" "$i"; then echo "$id unknown"; continue; fi
  if [ -e "$d/killed" ]; then echo "$id killed-before"; continue; fi
  if [ -f "$d/exit" ]; then read -r rc <"$d/exit"; echo "$id ended $rc"; continue; fi
  if [ ! -f "$d/pid" ]; then
    # Not started: the launcher checks this mark under the lock we hold, so it never starts.
    mkdir -p "$d" && : >"$d/killed" && echo "$id dequeued" || echo "$id unknown"; continue
  fi
  read -r p <"$d/pid"
  l=
  [ -f "$b/launcher.pid" ] && read -r l <"$b/launcher.pid"
  # Its group lives; or the copy is so new that its setsid is under way (a live child of its
  # launcher, not yet its group's leader). A recycled pid is neither: never signalled.
  if case "$live" in *" $p "*) true ;; *) false ;; esac ||
    ps -o ppid= -o stat= -p "$p" 2>/dev/null | awk -v l="$l" '$1 == l && $2 !~ /^Z/ { f = 1 } END { exit !f }'; then
    : >"$d/killed"
    kill -s TERM -- "-$p" 2>/dev/null || kill -s TERM "$p" 2>/dev/null
    groups="$groups $p"
    echo "$id killed"
  else
    echo "$id lost"
  fi
done
flock -u 8
# Wait for the groups to end (zombies do not count: nobody may reap them soon).
n=0
while [ -n "$groups" ] && [ "$n" -lt 30 ]; do
  live=" $(groups_alive)"
  left=
  for p in $groups; do
    case "$live" in *" $p "*) left="$left $p" ;; esac
  done
  groups=$left
  [ -n "$groups" ] && sleep 0.1
  n=$((n + 1))
done
for p in $groups; do kill -s KILL -- "-$p" 2>/dev/null; done
echo @@end
