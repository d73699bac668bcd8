#!/usr/bin/env bash
# bench/soak.sh: bffd under mixed traffic for a long time, with faults injected periodically.
#
# One bffd (embedded domain) behind a mosquitto broker. For the whole run a firmware-sim fleet reports
# over MQTT and CoAP (half each, every device waking every BENCH_SOAK_INTERVAL_S), and HTTP traffic
# comes in back-to-back segments of BENCH_SOAK_SEGMENT_S: wrk on the mobile product (cached) and on the
# web product page (every part fetched) at once. Every BENCH_SOAK_FAULT_EVERY_S one segment runs with a
# fault injected on the embedded domain (in turn: reviews hanging, inventory slow, catalog erroring half
# the time, promotions down, several at once), cleared when the segment ends.
#
# Verdicts (the targets):
#   memory  resident set at the end grows < 5% over its size after warm-up (BENCH_SOAK_WARMUP_S);
#   fds     bffd's open file descriptors at the end equal those after warm-up (no leak);
#   lost    the fleet lost no reading, and inventory holds one row for each acknowledged one;
#   errors  non-2xx HTTP answers only in segments where a fault that can cause them was injected.
#
# Run through `./bff bench soak` (it builds first and sets BFF_BUILD_DIR). Settings:
#   BENCH_SOAK_S (600)  BENCH_SOAK_SEGMENT_S (10)  BENCH_SOAK_FAULT_EVERY_S (60)  BENCH_SOAK_WARMUP_S (180)
#   BENCH_SOAK_DEVICES (200)  BENCH_SOAK_INTERVAL_S (2)  BENCH_SOAK_HTTP_CONNECTIONS (4)  BENCH_KEEP (1: keep
#   the work directory)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${BFF_BUILD_DIR:-$ROOT/build}"
[ -d "$BUILD" ] && BUILD="$(cd "$BUILD" && pwd)"
BIN="$BUILD/bin"

DURATION_S="${BENCH_SOAK_S:-600}"
SEGMENT_S="${BENCH_SOAK_SEGMENT_S:-10}"
FAULT_EVERY_S="${BENCH_SOAK_FAULT_EVERY_S:-60}"
# Long enough for SQLite's page caches (2 MiB a connection) and the allocator's arenas to fill: in a
# 5-minute run resident memory rose 300-400 KiB every 10 s for the first two minutes, then 0-100.
WARMUP_S="${BENCH_SOAK_WARMUP_S:-180}"
DEVICES="${BENCH_SOAK_DEVICES:-200}"
INTERVAL_S="${BENCH_SOAK_INTERVAL_S:-2}"
HTTP_CONNECTIONS="${BENCH_SOAK_HTTP_CONNECTIONS:-4}"

readonly MOBILE_PATH="/mobile/v1/products/SKU-10001"
readonly WEB_PATH="/web/v1/products/SKU-10002"
readonly MEMORY_GROWTH_TARGET_PCT=5
readonly START_TIMEOUT_S=120
readonly WRK_TIMEOUT="5s"
# Faults in turn, as "service=fault-json" lists; "errors" says whether HTTP errors may follow from them
# (the catalog is critical on the web page; the other parts degrade).
readonly FAULTS=(
  'reviews={"hang":true}|no'
  'inventory={"latency_ms":300}|no'
  'catalog={"error_rate":0.5}|yes'
  'promotions={"down":true}|no'
  'reviews={"hang":true} inventory={"down":true} catalog={"error_rate":0.3}|yes'
)

WORK="$(mktemp -d "${TMPDIR:-/tmp}/bff-bench-soak.XXXXXX")"
DATA="$WORK/data"
PIDS=()

log() { printf '[bench soak] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# shellcheck source=bench/lib.bash
source "$ROOT/bench/lib.bash"
trap cleanup EXIT
trap 'exit 130' INT TERM

for tool in wrk curl sqlite3; do command -v "$tool" >/dev/null || die "$tool is not installed (./bff bench installs it)"; done
for b in bffd firmware-sim bench_iot_load; do [ -x "$BIN/$b" ] || die "$BIN/$b is missing; build first (./bff build)"; done
[ -x /usr/sbin/mosquitto ] || die "mosquitto is not installed (./bff installs it)"
[ "$SEGMENT_S" -gt 0 ] && [ "$FAULT_EVERY_S" -ge "$SEGMENT_S" ] || die "BENCH_SOAK_FAULT_EVERY_S must be at least BENCH_SOAK_SEGMENT_S"

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
fd_count() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 | wc -l; }
rows() { sqlite3 "file:$DATA/domain.db?mode=ro" 'SELECT COUNT(*) FROM shelf_readings;'; }

admin() {  # admin METHOD PATH [BODY]: bffd's admin API; fails the run on a non-2xx answer
  local status
  status="$(curl -s -o "$WORK/admin.out" -w '%{http_code}' -X "$1" ${3:+-H 'Content-Type: application/json' --data "$3"} "$BFFD_ADMIN$2")"
  [ "${status:0:1}" = 2 ] || die "admin $1 $2 answered $status: $(cat "$WORK/admin.out")"
}

# --- set up: keys, broker, bffd
mkdir -p "$DATA" "$WORK/broker"
cat >"$WORK/bffd.toml" <<'TOML'
# bffd for bench/soak.sh: the bench provisions its own fleet.
[domain]
password_iterations = 1000
[iot]
demo_fleet = 0
# The HTTP load comes from one address and one demo user: the per-client limits are lifted, not off.
[rate_limit]
client_rps = 10000000
client_burst = 10000000
user_rps = 10000000
user_burst = 10000000
logins_per_minute = 1000000
login_burst = 1000000
TOML
"$BIN/firmware-sim" --provision "$DEVICES" --data "$DATA" --keys "$WORK/keys.txt" --prefix soak --provision-rate 5 \
  --provision-burst 60 >/dev/null 2>"$WORK/provision.err" || die "provisioning failed: $(tail -n 3 "$WORK/provision.err")"
"$BIN/bffd" --config "$WORK/bffd.toml" --data "$DATA" keys export-mosquitto "$WORK/broker" >/dev/null 2>"$WORK/export.err" ||
  die "bffd keys export-mosquitto failed: $(cat "$WORK/export.err")"
BROKER_PORT="$("$BIN/bench_iot_load" free-port)"
sed -e "s|@PORT@|$BROKER_PORT|g" -e "s|@DIR@|$WORK/broker|g" "$ROOT/config/mosquitto.conf" >"$WORK/broker/mosquitto.conf"
if [ "$(id -u)" -eq 0 ]; then echo "user root" >>"$WORK/broker/mosquitto.conf"; fi
start broker /usr/sbin/mosquitto -c "$WORK/broker/mosquitto.conf"
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$BROKER_PORT") 2>/dev/null && break; sleep 0.1; done
start bffd "$BIN/bffd" --config "$WORK/bffd.toml" --data "$DATA" --http 127.0.0.1:0 --admin 127.0.0.1:0 \
  --coap 127.0.0.1:0 --coaps "" --mqtt "tcp://127.0.0.1:$BROKER_PORT"
BFFD_PID="$STARTED_PID"
ready="$(wait_for_line bffd "$BFFD_PID" '"msg":"bffd ready"')"
BFFD_HTTP="$(json_field "$ready" http)"; BFFD_ADMIN="$(json_field "$ready" admin)"
BFFD_COAP="$(json_field "$ready" coap)"; BFFD_COAP="${BFFD_COAP#coap://}"
wait_for_line bffd "$BFFD_PID" 'mqtt: connected and subscribed' >/dev/null
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

segments=$((DURATION_S / SEGMENT_S))
warmup_segments=$(((WARMUP_S + SEGMENT_S - 1) / SEGMENT_S))
fault_every=$((FAULT_EVERY_S / SEGMENT_S))
[ "$segments" -gt "$warmup_segments" ] || die "BENCH_SOAK_S must be longer than the warm-up"
log "soak: ${DURATION_S}s in ${segments} segments of ${SEGMENT_S}s, a fault every ${FAULT_EVERY_S}s, warm-up ${WARMUP_S}s;" \
  "$DEVICES devices every ${INTERVAL_S}s over MQTT and CoAP; wrk -c$HTTP_CONNECTIONS on mobile and web; $(machine_load)"

rows_before="$(rows)"
start fleet "$BIN/firmware-sim" --protocol mqtt,coap --keys "$WORK/keys.txt" --devices "$DEVICES" --interval "$INTERVAL_S" \
  --duration "$DURATION_S" --drain 60 --mqtt "tcp://127.0.0.1:$BROKER_PORT" --coap "$BFFD_COAP" --seed 7 --quiet \
  --report "$WORK/fleet.json"
FLEET_PID="$STARTED_PID"

# --- the segments
rss_after_warmup=0; fd_after_warmup=0; fault_index=0
unexpected_errors=0; expected_errors=0; total_requests=0
printf 'segment,fault,mobile_requests,mobile_errors,web_requests,web_errors,rss_kib,fds\n' >"$WORK/segments.csv"
for ((i = 0; i < segments; i++)); do
  fault="-"; may_fail=no
  if [ "$i" -ge "$warmup_segments" ] && [ $(((i + 1) % fault_every)) -eq 0 ]; then
    entry="${FAULTS[$((fault_index % ${#FAULTS[@]}))]}"; fault_index=$((fault_index + 1))
    fault="${entry%|*}"; may_fail="${entry##*|}"
    for f in $fault; do admin PUT "/admin/v1/faults/${f%%=*}" "${f#*=}"; done
  fi
  wrk -t1 -c"$HTTP_CONNECTIONS" -d"${SEGMENT_S}s" --timeout "$WRK_TIMEOUT" "$BFFD_HTTP$MOBILE_PATH" >"$WORK/wrk-m-$i.txt" 2>&1 &
  mobile_wrk=$!
  wrk -t1 -c"$HTTP_CONNECTIONS" -d"${SEGMENT_S}s" --timeout "$WRK_TIMEOUT" "$BFFD_HTTP$WEB_PATH" >"$WORK/wrk-w-$i.txt" 2>&1 || true
  wait "$mobile_wrk" || true
  [ "$fault" = "-" ] || admin DELETE /admin/v1/faults
  kill -0 "$BFFD_PID" 2>/dev/null || die "bffd exited during segment $i: $(tail -n 5 "$WORK/bffd.err")"
  m_req="$(awk '/requests in/ { print $1 }' "$WORK/wrk-m-$i.txt")"; w_req="$(awk '/requests in/ { print $1 }' "$WORK/wrk-w-$i.txt")"
  m_err="$(awk '/Non-2xx/ { print $NF } /Socket errors/ { for (k = 4; k <= NF; k += 2) s += $k; print s }' "$WORK/wrk-m-$i.txt" | awk '{ t += $1 } END { print t + 0 }')"
  w_err="$(awk '/Non-2xx/ { print $NF } /Socket errors/ { for (k = 4; k <= NF; k += 2) s += $k; print s }' "$WORK/wrk-w-$i.txt" | awk '{ t += $1 } END { print t + 0 }')"
  rss="$(rss_kib "$BFFD_PID")"; fds="$(fd_count "$BFFD_PID")"
  printf '%s,%s,%s,%s,%s,%s,%s,%s\n' "$i" "${fault// /+}" "${m_req:-0}" "$m_err" "${w_req:-0}" "$w_err" "$rss" "$fds" >>"$WORK/segments.csv"
  total_requests=$((total_requests + ${m_req:-0} + ${w_req:-0}))
  if [ "$may_fail" = yes ]; then expected_errors=$((expected_errors + m_err + w_err));
  else unexpected_errors=$((unexpected_errors + m_err + w_err)); fi
  if [ "$i" -eq $((warmup_segments - 1)) ]; then rss_after_warmup="$rss"; fd_after_warmup="$fds"; fi
  log "segment $((i + 1))/$segments: fault ${fault}; mobile ${m_req:-0} (${m_err} errors), web ${w_req:-0} (${w_err} errors); rss ${rss} KiB, ${fds} fds"
done

# --- the fleet drains, then the figures
log "waiting for the fleet to deliver what it holds"
wait "$FLEET_PID" || die "firmware-sim failed: $(tail -n 3 "$WORK/fleet.err")"
report="$(tr -d '\n ' <"$WORK/fleet.json")"
# The totals; the per-protocol objects under "protocols" repeat some names (keys are sorted, so these
# totals all come before it, and "readings" appears only once).
totals="${report%%\"protocols\"*}"
acknowledged="$(json_field "$totals" acknowledged)"; lost="$(json_field "$totals" lost)"
dropped="$(json_field "$totals" dropped)"; readings="$(json_field "$report" readings)"
rows_delta=$(($(rows) - rows_before))
rss_end="$(rss_kib "$BFFD_PID")"; fd_end="$(fd_count "$BFFD_PID")"
growth="$(awk -v a="$rss_after_warmup" -v b="$rss_end" 'BEGIN { printf "%.1f", (b - a) * 100 / a }')"

verdict() { [ "$1" = 1 ] && echo met || echo MISSED; }
mem_ok="$(awk -v g="$growth" -v t="$MEMORY_GROWTH_TARGET_PCT" 'BEGIN { print (g < t) ? 1 : 0 }')"
fd_ok=$([ "$fd_end" -le "$fd_after_warmup" ] && echo 1 || echo 0)
lost_ok=$([ "$lost" = 0 ] && [ "$rows_delta" = "$acknowledged" ] && echo 1 || echo 0)
err_ok=$([ "$unexpected_errors" = 0 ] && echo 1 || echo 0)
printf '\nsoak: %ss of mixed traffic, %s fault windows (%s)\n' "$DURATION_S" "$fault_index" "$(date -u '+%Y-%m-%d %H:%M')"
printf '  memory  rss %s KiB after warm-up, %s KiB at the end: %s%% (target < %s%%): %s\n' \
  "$rss_after_warmup" "$rss_end" "$growth" "$MEMORY_GROWTH_TARGET_PCT" "$(verdict "$mem_ok")"
printf '  fds     %s after warm-up, %s at the end: %s\n' "$fd_after_warmup" "$fd_end" "$(verdict "$fd_ok")"
printf '  lost    fleet: %s readings, %s acknowledged, %s lost, %s dropped from full buffers; inventory rows +%s: %s\n' \
  "$readings" "$acknowledged" "$lost" "$dropped" "$rows_delta" "$(verdict "$lost_ok")"
printf '  errors  %s HTTP requests; %s errors in fault windows that allow them, %s elsewhere (target 0): %s\n' \
  "$total_requests" "$expected_errors" "$unexpected_errors" "$(verdict "$err_ok")"
printf '  per segment: %s\n' "$WORK/segments.csv$([ "${BENCH_KEEP:-0}" = 1 ] || echo ' (BENCH_KEEP=1 keeps it)')"
printf '  (%s)\n' "$(machine_load)"
[ "$mem_ok$fd_ok$lost_ok$err_ok" = 1111 ]
