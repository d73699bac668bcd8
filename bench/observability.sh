#!/usr/bin/env bash
# bench/observability.sh: what tracing and metrics cost on the hottest path, the mobile product cache hit.
#
# bffds on the same data, measured round after round with the same wrk settings:
#   off:     server.metrics = false, no span sink;
#   metrics: metrics recorded, no span sink;
#   on:      metrics recorded and spans exported over OTLP/HTTP to a collector stand-in (nginx answering
#            200 to POST /v1/traces, so the export really happens), new traces sampled at
#            BENCH_SAMPLE_PERCENT (10, a production setting for a path this hot);
#   all:     the same with every request traced (tracing.sample_percent = 100, the default).
# Target: "on" serves at least 0.95x the requests/s of "off". Each bffd's CPU time per request is
# printed too (from /proc/PID/stat around each run): on a shared, noisy machine it moves far less than
# requests/s do. The spans exported and dropped are read from each bffd's /metrics afterwards.
#
# Run through `./bff bench observability` (it builds first and sets BFF_BUILD_DIR). Settings:
#   BENCH_DURATION (10s)  BENCH_ROUNDS (5)  BENCH_WRK_THREADS (1)  BENCH_MOBILE_CONNECTIONS (32)
#   BENCH_QUIET_WAIT_S (120)  BENCH_KEEP (1: keep the work directory)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${BFF_BUILD_DIR:-$ROOT/build}"
[ -d "$BUILD" ] && BUILD="$(cd "$BUILD" && pwd)"
BIN="$BUILD/bin"

DURATION="${BENCH_DURATION:-10s}"
ROUNDS="${BENCH_ROUNDS:-5}"
WRK_THREADS="${BENCH_WRK_THREADS:-1}"
MOBILE_CONNECTIONS="${BENCH_MOBILE_CONNECTIONS:-32}"
QUIET_WAIT_S="${BENCH_QUIET_WAIT_S:-120}"
SAMPLE_PERCENT="${BENCH_SAMPLE_PERCENT:-10}"

readonly MOBILE_PATH="/mobile/v1/products/SKU-10001"
readonly TARGET_RATIO="0.95"
readonly START_TIMEOUT_S=120
readonly WARMUP_DURATION="3s"
readonly WRK_TIMEOUT="5s"
readonly QUIET_BUSY_PCT=15

WORK="$(mktemp -d "${TMPDIR:-/tmp}/bff-bench-obs.XXXXXX")"
PIDS=()

log() { printf '[bench observability] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# shellcheck source=bench/lib.bash
source "$ROOT/bench/lib.bash"
trap cleanup EXIT
trap 'exit 130' INT TERM

for tool in wrk nginx curl; do command -v "$tool" >/dev/null || die "$tool is not installed (./bff bench installs it)"; done
for b in bffd bench_http_ceiling; do [ -x "$BIN/$b" ] || die "$BIN/$b is missing; build first (./bff build)"; done

# The collector stand-in: accepts every OTLP/HTTP export and answers as a collector does.
start_collector() {
  local prefix="$WORK/collector" port
  mkdir -p "$prefix/client_body" "$prefix/proxy" "$prefix/fastcgi"
  port="$("$BIN/bench_http_ceiling" --free-port)"
  cat >"$prefix/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $prefix/nginx.pid;
error_log $prefix/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path $prefix/client_body;
  proxy_temp_path $prefix/proxy;
  fastcgi_temp_path $prefix/fastcgi;
  client_max_body_size 64m;
  keepalive_requests 100000;
  server {
    listen 127.0.0.1:$port;
    location = /v1/traces { default_type application/json; return 200 '{}'; }
  }
}
EOF
  start collector nginx -p "$prefix" -e "$prefix/error.log" -c "$prefix/nginx.conf"
  COLLECTOR_URL="http://127.0.0.1:$port"
  for _ in $(seq 100); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' -X POST --data '{}' "$COLLECTOR_URL/v1/traces" || true)" = 200 ] && return 0
    sleep 0.1
  done
  die "the collector stand-in does not answer"
}

# start_bffd NAME CONFIG: bffd on free ports with CONFIG; sets BFFD_PID, BFFD_HTTP and BFFD_ADMIN.
start_bffd() {
  local name="$1" config="$2" ready
  start "$name" "$BIN/bffd" --config "$config" --data "$WORK/data" --http 127.0.0.1:0 --admin 127.0.0.1:0 \
    --coap "" --coaps ""
  BFFD_PID="$STARTED_PID"
  ready="$(wait_for_line "$name" "$BFFD_PID" '"msg":"bffd ready"')"
  BFFD_HTTP="$(json_field "$ready" http)"
  BFFD_ADMIN="$(json_field "$ready" admin)"
  [ -n "$BFFD_HTTP" ] || die "$name's ready line names no http address: $ready"
}

start_collector
# One load client from one address: the per-client limit stays in the path, far above the rates here.
common='[mqtt]
enabled = false
[iot]
demo_fleet = 0
[rate_limit]
client_rps = 10000000
client_burst = 10000000'
printf '%s\n[tracing]\ncollector_url = "%s"\nsample_percent = %s\n' "$common" "$COLLECTOR_URL" "$SAMPLE_PERCENT" >"$WORK/on.toml"
printf '%s\n[tracing]\ncollector_url = "%s"\nsample_percent = 100\n' "$common" "$COLLECTOR_URL" >"$WORK/all.toml"
printf '%s\n' "$common" >"$WORK/metrics.toml"
printf '%s\n[server]\nmetrics = false\n' "$common" >"$WORK/off.toml"
MODES=(off metrics on all)

declare -A url admin pid
for mode in "${MODES[@]}"; do
  start_bffd "bffd-$mode" "$WORK/$mode.toml"
  url[$mode]="$BFFD_HTTP$MOBILE_PATH"; admin[$mode]="$BFFD_ADMIN"; pid[$mode]="$BFFD_PID"
  status="$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "${url[$mode]}" || true)"
  [ "$status" = 200 ] || die "bffd-$mode answers $MOBILE_PATH with HTTP $status"
done
[ "$(curl -s -o /dev/null -w '%{http_code}' "${admin[off]}/metrics")" = 404 ] || die "bffd-off still serves /metrics"

log "mobile cache hit, $MOBILE_CONNECTIONS connections, wrk -t$WRK_THREADS, $DURATION x $ROUNDS rounds, on and off interleaved"
for mode in "${MODES[@]}"; do run_wrk "warmup-$mode" "$MOBILE_CONNECTIONS" "${url[$mode]}" "$WARMUP_DURATION" >/dev/null; done
# cpu_ticks PID: user + system CPU time of PID so far, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
TICKS_PER_S="$(getconf CLK_TCK)"
declare -A results cpu_us
for r in $(seq "$ROUNDS"); do
  # Rotate which goes first, so that a trend on the machine does not favour one of them.
  order=("${MODES[@]:$(( (r - 1) % ${#MODES[@]} ))}" "${MODES[@]:0:$(( (r - 1) % ${#MODES[@]} ))}")
  line=""
  for mode in "${order[@]}"; do
    t0="$(cpu_ticks "${pid[$mode]}")"
    v="$(run_wrk "$mode-$r" "$MOBILE_CONNECTIONS" "${url[$mode]}" "$DURATION")"
    t1="$(cpu_ticks "${pid[$mode]}")"
    requests="$(awk '/requests in/ { print $1 }' "$WORK/wrk-$mode-$r.txt")"
    us="$(awk -v a="$t0" -v b="$t1" -v n="$requests" -v hz="$TICKS_PER_S" 'BEGIN { printf "%.1f", (b - a) * 1e6 / hz / n }')"
    results[$mode]+="$v "; cpu_us[$mode]+="$us "; line+="$mode $v (${us} us)  "
  done
  log "round $r: $line"
done

metric() { curl -s "${admin[$1]}/metrics" | awk -v m="$2" '$1 == m || index($1, m "{") == 1 { s += $2 } END { printf "%d\n", s }'; }
declare -A label=(
  [off]="off (server.metrics = false, no span sink)"
  [metrics]="metrics only"
  [on]="metrics + spans, sample_percent $SAMPLE_PERCENT"
  [all]="metrics + spans, every request (100)")
declare -A med med_cpu
for mode in "${MODES[@]}"; do
  med[$mode]="$(printf '%s\n' ${results[$mode]} | median)"
  med_cpu[$mode]="$(printf '%s\n' ${cpu_us[$mode]} | median)"
done
printf '\nobservability overhead, GET %s (cache hit), %s connections, wrk -t%s -d%s, %s rounds\n' \
  "$MOBILE_PATH" "$MOBILE_CONNECTIONS" "$WRK_THREADS" "$DURATION" "$ROUNDS"
printf '  %-42s %10s %8s %12s %8s %10s %10s   %s\n' "" "median r/s" "vs off" "CPU us/req" "vs off" "exported" "dropped" "all rounds"
for mode in "${MODES[@]}"; do
  ratio="$(awk -v a="${med[$mode]}" -v b="${med[off]}" 'BEGIN { printf "%.3f", a / b }')"
  exported="-"; dropped="-"
  if [ "$mode" = on ] || [ "$mode" = all ]; then
    exported="$(metric "$mode" bffd_spans_exported_total)"; dropped="$(metric "$mode" bffd_spans_dropped_total)"
  fi
  cpu_ratio="$(awk -v a="${med_cpu[$mode]}" -v b="${med_cpu[off]}" 'BEGIN { printf "%.3f", a / b }')"
  printf '  %-42s %10s %7sx %12s %7sx %10s %10s   %s\n' "${label[$mode]}" "${med[$mode]}" "$ratio" "${med_cpu[$mode]}" \
    "$cpu_ratio" "$exported" "$dropped" "${results[$mode]}"
done
ratio="$(awk -v a="${med[on]}" -v b="${med[off]}" 'BEGIN { printf "%.3f", a / b }')"
verdict="$(awk -v r="$ratio" -v t="$TARGET_RATIO" 'BEGIN { print (r >= t) ? "met" : "MISSED" }')"
printf '  metrics + spans (sample_percent %s) = %sx off: target >= %s: %s\n' "$SAMPLE_PERCENT" "$ratio" "$TARGET_RATIO" "$verdict"
printf '  (%s, %s)\n' "$(date -u '+%Y-%m-%d %H:%M')" "$(machine_load)"
[ "$(metric on bffd_spans_exported_total)" -gt 0 ] || log "warning: no span was exported"
