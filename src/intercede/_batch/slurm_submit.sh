#!/bin/sh
# Unpack the batch's tar (stdin) under the work root and `sbatch --array` every chunk of copies,
# in one round trip whatever the number of copies.
#   $1 work root   $2 batch id   $3 copies   $4 MaxArraySize ("" = ask scontrol once)
#   $5 the limit to assume when scontrol does not say   $6... the sbatch options
# Replies: "@@max <n>" (when asked), "@@chunk <offset> <size> <array id>" per accepted chunk
# (also appended to <batch>/chunks as it happens), "@@fail <offset>" then sbatch's message.
# Exit codes: 90-92 staging failed before any sbatch ran (nothing queued, nothing left);
# 93 sbatch refused a chunk (the records of the copies from that chunk on were removed: the
# batch's copies file then counts only the copies queued, and no secret of a copy that will
# never run stays behind).
umask 077
root=$1 b=$2 n=$3 max=$4 fallback=$5
shift 5
mkdir -p "$root" && cd "$root" || exit 90
mkdir "$b" || exit 91
echo $$ > "$b/submitting"
tar -x -f - -C "$b" || { rm -rf "$b"; exit 92; }
if [ -z "$max" ]; then
max=$(scontrol show config 2>/dev/null | sed -n 's/^MaxArraySize *= *\([0-9][0-9]*\).*/\1/p')
[ -n "$max" ] || max=$fallback
echo "@@max $max"
fi
o=0
while [ "$o" -lt "$n" ]; do
  k=$((n - o)); [ "$k" -gt "$max" ] && k=$max
  if id=$(sbatch "$@" --array=0-$((k - 1)) "$PWD/$b/job.sh" "$o" 2>"$b/sbatch.err"); then
    echo "@@chunk $o $k $id" >> "$b/chunks"
    echo "@@chunk $o $k $id"
  else
    echo "@@fail $o"; cat "$b/sbatch.err"
    if [ "$o" -eq 0 ]; then rm -rf "$b"; else
      for f in copies secrets; do
        [ -f "$b/$f" ] || continue
        head -n "$o" "$b/$f" >"$b/$f.tmp" && mv -f "$b/$f.tmp" "$b/$f"
      done
    fi
    exit 93
  fi
  o=$((o + k))
done
rm -f "$b/sbatch.err" "$b/submitting"
