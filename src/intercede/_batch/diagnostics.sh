#!/bin/sh
# The tail of one file per job into one tar on stdout: "d/<id>" its content, "w/<id>" why it
# was not read, "c/<batch>" each batch's chunk record (to check a handle's id).
#   $1 work root   $2 the name's suffix as a printf format of octal escapes (any bytes)
#   $3 "stream" (the file must be the path itself) or "file" (it must lie in the job's
#      working directory, itself a real directory at its own path)   $4 bytes to keep
# stdin: "<job id> <path relative to the work root>" per job.
cd "$1" || exit 3
R=$(pwd -P) || exit 3
t=$(mktemp -d) || exit 4
trap 'rm -rf "$t"' EXIT
# shellcheck disable=SC2059 # the format is the octal spelling of the name
s=$(printf "$2"; echo x); s=${s%x}
kind=$3 keep=$4
mkdir "$t/d" "$t/w" "$t/c" || exit 4
cat > "$t/in"
inside() {
  if [ "$kind" = stream ]; then
    [ "$r" = "$R/$p" ]
  else
    [ "$w" = "$R/$p" ] && case "$r" in "$w"/*) ;; *) false ;; esac
  fi
}
while read -r id p; do
  f="$p$s"
  [ -e "$f" ] || [ -L "$f" ] || continue
  r=$(realpath -e -- "$f" 2>/dev/null); w=$(realpath -e -- "$p" 2>/dev/null)
  if ! { [ -n "$r" ] && inside; }; then
    echo "leads outside the job's directory (a link?): not read" > "$t/w/$id"
  elif [ ! -f "$r" ]; then
    echo "is not a regular file: not read" > "$t/w/$id"
  elif ! tail -c "$keep" -- "$r" > "$t/d/$id" 2>/dev/null; then
    rm -f "$t/d/$id"; echo "cannot be read (permission denied?)" > "$t/w/$id"
  fi
done < "$t/in"
cut -d" " -f2 "$t/in" | cut -d/ -f1 | sort -u | while read -r b; do
  [ -f "$b/chunks" ] && cp "$b/chunks" "$t/c/$b"
done
tar -c -f - -C "$t" d w c
