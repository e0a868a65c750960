#!/bin/sh
# tar -c of the NUL-separated paths on stdin, relative to $1, to stdout. Hard links are stored
# as content (a link member would otherwise stand for a file we may not have asked for), and
# tar's exit code and messages are kept: a file that vanished, shrank or changed while read is
# named on stderr, so the caller can fail exactly the job it belongs to.
cd "$1" && exec tar -c -f - --null --no-recursion --hard-dereference -T -
