#!/bin/sh
# Unpack the tar on stdin under $1 (made private if new), in one channel.
umask 077 && mkdir -p "$1" && tar -x -f - -C "$1"
