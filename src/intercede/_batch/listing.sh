#!/bin/sh
# What output collection may take. $1 work root; stdin: "B <batch>" per batch, "P <path>"
# per job directory and log. Replies: "@@manifest <batch>", its manifest, "@@end"; with a
# chunk record "@@chunks <batch>", its "@@chunk" lines, "@@end"; then "@@find" and find's
# "%y %s %p\0%l\0" records, NUL-separated (names may hold newlines). A path that does not
# exist (a purged job) is simply absent from the answer.
cd "$1" || exit 3
t=$(mktemp) || exit 4
trap 'rm -f "$t"' EXIT
cat > "$t"
sed -n 's/^B //p' "$t" | while read -r b; do
  echo "@@manifest $b"; cat "$b/manifest.json" 2>/dev/null; echo; echo @@end
  if [ -f "$b/chunks" ]; then echo "@@chunks $b"; cat "$b/chunks"; echo @@end; fi
done
echo @@find
# shellcheck disable=SC2016 # $@ belongs to the inner sh
sed -n 's/^P //p' "$t" | xargs -r sh -c 'exec find "$@" -printf "%y %s %p\0%l\0"' sh 2>/dev/null
exit 0
