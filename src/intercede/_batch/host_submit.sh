# interCEde host scheduler, submit: unpack one batch (its tar on stdin) and start its
# launcher detached, in one round trip.
# $1 work root, $2 batch id, $3 copies, $4 slots (0: the host's processor count), $5 the
# launcher (host_launch.sh's text).
# Reply: "@@slots <n>", "@@started <launcher pid>"; exit 90/91/92 (nothing started, nothing left behind),
# 94 (flock, setsid or ps missing on the host).
umask 077
root=$1 b=$2 n=$3 slots=$4 launcher=$5
for tool in flock setsid ps; do
  command -v "$tool" >/dev/null 2>&1 || { echo "this host has no $tool (util-linux, procps)" >&2; exit 94; }
done
[ "$slots" -gt 0 ] 2>/dev/null || slots=$(nproc 2>/dev/null) || slots=1
echo "@@slots $slots"
mkdir -p "$root/.host" && cd "$root" || exit 90
mkdir "$b" || exit 91
echo "$$" >"$b/submitting"
tar -x -f - -C "$b" || { rm -rf "$b"; exit 92; }
printf '%s\n' "$launcher" >"$b/launch.sh" || { rm -rf "$b"; exit 92; }
# Own session (setsid): the launcher and every copy survive the SSH session; no descriptor of
# this command stays open, so the channel closes as soon as this script ends.
setsid sh "$b/launch.sh" "$b" "$n" "$slots" </dev/null >"$b/launcher.log" 2>&1 &
echo "$!" >"$b/launcher.pid"
echo "@@started $!"
rm -f "$b/submitting"
