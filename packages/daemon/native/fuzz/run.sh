#!/bin/sh
# Fuzzes the shim's frame decoder for $1 seconds (30 by default), from a few
# valid frames written here (the corpus directory is git-ignored), and fails
# on the first crash, leak or sanitizer report.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
seconds=${1:-30}
bin="$here/../build/fuzz-frames"
corpus="$here/corpus"
mkdir -p "$corpus"
# HELLO; SPAWN of /bin/true with argv, env, cwd and memo; SIGNAL; CREDIT; EXIT.
printf '\011\000\000\000\001PRMS\002\000\000\000' >"$corpus/seed-hello"
printf '\104\000\000\000\002\001\000\000\000\003\000\000\000\350\003\000\000\350\003\000\000\001\000\000\000n\011\000\000\000/bin/true\001\000\000\000\004\000\000\000true\001\000\000\000\003\000\000\000A=1\001\000\000\000/\001\000\000\000m' >"$corpus/seed-spawn"
printf '\012\000\000\000\003\001\000\000\000\017\000\000\000\001' >"$corpus/seed-signal"
printf '\012\000\000\000\004\001\000\000\000\001\000\000\001\000' >"$corpus/seed-credit"
printf '\001\000\000\000\014' >"$corpus/seed-exit"
cd "$here/../build"
exec "$bin" -max_total_time="$seconds" -max_len=65536 -timeout=10 -print_final_stats=1 "$corpus"
