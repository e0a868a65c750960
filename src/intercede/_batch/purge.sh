#!/bin/sh
# Remove job directories and logs. $1 work root; stdin: "<job dir> <log>" per job (relative).
# Replies: "@@had <job dir>" for each directory that existed, then "@@done".
cd "$1" 2>/dev/null || { echo @@done; exit 0; }
t=$(mktemp) || exit 4
trap 'rm -f "$t"' EXIT
cat > "$t"
while read -r d _; do [ -d "$d" ] && echo "@@had $d"; done < "$t"
tr ' ' '\n' < "$t" | xargs -r rm -rf --
# a batch whose last copy is gone takes its script, inputs and logs with it
cut -d/ -f1 "$t" | sort -u | while read -r b; do
  set -- "$b"/[0-9]*; [ -e "$1" ] || rm -rf "$b"
done
echo @@done
