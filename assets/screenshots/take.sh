#!/usr/bin/env bash
# Re-renders the README's screenshots from the real app in a real X window
# (Xvfb + Mesa), on a first launch (fresh config: the sandbox and its book
# devices), clicked with xdotool. Usage: bash assets/screenshots/take.sh [bin]
set -eu
BIN=${1:-target/release/mqscope}
OUT=$(cd "$(dirname "$0")" && pwd)
D=$(mktemp -d)
export HOME=$D/home XDG_DATA_HOME=$D/data XDG_CONFIG_HOME=$D/config MQSCOPE_CONFIG_DIR=$D/profiles
mkdir -p "$HOME"
for n in $(seq 60 69); do [ -e /tmp/.X$n-lock ] || break; done
Xvfb ":$n" -screen 0 1280x800x24 -nolisten tcp >/dev/null 2>&1 & xp=$!
sleep 1
DISPLAY=":$n" "$BIN" >"$D/app.log" 2>&1 & ap=$!
trap 'kill $ap $xp 2>/dev/null; wait 2>/dev/null; rm -rf "$D"' EXIT
click() { DISPLAY=":$n" xdotool mousemove "$1" "$2"; sleep 0.4; DISPLAY=":$n" xdotool mousedown 1; sleep 0.15; DISPLAY=":$n" xdotool mouseup 1; sleep 0.6; }
shot() { DISPLAY=":$n" xdotool mousemove 1275 795; sleep 2; DISPLAY=":$n" import -window root "$OUT/$1"; echo "saved $OUT/$1"; }
sleep 8
# Explorer: surfboards › surfboard01 › speedmph with its history.
click 16 578
click 32 601
click 120 647
sleep 3
shot explorer.png
# The cloud broker opened beside the sandbox, then both side by side.
click 373 133
sleep 6
click 135 80
sleep 2
shot side_by_side.png
# The timeline of the sandbox connection.
click 137 52
click 284 80
shot timeline.png
# Learn.
click 506 80
shot learn.png
# Plots: the book's surfing competition, after a few rides' seconds.
click 215 80
click 819 116
sleep 20
shot plots.png
# QoS lab: 20 messages at each level, measured.
click 362 80
click 301 112
sleep 12
shot qos_lab.png
