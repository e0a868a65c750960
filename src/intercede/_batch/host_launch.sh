# interCEde host scheduler, launcher of one batch (started detached by the submit, cwd = the
# work root): starts copy 0, 1, ... each as soon as one of the host's slots is free.
# $1 batch id, $2 copies, $3 slots.
#
# A slot is a lock on .host/slot.<k>, shared by every batch under the work root. The launcher
# takes it and hands the locked descriptor (fd 9) to the copy it starts, then closes its own:
# the slot stays taken exactly as long as the copy's job script runs, and a copy that dies in
# any way frees it. .host/launch.lock serialises launchers and kill, so a copy kill marked as
# killed while it waited is never started.
b=$1 n=$2 slots=$3
exec 8>".host/launch.lock" || exit 1
i=0
while [ "$i" -lt "$n" ]; do
  started=
  flock 8
  # the batch removed since (cleanup): nothing more to start
  [ -f "$b/job.sh" ] || exit 0
  # killed while waiting, or killed and then purged: never started
  if [ -e "$b/$i/killed" ] || { [ -f "$b/purged" ] && grep -qx "$i" "$b/purged"; }; then
    started=skipped
  else
    k=1
    while [ "$k" -le "$slots" ]; do
      exec 9>".host/slot.$k"
      if flock -n 9; then
        # setsid: the copy leads its own process group (kill signals the group) and session.
        mkdir -p "$b/$i" || exit 1
        setsid bash "$b/job.sh" "$i" </dev/null >"$b/logs/${b}_$i.log" 2>&1 8>&- &
        echo "$!" >"$b/$i/pid.tmp" && mv "$b/$i/pid.tmp" "$b/$i/pid"
        exec 9>&-
        started=yes
        break
      fi
      exec 9>&-
      k=$((k + 1))
    done
  fi
  flock -u 8
  if [ -n "$started" ]; then i=$((i + 1)); else sleep 1; fi
done
