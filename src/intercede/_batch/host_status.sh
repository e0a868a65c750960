# interCEde host scheduler, status: each job's state from its own files.
# $1 work root; stdin: "<job id> <batch> <index>" per job.
# Reply: "<job id> <state> [exit code]" per job, state W (waiting for a slot), R (running),
# E (ended: its exit code follows), K (killed by interCEde), L (its launcher died before
# starting it), X (its process is gone without an exit code), U (no such job); then "@@end".
# uses: host_batch.sh
cd "$1" 2>/dev/null || { sed 's/ .*/ U/'; echo @@end; exit 0; }
# A copy and a launcher each lead their own session (setsid), which a recycled pid of
# another program almost never does; a zombie is not alive. One ps for all; a pid missing from it is looked at
# alone (it may have started since), where a child of its launcher still being set up counts.
leaders=" $(ps -u "$(id -u)" -o pid= -o sid= -o stat= | awk '$1 == $2 && $3 !~ /^Z/ { printf "%s ", $1 }')"
alive() {
  case "$leaders" in *" $1 "*) return 0 ;; esac
  # shellcheck disable=SC2046 # two numbers and a state
  set -- "$1" "$2" $(ps -o sid= -o ppid= -o stat= -p "$1" 2>/dev/null)
  case "$5" in "" | Z*) return 1 ;; esac
  [ "$3" = "$1" ] || [ "$4" = "$2" ]
}
ended() { [ -f "$1/exit" ] && read -r rc <"$1/exit" && echo "$id E $rc"; }
while read -r id b i; do
  d=$b/$i
  if [ -d "$d" ]; then
    if [ -e "$d/killed" ]; then echo "$id K"; continue; fi
    ended "$d" && continue
  elif ! has_copy "$b" "$i"; then
    echo "$id U"; continue
  fi
  l=
  [ -f "$b/launcher.pid" ] && read -r l <"$b/launcher.pid"
  # The launcher before the pid file: alive then and no pid file after means the copy had
  # not started yet (waiting), never that it was lost.
  up=
  if [ ! -f "$d/pid" ] && [ -n "$l" ] && alive "$l" ""; then up=1; fi
  if [ -f "$d/pid" ]; then
    read -r p <"$d/pid"
    if alive "$p" "$l"; then echo "$id R"; continue; fi
    ended "$d" || echo "$id X"   # it may have written its exit code since we looked
  elif [ -n "$up" ]; then
    echo "$id W"
  else
    echo "$id L"
  fi
done
echo @@end
