#!/usr/bin/env bash
# What a calm window costs: the default first launch (a fresh config, so the
# sandbox starts with its simulated devices and the window connects to it) in a
# real X window under Xvfb with Mesa's software renderer — what people get in
# VMs, remote desktops and containers — measured as % of one core per tab.
# Goal (issue #12 §3): ≤ 15 % on every tab.
# Needs (Debian): xvfb xdotool imagemagick. Usage:
#   bash benches/calm.sh [path/to/mqscope]      (default target/release/mqscope)
#   SECS=30 bash benches/calm.sh                (seconds measured per tab, default 20)
# Screenshots of each tab land in $OUT (default /tmp/mqscope-calm) to check
# that the clicks landed.
set -u
BIN=${1:-target/release/mqscope}
SECS=${SECS:-20}
OUT=${OUT:-/tmp/mqscope-calm}
mkdir -p "$OUT"
for tool in Xvfb xdotool import bc; do
  command -v $tool >/dev/null || { echo "calm.sh: $tool is missing (apt-get install xvfb xdotool imagemagick bc)" >&2; exit 2; }
done
[ -x "$BIN" ] || { echo "calm.sh: no executable at $BIN (cargo build --release)" >&2; exit 2; }
D=$(mktemp -d)
# A first launch: nothing remembered, no profiles.
export HOME=$D/home XDG_DATA_HOME=$D/data XDG_CONFIG_HOME=$D/config MQSCOPE_CONFIG_DIR=$D/profiles
mkdir -p "$HOME"
for n in $(seq 70 99); do [ -e /tmp/.X$n-lock ] || break; done
Xvfb ":$n" -screen 0 1280x800x24 -nolisten tcp >/dev/null 2>&1 & xp=$!
sleep 1
DISPLAY=":$n" MQSCOPE_FRAME_STATS=1 "$BIN" >"$OUT/app.log" 2>&1 & ap=$!
cleanup() { kill $ap $xp 2>/dev/null; wait 2>/dev/null; rm -rf "$D"; }
trap cleanup EXIT
sleep 6
kill -0 $ap 2>/dev/null || { echo "calm.sh: the app exited; its log:" >&2; cat "$OUT/app.log" >&2; exit 1; }
hz=$(getconf CLK_TCK)
ticks() { awk '{print $14+$15}' /proc/$ap/stat; }
status=0
# Tab positions on the default first launch (1280×800, one open connection,
# so the tab strip is the third row).
for tab in "Explorer:44" "Side by side:135" "Plots:215" "Timeline:284" "QoS lab:362"; do
  name=${tab%:*}; x=${tab#*:}
  # Move, then press and release in separate frames (a click inside one
  # frame can be missed).
  DISPLAY=":$n" xdotool mousemove "$x" 80; sleep 0.5
  DISPLAY=":$n" xdotool mousedown 1; sleep 0.2
  DISPLAY=":$n" xdotool mouseup 1; sleep 0.2
  # The pointer rests away from the widgets, as a user reading the window.
  DISPLAY=":$n" xdotool mousemove 1275 795
  sleep 3
  f0=$(grep -c '^frames:' "$OUT/app.log")
  t0=$(ticks); s0=$(date +%s.%N)
  sleep "$SECS"
  t1=$(ticks); s1=$(date +%s.%N)
  pct=$(echo "scale=1; 100*($t1-$t0)/$hz/($s1-$s0)" | bc)
  # Frames drawn: the 5 s counts printed while this tab was measured.
  fps=$(grep '^frames:' "$OUT/app.log" | tail -n +$((f0 + 1)) | awk '{f+=$2; s+=$4} END {if (s > 0) printf "%.1f", f/s; else print "?"}')
  DISPLAY=":$n" import -window root "$OUT/${name// /_}.png"
  verdict=ok; [ "$(echo "$pct > 15" | bc)" = 1 ] && { verdict="over the 15 % goal"; status=1; }
  printf '%-13s %5s %% of one core over %s s, %s frames/s  (%s)\n' "$name" "$pct" "$SECS" "$fps" "$verdict"
done
exit $status
