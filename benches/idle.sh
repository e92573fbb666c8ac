#!/usr/bin/env bash
# Idle cost and cold start of the real window: the release app connected to an
# idle Mosquitto, nothing published. Needs (Debian): xvfb xdotool imagemagick
# mosquitto. Usage: bash benches/idle.sh [path/to/mqscope]   (default target/release/mqscope)
set -u
BIN=${1:-target/release/mqscope}
D=$(mktemp -d)
cat > $D/profiles.ron <<'R'
(version: 1, profiles: [(name: "idle broker", host: "127.0.0.1", port: 18899, client_id: "mqscope-idle", subscriptions: [(filter: "#", qos: AtMostOnce)])])
R
mosquitto -p 18899 >/dev/null 2>&1 & mp=$!
Xvfb :89 -screen 0 1280x800x24 -nolisten tcp >/dev/null 2>&1 & xp=$!
sleep 1
for i in 1 2 3; do DISPLAY=:89 MQSCOPE_CONFIG_DIR=$D MQSCOPE_STARTUP_PROBE=1 $BIN 2>/dev/null; done
DISPLAY=:89 MQSCOPE_CONFIG_DIR=$D $BIN >/dev/null 2>&1 & ap=$!
sleep 3
DISPLAY=:89 xdotool mousemove 312 18 click 1   # Connect
sleep 5
ticks() { awk '{print $14+$15}' /proc/$ap/stat; }
t0=$(ticks); s0=$(date +%s.%N)
sleep 30
t1=$(ticks); s1=$(date +%s.%N)
hz=$(getconf CLK_TCK)
echo "idle connected window: $(echo "scale=2; 100*($t1-$t0)/$hz/($s1-$s0)" | bc)% of one core over 30 s (CPU $(echo "scale=2; ($t1-$t0)/$hz" | bc) s)"
DISPLAY=:89 import -window root /tmp/idle.png
kill $ap $mp $xp 2>/dev/null; wait 2>/dev/null
