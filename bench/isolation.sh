#!/usr/bin/env bash
# bench/isolation.sh: what one client far past its rate limit does to everybody else's latency.
#
# One bffd (embedded domain, CoAP on) and, in every phase, the same well-behaved load:
#   mobile: wrk paced to BENCH_MOBILE_RPS requests/s on the cached product path, spread over 64 client
#           addresses named by X-Forwarded-For (bffd trusts 127.0.0.1 as its load balancer), each
#           client well under its limit;
#   devices: firmware-sim, BENCH_DEVICES CoAP devices each reporting once a second (their key's rate).
# Phases, interleaved round after round so a trend on the machine does not favour one:
#   baseline:     the load alone;
#   device-flood: plus one device sending every 10 ms and ignoring back-off: 100x its key's 1/s;
#   mobile-flood: plus one mobile client sending 100x its address's limit, as fast as answered.
# Printed: the well-behaved clients' p99 in each phase and its ratio to the baseline (target: at most
# 1.20x), and what the flooder got (429/4.29 share): it is refused, not served late.
#
# The flooders' own processes run at nice BENCH_FLOODER_NICE (19): in a deployment they are other
# people's machines, and on two shared cores their own CPU would otherwise count against bffd. What
# bffd spends refusing them is measured: bffd and the well-behaved clients run at normal priority.
#
# Run through `./bff bench isolation` (it builds first and sets BFF_BUILD_DIR). Settings:
#   BENCH_PHASE_S (20)  BENCH_ROUNDS (3)  BENCH_MOBILE_RPS (2000)  BENCH_DEVICES (200)
#   BENCH_CLIENT_RPS (100: each client address's limit)  BENCH_FLOODER_NICE (19)
#   BENCH_KEEP (1: keep the work directory)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${BFF_BUILD_DIR:-$ROOT/build}"
[ -d "$BUILD" ] && BUILD="$(cd "$BUILD" && pwd)"
BIN="$BUILD/bin"

PHASE_S="${BENCH_PHASE_S:-20}"
ROUNDS="${BENCH_ROUNDS:-3}"
MOBILE_RPS="${BENCH_MOBILE_RPS:-2000}"
DEVICES="${BENCH_DEVICES:-200}"
CLIENT_RPS="${BENCH_CLIENT_RPS:-100}"
FLOODER_NICE="${BENCH_FLOODER_NICE:-19}"

readonly MOBILE_PATH="/mobile/v1/products/SKU-10001"
readonly MOBILE_CONNECTIONS=20
readonly MOBILE_CLIENTS=64
readonly FLOOD_FACTOR=100
readonly TARGET_RATIO="1.20"
readonly START_TIMEOUT_S=120
readonly WRK_TIMEOUT="5s"
readonly WRK_THREADS=1

WORK="$(mktemp -d "${TMPDIR:-/tmp}/bff-bench-isolation.XXXXXX")"
PIDS=()

log() { printf '[bench isolation] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# shellcheck source=bench/lib.bash
source "$ROOT/bench/lib.bash"
trap cleanup EXIT
trap 'exit 130' INT TERM

for tool in wrk curl; do command -v "$tool" >/dev/null || die "$tool is not installed (./bff bench installs it)"; done
for b in bffd firmware-sim; do [ -x "$BIN/$b" ] || die "$BIN/$b is missing; build first (./bff build)"; done

DATA="$WORK/data"
mkdir -p "$DATA"
cat >"$WORK/bffd.toml" <<TOML
# bffd for bench/isolation.sh: behind one load balancer (127.0.0.1), each client address limited.
[mqtt]
enabled = false
[iot]
demo_fleet = 0
[domain]
password_iterations = 1000
[rate_limit]
client_rps = $CLIENT_RPS
client_burst = $((CLIENT_RPS * 2))
trusted_proxies = ["127.0.0.1"]
TOML
# One key more than the fleet: the last one is the flooding device's.
"$BIN/firmware-sim" --provision "$((DEVICES + 1))" --data "$DATA" --keys "$WORK/keys-all.txt" --prefix iso \
  --provision-rate 1 --provision-burst 10 >/dev/null 2>"$WORK/provision.err" ||
  die "provisioning failed: $(tail -n 3 "$WORK/provision.err")"
head -n "$DEVICES" "$WORK/keys-all.txt" >"$WORK/keys.txt"
tail -n 1 "$WORK/keys-all.txt" >"$WORK/keys-flood.txt"

start bffd "$BIN/bffd" --config "$WORK/bffd.toml" --data "$DATA" --http 127.0.0.1:0 --admin 127.0.0.1:0 \
  --coap 127.0.0.1:0 --coaps ""
BFFD_PID="$STARTED_PID"
ready="$(wait_for_line bffd "$BFFD_PID" '"msg":"bffd ready"')"
BFFD_HTTP="$(json_field "$ready" http)"; BFFD_ADMIN="$(json_field "$ready" admin)"
BFFD_COAP="$(json_field "$ready" coap)"; BFFD_COAP="${BFFD_COAP#coap://}"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$BFFD_HTTP$MOBILE_PATH")" = 200 ] || die "bffd does not serve $MOBILE_PATH"

# The well-behaved mobile clients: each wrk connection waits between requests so that the whole
# stays near MOBILE_RPS, and each request names one of MOBILE_CLIENTS addresses in turn.
delay_ms=$((MOBILE_CONNECTIONS * 1000 / MOBILE_RPS))
cat >"$WORK/clients.lua" <<LUA
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "$MOBILE_PATH", { ["X-Forwarded-For"] = "10.1.0." .. (n % $MOBILE_CLIENTS + 1) })
end
delay = function() return $delay_ms end
LUA
# The flooding mobile client: one address at about FLOOD_FACTOR times its limit. wrk's delay is in
# whole milliseconds, and a connection waiting 1 ms between answers sends about 700 requests/s here.
readonly FLOOD_RPS_PER_CONNECTION=700
FLOOD_CONNECTIONS=$(( (CLIENT_RPS * FLOOD_FACTOR + FLOOD_RPS_PER_CONNECTION - 1) / FLOOD_RPS_PER_CONNECTION ))
cat >"$WORK/flood.lua" <<LUA
wrk.headers["X-Forwarded-For"] = "203.0.113.66"
delay = function() return 1 end
LUA

# wrk_p99_ms FILE: the 99th percentile latency of a wrk --latency report, in ms.
wrk_p99_ms() {
  awk '$1 == "99%" { v = $2; if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 } else if (v ~ /ms$/) { sub(/ms$/, "", v) }
                     else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 } printf "%.3f\n", v }' "$1"
}
# report_field FILE FIELD: a number from firmware-sim's JSON report.
report_field() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); v=r
for k in sys.argv[2].split("."): v=v[k]
print(v)' "$1" "$2"; }

# factor REQUESTS LIMIT_RPS: how many times its limit a flooder sent over one phase.
factor() { awk -v n="$1" -v l="$2" -v s="$PHASE_S" 'BEGIN { printf "%.0f", n / s / l }'; }

# phase NAME ROUND: the well-behaved load for PHASE_S seconds, with the phase's flooder beside it.
phase() {
  local name="$1" r="$2" tag="$1-$2" flood_pid="" fleet_pid wrk_pid
  start "fleet-$tag" "$BIN/firmware-sim" --protocol coap --keys "$WORK/keys.txt" --devices "$DEVICES" \
    --rate "$DEVICES" --duration "$PHASE_S" --drain 10 --coap "$BFFD_COAP" --seed "$r" --quiet \
    --report "$WORK/fleet-$tag.json"
  fleet_pid="$STARTED_PID"
  case "$name" in
    device-flood)
      start "flooder-$tag" nice -n "$FLOODER_NICE" "$BIN/firmware-sim" --protocol coap --keys "$WORK/keys-flood.txt" --devices 1 --flood 1 \
        --duration "$PHASE_S" --drain 0 --coap "$BFFD_COAP" --seed "$r" --quiet --report "$WORK/flooder-$tag.json"
      flood_pid="$STARTED_PID" ;;
    mobile-flood)
      start "flooder-$tag" nice -n "$FLOODER_NICE" wrk -t1 -c"$FLOOD_CONNECTIONS" -d"${PHASE_S}s" --timeout "$WRK_TIMEOUT" -s "$WORK/flood.lua" \
        "$BFFD_HTTP$MOBILE_PATH"
      flood_pid="$STARTED_PID" ;;
  esac
  wrk -t"$WRK_THREADS" -c"$MOBILE_CONNECTIONS" -d"${PHASE_S}s" --timeout "$WRK_TIMEOUT" --latency -s "$WORK/clients.lua" \
    "$BFFD_HTTP$MOBILE_PATH" >"$WORK/wrk-$tag.txt" 2>&1 || die "wrk failed: $(tail -n 3 "$WORK/wrk-$tag.txt")"
  wait "$fleet_pid" || die "firmware-sim failed in $tag: $(tail -n 3 "$WORK/fleet-$tag.err")"
  [ -z "$flood_pid" ] || wait "$flood_pid" || true
  grep -q 'Non-2xx' "$WORK/wrk-$tag.txt" && log "warning: $tag: well-behaved clients were refused: $(grep Non-2xx "$WORK/wrk-$tag.txt")"
  mobile_p99["$name"]+="$(wrk_p99_ms "$WORK/wrk-$tag.txt") "
  device_p99["$name"]+="$(report_field "$WORK/fleet-$tag.json" latency_ms.p99) "
  mobile_rps["$name"]+="$(awk '/^Requests\/sec:/ { print $2 }' "$WORK/wrk-$tag.txt") "
  case "$name" in
    device-flood)
      local exchanges
      exchanges="$(( $(report_field "$WORK/flooder-$tag.json" sent) + $(report_field "$WORK/flooder-$tag.json" retried) ))"
      flood_note["$name"]="flooder: $exchanges requests ($(factor "$exchanges" 1)x its limit), $(report_field "$WORK/flooder-$tag.json" acknowledged) acknowledged" ;;
    mobile-flood)
      local total non2xx
      total="$(awk '/requests in/ { print $1 }' "$WORK/flooder-$tag.out")"
      non2xx="$(awk '/Non-2xx/ { print $NF }' "$WORK/flooder-$tag.out")"
      flood_note["$name"]="flooder: ${total:-0} requests ($(factor "${total:-0}" "$CLIENT_RPS")x its limit), ${non2xx:-0} refused (429)" ;;
  esac
  log "round $r $name: mobile p99 $(wrk_p99_ms "$WORK/wrk-$tag.txt") ms, devices p99 $(report_field "$WORK/fleet-$tag.json" latency_ms.p99) ms ${flood_note[$name]:-}"
}

declare -A mobile_p99 device_p99 mobile_rps flood_note
PHASES=(baseline device-flood mobile-flood)
log "$DEVICES CoAP devices at 1 reading/s each; mobile clients at $MOBILE_RPS req/s over $MOBILE_CLIENTS addresses;" \
  "client limit $CLIENT_RPS/s; flooders at ${FLOOD_FACTOR}x (nice $FLOODER_NICE); ${PHASE_S}s phases x $ROUNDS rounds; $(machine_load)"
for r in $(seq "$ROUNDS"); do
  order=("${PHASES[@]:$(( (r - 1) % ${#PHASES[@]} ))}" "${PHASES[@]:0:$(( (r - 1) % ${#PHASES[@]} ))}")
  for p in "${order[@]}"; do phase "$p" "$r"; done
done

printf '\nisolation: p99 latency of well-behaved clients while one client floods at %sx its limit (%s rounds of %ss)\n' \
  "$FLOOD_FACTOR" "$ROUNDS" "$PHASE_S"
printf '  %-14s %14s %8s %16s %8s %12s   %s\n' "" "mobile p99 ms" "vs base" "devices p99 ms" "vs base" "mobile r/s" "flooder"
base_m="$(printf '%s\n' ${mobile_p99[baseline]} | median)"; base_d="$(printf '%s\n' ${device_p99[baseline]} | median)"
verdict=met
for p in "${PHASES[@]}"; do
  m="$(printf '%s\n' ${mobile_p99[$p]} | median)"; d="$(printf '%s\n' ${device_p99[$p]} | median)"
  rm_="$(awk -v a="$m" -v b="$base_m" 'BEGIN { printf "%.2f", a / b }')"
  rd="$(awk -v a="$d" -v b="$base_d" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }')"
  rps="$(printf '%s\n' ${mobile_rps[$p]} | median)"
  printf '  %-14s %14s %7sx %16s %7sx %12s   %s\n' "$p" "$m" "$rm_" "$d" "$rd" "$rps" "${flood_note[$p]:--}"
  for ratio in "$rm_" "$rd"; do
    awk -v r="$ratio" -v t="$TARGET_RATIO" 'BEGIN { exit !(r > t) }' && verdict=MISSED
  done
done
printf '  all rounds, mobile p99 ms: %s\n' "$(for p in "${PHASES[@]}"; do printf '%s [%s] ' "$p" "${mobile_p99[$p]% }"; done)"
printf '  all rounds, devices p99 ms: %s\n' "$(for p in "${PHASES[@]}"; do printf '%s [%s] ' "$p" "${device_p99[$p]% }"; done)"
printf '  target: every phase at most %sx the baseline: %s\n' "$TARGET_RATIO" "$verdict"
printf '  rate-limited answers counted by bffd: %s\n' \
  "$(curl -s "$BFFD_ADMIN/metrics" | awk '/^bffd_rate_limited_total/ { printf "%s %s  ", $1, $2 }')"
printf '  (%s, %s)\n' "$(date -u '+%Y-%m-%d %H:%M')" "$(machine_load)"
