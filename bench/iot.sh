#!/usr/bin/env bash
# bench/iot.sh: bffd's IoT BFF (MQTT through mosquitto, plain CoAP) against ceilings measured in the same run,
# and bffd's memory with many device keys and CoAP observers.
#
#   (a) MQTT telemetry at QoS 1 from many devices (a bounded window of readings outstanding each), through
#       mosquitto into bffd with the embedded inventory: readings acknowledged per second (the device sees
#       iot/v1/{device}/ack), against what mosquitto_sub (QoS 1, iot/v1/+/telemetry) drains from an identical
#       broker fed by the same publisher with the same window. Every reading must be acknowledged (devices
#       send a reading again, same seq, after 5 s of silence); shelf_readings must hold every one. A second,
#       diagnostic ceiling: the same round trip with a responder that acks every reading at once
#       (bench_iot_load mqtt-echo), which shows how much of the exchange is the broker's.
#   (b) CoAP CON GET /s/{shelf}?d=&k= with a fixed number outstanding: bffd against libcoap's example server
#       (coap-server-openssl) answering each shelf's very bytes, same load client; req/s and p99.
#   (c) bffd's resident memory with 10,000 device keys (each used once) and 1,000 CoAP observers.
#
# Run through `./bff bench iot` (it builds first and sets BFF_BUILD_DIR). Settings, from the environment:
#   BENCH_DURATION (10s)  BENCH_ROUNDS (5)  BENCH_WARMUP_S (2)  BENCH_KEEP (1: keep the work directory)
#   BENCH_KEYS (10000)  BENCH_MQTT_DEVICES (1000)  BENCH_MQTT_WINDOW (4)
#   BENCH_COAP_DEVICES (1000)  BENCH_COAP_OUTSTANDING (32)  BENCH_COAP_SOCKETS (8)
#   BENCH_COAP_IDLE_SESSIONS (1000): one more run of each CoAP server with that many idle client sessions (0: none)
#   BENCH_OBSERVERS (1000)  BENCH_OBSERVER_SOCKETS (250)
#   BENCH_QUIET_WAIT_S (120): how long each run waits for other load on the machine to pass
#   BENCH_ONLY: all (default) | mqtt | coap | fleet | memory
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${BFF_BUILD_DIR:-$ROOT/build}"
[ -d "$BUILD" ] && BUILD="$(cd "$BUILD" && pwd)"
BIN="$BUILD/bin"

DURATION_S="${BENCH_DURATION:-10s}"; DURATION_S="${DURATION_S%s}"
ROUNDS="${BENCH_ROUNDS:-5}"
WARMUP_S="${BENCH_WARMUP_S:-2}"
KEYS="${BENCH_KEYS:-10000}"
MQTT_DEVICES="${BENCH_MQTT_DEVICES:-1000}"
MQTT_WINDOW="${BENCH_MQTT_WINDOW:-4}"
COAP_DEVICES="${BENCH_COAP_DEVICES:-1000}"
COAP_OUTSTANDING="${BENCH_COAP_OUTSTANDING:-32}"
COAP_SOCKETS="${BENCH_COAP_SOCKETS:-8}"
COAP_IDLE_SESSIONS="${BENCH_COAP_IDLE_SESSIONS:-1000}"
OBSERVERS="${BENCH_OBSERVERS:-1000}"
OBSERVER_SOCKETS="${BENCH_OBSERVER_SOCKETS:-250}"
ONLY="${BENCH_ONLY:-all}"
QUIET_WAIT_S="${BENCH_QUIET_WAIT_S:-120}"

readonly MQTT_TARGET_RATIO="0.7"   # bffd's acknowledged readings against the subscriber's drain
readonly COAP_TARGET_RATIO="0.8"   # bffd's GET /s/{shelf} against coap-server-openssl
# Keys of the bench may not be refused by their token bucket: the limiter's cost is measured, not its limit.
readonly KEY_RATE=100000
readonly KEY_BURST=100000
readonly START_TIMEOUT_S=120       # first start seeds the data directory
readonly DRAIN_TIMEOUT_S=30        # after a run, how long the last readings may take to be acknowledged
readonly RESEND_AFTER_S=5          # a device sends a reading again after this long without its ack
readonly CEILING_MAX_RESOURCES=20000  # coap-server's dynamic resources (one per shelf)
readonly SINGLE_DURATION_S=5      # the one-device latency runs
readonly KEYS_ADD_SAMPLES=5        # `bffd keys add` calls timed to show what provisioning one by one costs
readonly BROKER_MAX_QUEUED=10000000
readonly QUIET_BUSY_PCT=15         # CPU use of the idle machine above which a run's figure is suspect

WORK="$(mktemp -d "${TMPDIR:-/tmp}/bff-bench-iot.XXXXXX")"
DATA="$WORK/data"
PIDS=()

log() { printf '[bench iot] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Shared helpers (cleanup, start, stop_process, wait_for_line, json_field, machine_load, cpu_busy_pct, median).
# shellcheck source=bench/lib.bash
source "$ROOT/bench/lib.bash"
trap cleanup EXIT
trap 'exit 130' INT TERM

# json_object LINE FIELD: a flat object field ("errors":{...}) as its text.
json_object() { printf '%s\n' "$1" | sed -n 's/.*"'"$2"'":\({[^}]*}\).*/\1/p' | head -n1; }



# wait_quiet LABEL: between runs the servers idle, so anything busy now is other work sharing the cores. Give
# it a while to finish; flag the run when it does not, or when compilers run.
wait_quiet() {
  local label="$1" busy waited=0
  busy="$(cpu_busy_pct)"
  while [ "$busy" -gt "$QUIET_BUSY_PCT" ] && [ "$waited" -lt "$QUIET_WAIT_S" ]; do
    [ "$waited" -eq 0 ] && log "$label: the machine is ${busy}% busy; waiting up to ${QUIET_WAIT_S}s for it to calm down"
    sleep 2; waited=$((waited + 3))
    busy="$(cpu_busy_pct)"
  done
  RUN_FLAG=""
  if [ "$busy" -gt "$QUIET_BUSY_PCT" ]; then
    log "warning: $label starts with the machine ${busy}% busy; its figure is suspect"; RUN_FLAG="busy"
  fi
  if [ "$(pgrep -c cc1plus || true)" -gt 0 ]; then
    log "warning: $label starts while compilers run; its figure is suspect"; RUN_FLAG="compilers"
  fi
}

# after_run LABEL: flags a run that ended while compilers ran.
after_run() {
  if [ "$(pgrep -c cc1plus || true)" -gt 0 ]; then
    log "warning: $1 ended while compilers run; its figure is suspect"; RUN_FLAG="compilers"
  fi
  [ -z "$RUN_FLAG" ] || FLAGGED+=("$1 ($RUN_FLAG)")
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "nan" }'; }
verdict() { awk -v r="$1" -v t="$2" 'BEGIN { print (r >= t) ? "met" : "MISSED" }'; }

# cpu_ticks PID: user + system clock ticks a process used so far (all its threads).
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
ticks_to_s() { awk -v t="$1" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz }'; }

# thread_ticks PID: "name:tid ticks" per thread (pool threads share a name, so the tid tells them apart).
thread_ticks() {
  local f
  for f in /proc/"$1"/task/*/stat; do
    # comm sits in parentheses and may hold spaces; utime and stime are fields 14 and 15 of the line.
    sed -n 's/^\([0-9]*\) (\(.*\)) \(.*\)$/\2:\1|\3/p' "$f" 2>/dev/null
  done | awk -F'|' '{ split($2, v, " "); name = $1; gsub(/ /, "_", name); print name, v[12] + v[13] }' | sort
}

# thread_delta BEFORE AFTER SECONDS: threads that used at least 1% of a core between two thread_ticks
# snapshots, busiest first.
thread_delta() {
  awk -v hz="$(getconf CLK_TCK)" -v s="$3" 'NR == FNR { b[$1] = $2; next }
    { p = 100 * ($2 - b[$1]) / hz / s; if (p >= 1) printf "%.0f %s\n", p, $1 }' \
    <(printf '%s\n' "$1") <(printf '%s\n' "$2") | sort -rn | awk '{ printf "%s %s%%  ", $2, $1 }'
}

# udp_drops: datagrams the kernel dropped for full socket receive buffers, machine-wide (RcvbufErrors).
udp_drops() { awk '$1 == "Udp:" && !h { for (i = 1; i <= NF; i++) col[$i] = i; h = 1; next } $1 == "Udp:" { print $col["RcvbufErrors"] }' /proc/net/snmp; }

# per_op_us TICKS COUNT: CPU microseconds per message.
per_op_us() { awk -v t="$1" -v n="$2" -v hz="$(getconf CLK_TCK)" 'BEGIN { if (n > 0) printf "%.0f", t / hz * 1e6 / n; else print "nan" }'; }

memory_of() {
  awk '/^VmRSS:/ { rss = $2 } /^VmHWM:/ { hwm = $2 } END { printf "VmRSS %.1f MiB, VmHWM %.1f MiB", rss / 1024, hwm / 1024 }' "/proc/$1/status"
}

require() {
  local b
  for b in bffd bench_iot_load; do [ -x "$BIN/$b" ] || die "$BIN/$b is missing; build first (./bff build)"; done
  [ -x /usr/sbin/mosquitto ] || die "mosquitto is not installed (./bff installs it)"
  for b in mosquitto_sub coap-server-openssl coap-client-openssl; do
    command -v "$b" >/dev/null || die "$b is not installed (./bff installs mosquitto-clients and libcoap3-bin)"
  done
  command -v sqlite3 >/dev/null || log "sqlite3 is not installed: the shelf_readings count is not checked"
}

# Provisioning: the key store in bulk, plus a few `bffd keys add` calls (in a scratch directory) to show the cost
# of one process per key.
provision() {
  cat >"$WORK/bffd.toml" <<'TOML'
# bffd for bench/iot.sh: fast start; the bench provisions its own device keys instead of the demo fleet.
log_level = "info"
[domain]
password_iterations = 1000
[iot]
demo_fleet = 0
TOML
  mkdir -p "$DATA"
  local line
  line="$("$BIN/bench_iot_load" provision --data "$DATA" --devices "$KEYS" --rate "$KEY_RATE" --burst "$KEY_BURST" --out "$WORK/keys.txt")"
  PROVISION_S="$(json_field "$line" seconds)"
  log "provisioned $KEYS device keys in ${PROVISION_S}s (one AddMany transaction per thousand)"
  local t0 t1
  mkdir -p "$WORK/scratch-keys"
  t0="$(date +%s.%N)"
  for i in $(seq "$KEYS_ADD_SAMPLES"); do
    "$BIN/bffd" --config "$WORK/bffd.toml" keys add "sample-$i" --shelf shelf-01-01 --data "$WORK/scratch-keys" >/dev/null 2>&1 ||
      die "bffd keys add failed"
  done
  t1="$(date +%s.%N)"
  KEYS_ADD_MS="$(awk -v a="$t0" -v b="$t1" -v n="$KEYS_ADD_SAMPLES" 'BEGIN { printf "%.0f", (b - a) * 1000 / n }')"
  log "bffd keys add: ${KEYS_ADD_MS} ms a call, so about $(awk -v ms="$KEYS_ADD_MS" -v n="$KEYS" 'BEGIN { printf "%.0f", ms * n / 1000 }') s for $KEYS keys one by one"
}

# start_broker NAME: mosquitto from config/mosquitto.conf (@PORT@, @DIR@ substituted) with the exported device
# passwd and acl; sets BROKER_PID and BROKER_PORT.
start_broker() {
  local name="$1" dir="$WORK/$1" port
  mkdir -p "$dir"
  cp -p "$WORK/broker-auth/passwd" "$WORK/broker-auth/acl" "$dir/"
  port="$("$BIN/bench_iot_load" free-port)"
  # One change to the shipped settings, for both brokers alike: mosquitto 2.0.11 began dropping QoS 1 messages
  # to a subscriber taking 15-30k msg/s from 1000 publishers ("Outgoing messages are being dropped") with
  # max_queued_messages 100000, although at most a few thousand were outstanding; with a far larger limit it
  # did not.
  sed -e "s|@PORT@|$port|g" -e "s|@DIR@|$dir|g" -e "s|^max_queued_messages .*|max_queued_messages $BROKER_MAX_QUEUED|" \
    "$ROOT/config/mosquitto.conf" >"$dir/mosquitto.conf"
  grep -q "^max_queued_messages $BROKER_MAX_QUEUED\$" "$dir/mosquitto.conf" || echo "max_queued_messages $BROKER_MAX_QUEUED" >>"$dir/mosquitto.conf"
  # As root, mosquitto would switch to the "mosquitto" user, which cannot read the work directory.
  if [ "$(id -u)" -eq 0 ]; then echo "user root" >>"$dir/mosquitto.conf"; fi
  start "$name" /usr/sbin/mosquitto -c "$dir/mosquitto.conf"
  BROKER_PID="$STARTED_PID"
  BROKER_PORT="$port"
  local up=0
  for _ in $(seq $((START_TIMEOUT_S * 10))); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then up=1; break; fi
    kill -0 "$BROKER_PID" 2>/dev/null || { cat "$WORK/$name.err" >&2; die "$name (mosquitto) exited"; }
    sleep 0.1
  done
  [ "$up" = 1 ] || die "$name (mosquitto) does not listen on port $port"
  log "$name: mosquitto on port $port (pid $BROKER_PID)"
}

# start_bffd NAME: bffd on free ports, MQTT to the bffd broker; sets BFFD_PID and BFFD_COAP (host:port).
start_bffd() {
  local name="$1" ready
  start "$name" "$BIN/bffd" --config "$WORK/bffd.toml" --data "$DATA" --http 127.0.0.1:0 --admin 127.0.0.1:0 \
    --coap 127.0.0.1:0 --coaps 127.0.0.1:0 --mqtt "tcp://127.0.0.1:$MQTT_BROKER_PORT"
  BFFD_PID="$STARTED_PID"
  ready="$(wait_for_line "$name" "$BFFD_PID" '"msg":"bffd ready"')"
  BFFD_COAP="$(json_field "$ready" coap)"; BFFD_COAP="${BFFD_COAP#coap://}"
  [ -n "$BFFD_COAP" ] || die "$name's ready line names no coap address: $ready"
  wait_for_line "$name" "$BFFD_PID" 'mqtt: connected and subscribed' >/dev/null
  log "$name ready (pid $BFFD_PID): coap $BFFD_COAP, mqtt via port $MQTT_BROKER_PORT; $(memory_of "$BFFD_PID")"
}

shelf_readings() { sqlite3 "file:$DATA/domain.db?mode=ro" 'SELECT COUNT(*) FROM shelf_readings;' 2>/dev/null || echo "?"; }

# mqtt_run LABEL bffd|echo|ceiling WARMUP DURATION [DEVICES WINDOW]: one load client run; sets LINE (its JSON
# result) and keeps it in $WORK/mqtt-LABEL.json, with CPU use in .cpu and, for bffd, per thread in .threads.
mqtt_run() {
  local label="$1" target="$2" warmup="$3" duration="$4" devices="${5:-$MQTT_DEVICES}" window="${6:-$MQTT_WINDOW}"
  local port broker_pid args=() b0 k0 t0 threads0=""
  # The ceilings use their own broker: bffd's persistent session would have the other one queue every reading.
  if [ "$target" = bffd ]; then port="$MQTT_BROKER_PORT"; broker_pid="$MQTT_BROKER_PID"
  else port="$CEILING_BROKER_PORT"; broker_pid="$CEILING_BROKER_PID"; fi
  args=(mqtt --broker "127.0.0.1:$port" --keys "$WORK/keys.txt" --devices "$devices" --window "$window"
        --warmup "$warmup" --duration "$duration" --drain-timeout "$DRAIN_TIMEOUT_S" --resend-after "$RESEND_AFTER_S")
  if [ "$target" = ceiling ]; then
    args+=(-- mosquitto_sub -h 127.0.0.1 -p "$port" -u bffd -P "$MQTT_PASSWORD" -V mqttv5 -q 1
           -i bench-ceiling -t 'iot/v1/+/telemetry' -F '%t')
  fi
  local echo_pid=""
  if [ "$target" = echo ]; then
    args+=(--label echo)
    start "echo-$label" "$BIN/bench_iot_load" mqtt-echo --broker "127.0.0.1:$port" --password "$MQTT_PASSWORD"
    echo_pid="$STARTED_PID"
    wait_for_line "echo-$label" "$echo_pid" '"subscribed":true' >/dev/null
  fi
  wait_quiet "$label"
  b0="$(cpu_ticks "$broker_pid")"; k0="$(cpu_ticks "$BFFD_PID")"; t0="$(date +%s.%N)"
  local e0=0; [ -z "$echo_pid" ] || e0="$(cpu_ticks "$echo_pid")"
  [ "$target" = bffd ] && threads0="$(thread_ticks "$BFFD_PID")"
  LINE="$("$BIN/bench_iot_load" "${args[@]}" 2>>"$WORK/load.err")" || die "$label: the load client failed: $(tail -n 3 "$WORK/load.err")"
  local wall b1 k1 n
  wall="$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')"
  b1="$(cpu_ticks "$broker_pid")"; k1="$(cpu_ticks "$BFFD_PID")"
  after_run "$label"
  printf '%s\n' "$LINE" >"$WORK/mqtt-$label.json"
  n="$(json_field "$LINE" published)"
  local cpu
  cpu="broker $(ticks_to_s $((b1 - b0)))s ($(per_op_us $((b1 - b0)) "$n") us a reading)"
  if [ "$target" = bffd ]; then
    cpu+=", bffd $(ticks_to_s $((k1 - k0)))s ($(per_op_us $((k1 - k0)) "$n") us a reading)"
    thread_delta "$threads0" "$(thread_ticks "$BFFD_PID")" "$wall" >"$WORK/mqtt-$label.threads"
    printf '%s\n' "$(per_op_us $((k1 - k0)) "$n")" >"$WORK/mqtt-$label.bffd-us"
  elif [ "$target" = echo ]; then
    cpu+=", echo responder $(ticks_to_s $(( $(cpu_ticks "$echo_pid") - e0 )))s"
    stop_process "$echo_pid"
  else
    cpu+=", mosquitto_sub $(json_field "$LINE" subscriber_cpu_s)s"
  fi
  printf '%s\n' "$(per_op_us $((b1 - b0)) "$n")" >"$WORK/mqtt-$label.broker-us"
  printf '%s, client %ss, over %ss\n' "$cpu" "$(json_field "$LINE" client_cpu_s)" "$wall" >"$WORK/mqtt-$label.cpu"
}

bench_mqtt() {
  log "(a) MQTT telemetry, QoS 1: $MQTT_DEVICES devices, window $MQTT_WINDOW each, ${DURATION_S}s x $ROUNDS rounds"
  local before after line
  before="$(shelf_readings)"
  PUBLISHED_TO_BFFD=0
  for t in bffd echo ceiling; do
    mqtt_run "warmup-$t" "$t" 0 "$WARMUP_S"
    log "warm-up $t: $(json_field "$LINE" rate) readings/s, lost $(json_field "$LINE" lost)"
    [ "$t" = bffd ] && PUBLISHED_TO_BFFD=$((PUBLISHED_TO_BFFD + $(json_field "$LINE" published)))
  done
  log "load before the runs: $(machine_load)"
  declare -A rates=() p50s=() p99s=()
  local lost_total=0 resent_total=0 errors="" ceiling_lost=""
  for r in $(seq "$ROUNDS"); do
    # Interleaved, so a disturbance on the machine hits all alike.
    for t in bffd echo ceiling; do
      mqtt_run "$t-$r" "$t" "$WARMUP_S" "$DURATION_S"
      line="$LINE"
      rates[$t]+="$(json_field "$line" rate) "
      p50s[$t]+="$(json_field "$line" p50_ms) "
      p99s[$t]+="$(json_field "$line" p99_ms) "
      [ "$t" = bffd ] || [ "$(json_field "$line" lost)" = 0 ] || ceiling_lost+="$t round $r: $(json_field "$line" lost) "
      if [ "$t" = bffd ]; then
        PUBLISHED_TO_BFFD=$((PUBLISHED_TO_BFFD + $(json_field "$line" published)))
        lost_total=$((lost_total + $(json_field "$line" lost)))
        resent_total=$((resent_total + $(json_field "$line" resent)))
        [ "$(json_object "$line" errors)" = "{}" ] || errors+="round $r: $(json_object "$line" errors) "
      fi
    done
    log "round $r: bffd $(json_field "$(cat "$WORK/mqtt-bffd-$r.json")" rate)/s (lost $(json_field "$(cat "$WORK/mqtt-bffd-$r.json")" lost), resent $(json_field "$(cat "$WORK/mqtt-bffd-$r.json")" resent)), echo $(json_field "$(cat "$WORK/mqtt-echo-$r.json")" rate)/s, ceiling $(json_field "$(cat "$WORK/mqtt-ceiling-$r.json")" rate)/s"
    log "  bffd threads: $(cat "$WORK/mqtt-bffd-$r.threads")"
    for t in bffd echo ceiling; do log "  CPU, $t run: $(cat "$WORK/mqtt-$t-$r.cpu")"; done
  done
  log "load after the runs: $(machine_load)"
  # One device, one reading at a time: the exchange's latency when nothing queues.
  local single_b single_e
  mqtt_run single-bffd bffd 1 "$SINGLE_DURATION_S" 1 1
  single_b="$LINE"
  PUBLISHED_TO_BFFD=$((PUBLISHED_TO_BFFD + $(json_field "$LINE" published)))
  lost_total=$((lost_total + $(json_field "$LINE" lost)))
  mqtt_run single-echo echo 1 "$SINGLE_DURATION_S" 1 1
  single_e="$LINE"
  after="$(shelf_readings)"

  local mb mc me rt re
  mb="$(printf '%s\n' ${rates[bffd]} | median)"
  mc="$(printf '%s\n' ${rates[ceiling]} | median)"
  me="$(printf '%s\n' ${rates[echo]} | median)"
  ECHO_MEDIAN="$me"
  rt="$(ratio "$mb" "$mc")"
  re="$(ratio "$mb" "$me")"
  local sample; sample="$(cat "$WORK/mqtt-bffd-1.json")"
  printf '\n(a) MQTT telemetry at QoS 1: %s devices, %s readings outstanding each, %s-byte readings, %ss x %s rounds\n' \
    "$MQTT_DEVICES" "$MQTT_WINDOW" "$(json_field "$sample" bytes_per_reading)" "$DURATION_S" "$ROUNDS"
  local us_b us_bb us_cb us_eb
  us_b="$(cat "$WORK"/mqtt-bffd-[0-9]*.bffd-us | median)"
  us_bb="$(cat "$WORK"/mqtt-bffd-[0-9]*.broker-us | median)"
  us_eb="$(cat "$WORK"/mqtt-echo-[0-9]*.broker-us | median)"
  us_cb="$(cat "$WORK"/mqtt-ceiling-[0-9]*.broker-us | median)"
  printf '%-40s %12s %8s %8s %12s %10s   %s\n' "" "median msg/s" "p50 ms" "p99 ms" "bffd us/msg" "broker us" "all rounds"
  printf '%-40s %12.0f %8s %8s %12s %10s   %s\n' "bffd (reading -> ack seen by the device)" "$mb" \
    "$(printf '%s\n' ${p50s[bffd]} | median)" "$(printf '%s\n' ${p99s[bffd]} | median)" "$us_b" "$us_bb" "${rates[bffd]}"
  printf '%-40s %12.0f %8s %8s %12s %10s   %s\n' "round trip, a BFF that only acks (echo)" "$me" \
    "$(printf '%s\n' ${p50s[echo]} | median)" "$(printf '%s\n' ${p99s[echo]} | median)" "-" "$us_eb" "${rates[echo]}"
  printf '%-40s %12.0f %8s %8s %12s %10s   %s\n' "ceiling (mosquitto_sub drains)" "$mc" \
    "$(printf '%s\n' ${p50s[ceiling]} | median)" "$(printf '%s\n' ${p99s[ceiling]} | median)" "-" "$us_cb" "${rates[ceiling]}"
  printf '(us/msg: CPU microseconds per reading over the whole run, all threads; medians of the rounds)\n'
  local stored="unchecked" lost_verdict="met"
  if [ "$before" != "?" ] && [ "$after" != "?" ]; then
    stored="$((after - before)) new rows in shelf_readings for $PUBLISHED_TO_BFFD readings published"
    [ "$((after - before))" -eq "$PUBLISHED_TO_BFFD" ] || lost_verdict="MISSED"
  fi
  [ "$lost_total" -eq 0 ] && [ -z "$errors" ] || lost_verdict="MISSED"
  printf 'one device, one reading at a time: bffd p50 %s ms, p99 %s ms (%s readings/s); echo p50 %s ms, p99 %s ms\n' \
    "$(json_field "$single_b" p50_ms)" "$(json_field "$single_b" p99_ms)" "$(json_field "$single_b" rate)" \
    "$(json_field "$single_e" p50_ms)" "$(json_field "$single_e" p99_ms)"
  printf 'readings never acknowledged: %s; sent again after %ss without an ack: %s; error replies: %s; %s\n' \
    "$lost_total" "$RESEND_AFTER_S" "$resent_total" "${errors:-none}" "$stored"
  local drops_b drops_c
  drops_b="$(grep -c 'Outgoing messages are being dropped' "$WORK/broker.err" || true)"
  drops_c="$(grep -c 'Outgoing messages are being dropped' "$WORK/broker-ceiling.err" || true)"
  printf 'ceiling runs, readings never received: %s; "messages are being dropped" in the broker logs: %s (bffd), %s (ceilings)\n' \
    "${ceiling_lost:-none}" "$drops_b" "$drops_c"
  SUMMARY+=("$(printf '(a) MQTT   bffd %.0f acks/s = %sx the subscriber ceiling (%.0f msg/s); target >= %sx: %s; lost %s (target 0): %s' \
    "$mb" "$rt" "$mc" "$MQTT_TARGET_RATIO" "$(verdict "$rt" "$MQTT_TARGET_RATIO")" "$lost_total" "$lost_verdict")")
  SUMMARY+=("$(printf '           and %sx the round trip through the same broker with a BFF that only acks (%.0f acks/s)' "$re" "$me")")
  MQTT_MEMORY="$(memory_of "$BFFD_PID")"
}

# coap_run LABEL HOST:PORT WARMUP DURATION [DEVICES]: one load client run; sets LINE and keeps it in
# $WORK/coap-LABEL.json, with CPU use in .cpu and, for bffd, per thread in .threads.
coap_run() {
  local label="$1" server="$2" warmup="$3" duration="$4" devices="${5:-$COAP_DEVICES}" pid t0 k0 d0 threads0=""
  wait_quiet "$label"
  pid="$CEILING_COAP_PID"; [ "$server" = "$BFFD_COAP" ] && pid="$BFFD_PID"
  k0="$(cpu_ticks "$pid")"; d0="$(udp_drops)"; t0="$(date +%s.%N)"
  [ "$pid" = "$BFFD_PID" ] && threads0="$(thread_ticks "$BFFD_PID")"
  LINE="$("$BIN/bench_iot_load" coap --server "$server" --keys "$WORK/keys.txt" --devices "$devices" \
    --outstanding "$COAP_OUTSTANDING" --sockets "$COAP_SOCKETS" --warmup "$warmup" --duration "$duration" 2>>"$WORK/load.err")" ||
    die "$label: the load client failed: $(tail -n 3 "$WORK/load.err")"
  local wall k1 n
  wall="$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')"
  k1="$(cpu_ticks "$pid")"
  after_run "$label"
  printf '%s\n' "$LINE" >"$WORK/coap-$label.json"
  n="$(json_field "$LINE" completed)"
  printf '%s\n' "$(per_op_us $((k1 - k0)) "$n")" >"$WORK/coap-$label.server-us"
  printf 'server %ss (%s us a request), client %ss, over %ss; UDP receive-buffer drops %s\n' "$(ticks_to_s $((k1 - k0)))" \
    "$(per_op_us $((k1 - k0)) "$n")" "$(json_field "$LINE" client_cpu_s)" "$wall" "$(( $(udp_drops) - d0 ))" >"$WORK/coap-$label.cpu"
  if [ -n "$threads0" ]; then
    thread_delta "$threads0" "$(thread_ticks "$BFFD_PID")" "$wall" >"$WORK/coap-$label.threads"
  fi
}

bench_coap() {
  log "(b) CoAP GET /s/{shelf}: $COAP_DEVICES devices, $COAP_OUTSTANDING CON requests outstanding over $COAP_SOCKETS sockets, ${DURATION_S}s x $ROUNDS rounds"
  local port
  port="$("$BIN/bench_iot_load" free-port --udp --pair)"
  start coap-ceiling coap-server-openssl -A 127.0.0.1 -p "$port" -d "$CEILING_MAX_RESOURCES"
  CEILING_COAP_PID="$STARTED_PID"
  local ceiling="127.0.0.1:$port"
  for _ in $(seq 50); do coap-client-openssl -B 1 -m get "coap://$ceiling/" >/dev/null 2>&1 && break; sleep 0.1; done
  local line
  line="$("$BIN/bench_iot_load" coap-mirror --from "$BFFD_COAP" --to "$ceiling" --keys "$WORK/keys.txt" --devices "$COAP_DEVICES")"
  log "coap-server-openssl on $ceiling (pid $CEILING_COAP_PID) serves bffd's answers of $(json_field "$line" shelves) shelves (largest $(json_field "$line" largest_payload) bytes)"
  # The outside client sees the same body from both.
  local dev shelf key
  read -r dev shelf key <"$WORK/keys.txt"
  coap-client-openssl -B 5 -m get -o "$WORK/coap-bffd.body" "coap://$BFFD_COAP/s/$shelf?d=$dev&k=$key" >/dev/null 2>&1 || true
  coap-client-openssl -B 5 -m get -o "$WORK/coap-ceiling.body" "coap://$ceiling/s/$shelf?d=$dev&k=$key" >/dev/null 2>&1 || true
  [ -s "$WORK/coap-bffd.body" ] || die "coap-client-openssl got no answer from bffd for /s/$shelf"
  cmp -s "$WORK/coap-bffd.body" "$WORK/coap-ceiling.body" || die "the ceiling answers /s/$shelf with other bytes than bffd"
  log "coap-client-openssl: both answer /s/$shelf with $(od -An -tx1 "$WORK/coap-bffd.body" | tr -d ' \n')"

  for t in bffd ceiling; do
    local server="$BFFD_COAP"; [ "$t" = ceiling ] && server="$ceiling"
    coap_run "warmup-$t" "$server" 0 "$WARMUP_S"
    log "warm-up $t: $(json_field "$LINE" rate) req/s, codes $(json_object "$LINE" codes)"
  done
  log "load before the runs: $(machine_load)"
  declare -A rates=() p50s=() p99s=()
  local problems=""
  for r in $(seq "$ROUNDS"); do
    for t in bffd ceiling; do
      local server="$BFFD_COAP"; [ "$t" = ceiling ] && server="$ceiling"
      coap_run "$t-$r" "$server" "$WARMUP_S" "$DURATION_S"
      line="$LINE"
      rates[$t]+="$(json_field "$line" rate) "
      p50s[$t]+="$(json_field "$line" p50_ms) "
      p99s[$t]+="$(json_field "$line" p99_ms) "
      local codes; codes="$(json_object "$line" codes)"
      if [ "$(json_field "$line" failed)" != 0 ] || [ "$(json_field "$line" retransmits)" != 0 ] || ! printf '%s' "$codes" | grep -q '^{"2.05":[0-9]*}$'; then
        problems+="$t round $r: codes $codes, retransmits $(json_field "$line" retransmits), failed $(json_field "$line" failed); "
      fi
    done
    log "round $r: bffd $(json_field "$(cat "$WORK/coap-bffd-$r.json")" rate) req/s (p99 $(json_field "$(cat "$WORK/coap-bffd-$r.json")" p99_ms) ms), ceiling $(json_field "$(cat "$WORK/coap-ceiling-$r.json")" rate) req/s (p99 $(json_field "$(cat "$WORK/coap-ceiling-$r.json")" p99_ms) ms)"
    log "  bffd threads: $(cat "$WORK/coap-bffd-$r.threads")"
    log "  CPU, bffd run: $(cat "$WORK/coap-bffd-$r.cpu")"
    log "  CPU, ceiling run: $(cat "$WORK/coap-ceiling-$r.cpu")"
  done
  log "load after the runs: $(machine_load)"
  # libcoap keeps a session per client address; sleeping devices leave theirs behind. Every server loop
  # iteration visits them all, so one more run of each with that many idle sessions in place.
  local idle_b="" idle_c=""
  if [ "$COAP_IDLE_SESSIONS" -gt 0 ]; then
    for t in bffd ceiling; do
      local server="$BFFD_COAP"; [ "$t" = ceiling ] && server="$ceiling"
      "$BIN/bench_iot_load" coap --server "$server" --keys "$WORK/keys.txt" --devices "$COAP_DEVICES" --sockets "$COAP_IDLE_SESSIONS" \
        --outstanding "$COAP_OUTSTANDING" --warmup 0 --duration 1 >/dev/null 2>>"$WORK/load.err" || die "creating idle sessions failed"
      coap_run "idle-$t" "$server" "$WARMUP_S" "$DURATION_S"
      [ "$t" = bffd ] && idle_b="$LINE" || idle_c="$LINE"
    done
    log "with $COAP_IDLE_SESSIONS idle sessions: bffd $(json_field "$idle_b" rate) req/s, ceiling $(json_field "$idle_c" rate) req/s"
  fi
  local mb mc rt sample_b sample_c
  mb="$(printf '%s\n' ${rates[bffd]} | median)"
  mc="$(printf '%s\n' ${rates[ceiling]} | median)"
  rt="$(ratio "$mb" "$mc")"
  sample_b="$(cat "$WORK/coap-bffd-1.json")"; sample_c="$(cat "$WORK/coap-ceiling-1.json")"
  printf '\n(b) CoAP CON GET /s/{shelf}?d=&k=: %s devices, %s outstanding over %s sockets, %ss x %s rounds\n' \
    "$COAP_DEVICES" "$COAP_OUTSTANDING" "$COAP_SOCKETS" "$DURATION_S" "$ROUNDS"
  local us_b us_c
  us_b="$(cat "$WORK"/coap-bffd-[0-9]*.server-us | median)"
  us_c="$(cat "$WORK"/coap-ceiling-[0-9]*.server-us | median)"
  printf '%-34s %12s %8s %8s %11s %12s   %s\n' "" "median req/s" "p50 ms" "p99 ms" "datagrams" "server us/req" "all rounds"
  printf '%-34s %12.0f %8s %8s %11s %12s   %s\n' "bffd" "$mb" "$(printf '%s\n' ${p50s[bffd]} | median)" \
    "$(printf '%s\n' ${p99s[bffd]} | median)" "$(json_field "$sample_b" request_bytes)/$(json_field "$sample_b" response_bytes) B" \
    "$us_b" "${rates[bffd]}"
  printf '%-34s %12.0f %8s %8s %11s %12s   %s\n' "coap-server-openssl (same bytes)" "$mc" "$(printf '%s\n' ${p50s[ceiling]} | median)" \
    "$(printf '%s\n' ${p99s[ceiling]} | median)" "$(json_field "$sample_c" request_bytes)/$(json_field "$sample_c" response_bytes) B" \
    "$us_c" "${rates[ceiling]}"
  if [ -n "$idle_b" ]; then
    printf '%-34s %12.0f %8s %8s %11s %12s   %s\n' "bffd, $COAP_IDLE_SESSIONS idle sessions" "$(json_field "$idle_b" rate)" \
      "$(json_field "$idle_b" p50_ms)" "$(json_field "$idle_b" p99_ms)" "" "$(cat "$WORK/coap-idle-bffd.server-us")" "(one run)"
    printf '%-34s %12.0f %8s %8s %11s %12s   %s\n' "coap-server-openssl, same" "$(json_field "$idle_c" rate)" \
      "$(json_field "$idle_c" p50_ms)" "$(json_field "$idle_c" p99_ms)" "" "$(cat "$WORK/coap-idle-ceiling.server-us")" "(one run)"
  fi
  printf '(datagrams: request/response bytes; server us/req: CPU microseconds per request, all threads; medians)\n'
  printf 'answers other than 2.05, retransmissions, failures: %s\n' "${problems:-none}"
  SUMMARY+=("$(printf '(b) CoAP   bffd %.0f req/s (p99 %s ms) = %sx coap-server-openssl (%.0f req/s, p99 %s ms); target >= %sx: %s' \
    "$mb" "$(printf '%s\n' ${p99s[bffd]} | median)" "$rt" "$mc" "$(printf '%s\n' ${p99s[ceiling]} | median)" \
    "$COAP_TARGET_RATIO" "$(verdict "$rt" "$COAP_TARGET_RATIO")")")
  COAP_MEMORY="$(memory_of "$BFFD_PID")"
  stop_process "$CEILING_COAP_PID"
}

# (c) A fresh bffd on the same data: idle with the keys in its store, then every device once, then observers.
# (d) The product's own load generator: a firmware-sim fleet with the same keys, as fast as bffd acknowledges
# (--rate max, the same window), over MQTT and plain CoAP. Its report is what a fleet sees: acks/s, latency
# from send to acknowledgement, and lost (must be 0). MQTT is set against the echo round trip of (a).
bench_fleet() {
  local protocol report line acks lat lost vs
  for protocol in mqtt coap; do
    report="$WORK/fleet-$protocol.json"
    wait_quiet "fleet-$protocol"
    "$BIN/firmware-sim" --protocol "$protocol" --keys "$WORK/keys.txt" --devices "$MQTT_DEVICES" --rate max \
      --window "$MQTT_WINDOW" --duration "$DURATION_S" --drain 30 --mqtt "tcp://127.0.0.1:$MQTT_BROKER_PORT" \
      --coap "$BFFD_COAP" --seed 1 --quiet --report "$report" >/dev/null 2>>"$WORK/fleet.err" ||
      die "firmware-sim ($protocol) failed: $(tail -n 3 "$WORK/fleet.err")"
    after_run "fleet-$protocol"
    line="$(tr -d '\n ' <"$report")"
    acks="$(json_field "$line" acks_per_s)"
    lost="$(json_field "$line" lost)"
    lat="$(json_object "$line" latency_ms)"
    vs=""
    if [ "$protocol" = mqtt ] && [ -n "${ECHO_MEDIAN:-}" ]; then vs=" = $(ratio "$acks" "$ECHO_MEDIAN")x the echo round trip"; fi
    log "fleet over $protocol: $acks acks/s$vs, latency $lat, lost $lost"
    SUMMARY+=("$(printf '(d) fleet  firmware-sim, %s devices over %s, --rate max --window %s: %s acks/s%s; latency ms %s; lost %s (target 0): %s' \
      "$MQTT_DEVICES" "$protocol" "$MQTT_WINDOW" "$acks" "$vs" "$lat" "$lost" "$([ "$lost" = 0 ] && echo met || echo MISSED)")")
  done
}

bench_memory() {
  log "(c) memory: fresh bffd, $KEYS keys in its store, every device asks once, then $OBSERVERS observers"
  [ -z "${BFFD_PID:-}" ] || stop_process "$BFFD_PID"
  start_bffd bffd-memory
  local idle devices_once observing released line
  sleep 1
  idle="$(memory_of "$BFFD_PID")"
  # Each of the keys verified once (KeyRegistry remembers it, the limiter makes its bucket).
  line="$("$BIN/bench_iot_load" coap --server "$BFFD_COAP" --keys "$WORK/keys.txt" --devices "$KEYS" \
    --outstanding "$COAP_OUTSTANDING" --sockets "$COAP_SOCKETS" --warmup 0 --duration 3 2>>"$WORK/load.err")"
  [ "$(json_field "$line" completed)" -ge "$KEYS" ] || log "warning: only $(json_field "$line" completed) requests for $KEYS devices"
  log "every device once: $(json_field "$line" completed) requests, codes $(json_object "$line" codes)"
  devices_once="$(memory_of "$BFFD_PID")"
  local d0; d0="$(udp_drops)"
  start observers "$BIN/bench_iot_load" observe --server "$BFFD_COAP" --keys "$WORK/keys.txt" \
    --observers "$OBSERVERS" --sockets "$OBSERVER_SOCKETS" --window "$COAP_OUTSTANDING"
  local obs_pid="$STARTED_PID"
  line="$(wait_for_line observers "$obs_pid" '"mode":"observe"')"
  log "observers: $(json_field "$line" registered) registered, $(json_field "$line" refused) refused, $(json_field "$line" retransmits) retransmissions, from $OBSERVER_SOCKETS sockets, $COAP_OUTSTANDING at a time, in $(json_field "$line" seconds)s; UDP receive-buffer drops $(( $(udp_drops) - d0 ))"
  sleep 1
  observing="$(memory_of "$BFFD_PID")"
  stop_process "$obs_pid"
  sleep 1
  released="$(memory_of "$BFFD_PID")"
  printf '\n(c) bffd resident memory (%s)\n' "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//') machine"
  printf '%-58s %s\n' "fresh, $KEYS keys in the store, idle" "$idle"
  printf '%-58s %s\n' "after one CoAP GET from each of the $KEYS devices" "$devices_once"
  printf '%-58s %s\n' "with $(json_field "$line" registered) CoAP observers registered ($OBSERVER_SOCKETS sockets)" "$observing"
  printf '%-58s %s\n' "after the observers' client went away" "$released"
  [ -z "${MQTT_MEMORY:-}" ] || printf '%-58s %s\n' "the first bffd, after the MQTT runs" "$MQTT_MEMORY"
  [ -z "${COAP_MEMORY:-}" ] || printf '%-58s %s\n' "the first bffd, after the CoAP runs" "$COAP_MEMORY"
  SUMMARY+=("(c) memory idle with $KEYS keys: $idle; with every key used and $(json_field "$line" registered) observers: $observing")
}

main() {
  require
  case "$ONLY" in all | mqtt | coap | fleet | memory) ;; *) die "BENCH_ONLY must be all, mqtt, coap, fleet or memory" ;; esac
  # 1000 device connections on one process, and as many on the broker.
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  log "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(awk '/MemTotal/ { printf "%.1f GiB RAM", $2 / 1048576 }' /proc/meminfo)"
  log "binaries: $BIN; work directory: $WORK; $(machine_load)"
  SUMMARY=(); FLAGGED=()
  provision
  "$BIN/bffd" --config "$WORK/bffd.toml" --data "$DATA" keys export-mosquitto "$WORK/broker-auth" >/dev/null 2>>"$WORK/export.err" ||
    die "bffd keys export-mosquitto failed: $(cat "$WORK/export.err")"
  MQTT_PASSWORD="$(tr -d '\r\n' <"$DATA/mqtt-password")"
  start_broker broker; MQTT_BROKER_PID="$BROKER_PID"; MQTT_BROKER_PORT="$BROKER_PORT"
  start_broker broker-ceiling; CEILING_BROKER_PID="$BROKER_PID"; CEILING_BROKER_PORT="$BROKER_PORT"
  start_bffd bffd
  case "$ONLY" in
    all) bench_mqtt; bench_coap; bench_fleet; bench_memory ;;
    mqtt) bench_mqtt ;;
    coap) bench_coap ;;
    fleet) bench_fleet ;;
    memory) bench_memory ;;
  esac
  printf '\nsummary (%s, %s)\n' "$(date '+%Y-%m-%d %H:%M')" "$(machine_load)"
  local s
  for s in "${SUMMARY[@]}"; do printf '  %s\n' "$s"; done
  printf '  keys: %s provisioned in %ss through the key store; `bffd keys add` takes %s ms a call\n' "$KEYS" "$PROVISION_S" "$KEYS_ADD_MS"
  if [ "${#FLAGGED[@]}" -gt 0 ]; then
    printf '  runs disturbed by other work (figures suspect): %s\n' "${FLAGGED[*]}"
  else
    printf '  no run was disturbed by compilers or other load\n'
  fi
  return 0
}

main "$@"
