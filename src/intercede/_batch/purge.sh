#!/bin/sh
# Purge jobs: remove each one's directory and log and record its index in <batch>/purged; a
# batch whose every copy is purged (the line count of <batch>/copies) goes whole: renamed into
# <work root>/.trash at once, unlinked by a detached rm.
# $1 work root; stdin: "<batch> <index> <log>" per job (relative; checked by the caller).
# Replies: "@@had <batch>/<index>" for each job not purged before, then "@@done".
cd "$1" 2>/dev/null || { echo @@done; exit 0; }
t=$(mktemp) || exit 4
trap 'rm -f "$t" "$t.b" "$t.new" "$t.rm"' EXIT
cat >"$t"
: >"$t.rm"
# .trash/<purge's pid>: batches this purge removes whole; one a background rm never finished
# (a reboot) is swept by a later purge after ten minutes.
mkdir -p .trash && trash=.trash/p$$ && mkdir -p "$trash" || exit 5
find .trash -mindepth 1 -maxdepth 1 -mmin +10 -exec rm -rf {} + 2>/dev/null
gone=
cut -d' ' -f1 "$t" | sort -u >"$t.b"
while read -r b; do
  [ -d "$b" ] || continue
  if [ ! -f "$b/copies" ]; then
    # a batch staged before the copies record (one directory per copy from the start): a
    # job was there if its directory was; the batch stays (cleanup_batch removes it)
    awk -v b="$b" '$1 == b { print b "/" $2; print $3 }' "$t" >>"$t.rm"
    awk -v b="$b" '$1 == b { print b "/" $2 }' "$t" | while read -r d; do
      [ -d "$d" ] && echo "@@had $d"
    done
    continue
  fi
  touch "$b/purged" || exit 5
  n=$(wc -l <"$b/copies")
  awk -v b="$b" -v n="$n" 'FILENAME == ARGV[1] { seen[$0] = 1; next }
    $1 == b && !($2 in seen) { seen[$2] = 1; if ($2 + 0 < n + 0) print $2 }' "$b/purged" "$t" >"$t.new" || exit 5
  cat "$t.new" >>"$b/purged" || exit 5
  sed "s|^|@@had $b/|" "$t.new"
  if [ "$(wc -l <"$b/purged")" -ge "$n" ]; then
    # The whole batch: renamed away at once (nothing of it is left at its path), unlinked
    # in the background (thousands of inodes take seconds to unlink, and nobody waits).
    mv -f "$b" "$trash/$b.$$" || rm -rf "$b"
    gone=1
  else
    awk -v b="$b" '$1 == b { print b "/" $2; print $3 }' "$t" >>"$t.rm"
  fi
done <"$t.b"
tr '\n' '\0' <"$t.rm" | xargs -0 -r rm -rf --
if [ -n "$gone" ]; then
  if command -v setsid >/dev/null 2>&1; then
    setsid rm -rf "$trash" </dev/null >/dev/null 2>&1 &
  else
    rm -rf "$trash"
  fi
else
  rmdir "$trash"
fi
echo @@done
