#!/usr/bin/env bash
# bench/http.sh: bffd's mobile and web HTTP fronts against their ceilings, and bffd's memory afterwards.
#
#   (a) mobile product, cache hit: bffd (embedded domain) against a bare cpp-httplib server and nginx
#       serving the identical bytes and headers; same wrk settings, several rounds, medians.
#   (b) web product page with bff-domain as its own process and injected latencies: p50/p99 against the
#       30 ms critical path (recommendations 20 ms, then one catalog batch lookup 10 ms).
#   (c) bffd's resident memory after the runs.
#
# Run through `./bff bench http` (it builds first and sets BFF_BUILD_DIR). Settings, from the environment:
#   BENCH_DURATION (10s)  BENCH_ROUNDS (5)  BENCH_WRK_THREADS (1)  BENCH_MOBILE_CONNECTIONS (32)
#   BENCH_WEB_CONNECTIONS (64)  BENCH_KEEP (1: keep the work directory)
#   BENCH_QUIET_WAIT_S (120): how long each run waits for other load on the machine to pass
#   BENCH_ONLY: all (default) | mobile | web | ceilings (the two ceilings alone, on a synthetic response)
set -euo pipefail
shopt -u patsub_replacement 2>/dev/null || true  # '&' in header values must stay literal in ${x//a/b}

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${BFF_BUILD_DIR:-$ROOT/build}"
[ -d "$BUILD" ] && BUILD="$(cd "$BUILD" && pwd)"
BIN="$BUILD/bin"

DURATION="${BENCH_DURATION:-10s}"
ROUNDS="${BENCH_ROUNDS:-5}"
WRK_THREADS="${BENCH_WRK_THREADS:-1}"          # 2 cores: one for wrk, one for the server under test
MOBILE_CONNECTIONS="${BENCH_MOBILE_CONNECTIONS:-32}"
WEB_CONNECTIONS="${BENCH_WEB_CONNECTIONS:-64}"
ONLY="${BENCH_ONLY:-all}"
QUIET_WAIT_S="${BENCH_QUIET_WAIT_S:-120}"       # before each run, wait this long for other load to pass

readonly SKU="SKU-10001"
readonly MOBILE_PATH="/mobile/v1/products/$SKU"
readonly WEB_PATH="/web/v1/products/$SKU"
readonly TARGET_RATIO="0.9"        # bffd against the bare cpp-httplib ceiling
readonly CRITICAL_PATH_MS=30       # recommendations (20) then a catalog batch lookup (10); the rest in parallel
readonly P50_SLACK_MS=5
readonly P99_SLACK_MS=15
readonly FAULTS='{"catalog":{"latency_ms":10},"inventory":{"latency_ms":15},"reviews":{"latency_ms":25},"recommendations":{"latency_ms":20},"promotions":{"latency_ms":5}}'
readonly START_TIMEOUT_S=120       # first start seeds the data directory
readonly WARMUP_DURATION="2s"
readonly WRK_TIMEOUT="5s"
readonly QUIET_BUSY_PCT=15         # CPU use of the idle machine above which a run's figure is suspect

WORK="$(mktemp -d "${TMPDIR:-/tmp}/bff-bench-http.XXXXXX")"
PIDS=()

log() { printf '[bench http] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Shared helpers (cleanup, start, stop_process, wait_for_line, json_field, machine_load, cpu_busy_pct, median).
# shellcheck source=bench/lib.bash
source "$ROOT/bench/lib.bash"
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_http URL: waits until URL answers at all (any status).
wait_http() {
  for _ in $(seq $((START_TIMEOUT_S * 10))); do
    curl -s -o /dev/null --max-time 2 "$1" && return 0
    sleep 0.1
  done
  die "$1 does not answer"
}

http_status() { curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$1" || true; }



warn_if_busy() {
  if [ "$(pgrep -c cc1plus || true)" -gt 0 ]; then
    log "warning: compilers are running on this machine; figures will be low ($(machine_load))"
  fi
}

# to_ms VALUE: wrk's latency ("950.00us", "1.23ms", "1.50s", "1.00m") in milliseconds.
to_ms() {
  awk -v v="$1" 'BEGIN {
    n = v + 0; u = v; sub(/^[0-9.]+/, "", u);
    if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000;
    printf "%.2f", n }'
}


# wrk_percentile LABEL PCT: a latency percentile ("50%", "99%") from the last run of LABEL, in ms.
wrk_percentile() { to_ms "$(awk -v p="$2" '$1 == p { print $2 }' "$WORK/wrk-$1.txt")"; }

require() {
  command -v wrk >/dev/null || die "wrk is not installed (./bff bench installs it)"
  command -v nginx >/dev/null || die "nginx is not installed (./bff bench installs nginx-light)"
  command -v curl >/dev/null || die "curl is not installed"
  local b bins=(bench_http_ceiling)
  [ "$ONLY" = ceilings ] || bins+=(bffd bff-domain)
  for b in "${bins[@]}"; do
    [ -x "$BIN/$b" ] || die "$BIN/$b is missing; build first (./bff build)"
  done
}

# One load client from one address is the whole benchmark: the per-client limit stays in the path
# (its cost is measured) but far above any rate reached here.
cat >"$WORK/bffd.toml" <<'TOML'
[rate_limit]
client_rps = 10000000
client_burst = 10000000
TOML

# start_bffd NAME ARGS...: starts bffd with HTTP and admin on free ports; sets BFFD_PID and BFFD_HTTP.
start_bffd() {
  local name="$1"; shift
  start "$name" "$BIN/bffd" --config "$WORK/bffd.toml" --http 127.0.0.1:0 --admin 127.0.0.1:0 "$@"
  BFFD_PID="$STARTED_PID"
  local ready
  ready="$(wait_for_line "$name" "$BFFD_PID" '"msg":"bffd ready"')"
  BFFD_HTTP="$(json_field "$ready" http)"
  [ -n "$BFFD_HTTP" ] || die "$name's ready line names no http address: $ready"
  log "$name ready at $BFFD_HTTP (pid $BFFD_PID)"
}

memory_of() {
  local pid="$1"
  awk '/^VmRSS:/ { rss = $2 } /^VmHWM:/ { hwm = $2 } END { printf "VmRSS %.1f MiB (peak VmHWM %.1f MiB)", rss / 1024, hwm / 1024 }' \
    "/proc/$pid/status"
}

# Writes the response the ceilings serve: headers as `curl -D` shows them and the body bytes.
capture_response() {
  local url="$1" status
  status="$(curl -s -D "$WORK/captured.headers" -o "$WORK/captured.body" -w '%{http_code}' --max-time 10 "$url" || true)"
  [ "$status" = 200 ] || die "capturing $url: HTTP $status"
  tr -d '\r' <"$WORK/captured.headers" | grep -v -i -e '^HTTP/' -e '^$' >"$WORK/captured.header-lines"
}

header_value() { grep -i -m1 "^$1:" "$WORK/captured.header-lines" | cut -d: -f2- | sed 's/^ *//'; }

# start_nginx: nginx serving the captured body at MOBILE_PATH with the captured headers; sets NGINX_URL.
start_nginx() {
  local prefix="$WORK/nginx" port conf add_headers="" line name value lower
  mkdir -p "$prefix/www$(dirname "$MOBILE_PATH")" "$prefix/client_body" "$prefix/proxy" "$prefix/fastcgi"
  cp "$WORK/captured.body" "$prefix/www$MOBILE_PATH"
  # Workers run as an unprivileged user when the master is root: they must reach the body file.
  chmod a+x "$WORK" "$prefix"
  chmod -R a+rX "$prefix/www"
  while IFS= read -r line; do
    name="${line%%:*}"
    value="${line#*:}"; value="${value# }"
    lower="$(printf '%s' "$name" | tr 'A-Z' 'a-z')"
    case "$lower" in
      content-type | content-length | connection | keep-alive | transfer-encoding | date | server) continue ;;
    esac
    value="${value//\\/\\\\}"; value="${value//\'/\\\'}"
    add_headers+="      add_header $name '$value' always;"$'\n'
  done <"$WORK/captured.header-lines"
  port="$("$BIN/bench_http_ceiling" --free-port)"
  conf="$(<"$ROOT/bench/nginx.conf.in")"
  conf="${conf//@PREFIX@/$prefix}"
  conf="${conf//@PORT@/$port}"
  conf="${conf//@ROOT@/$prefix/www}"
  conf="${conf//@CONTENT_TYPE@/$(header_value Content-Type)}"
  conf="${conf//@ADD_HEADERS@/${add_headers%$'\n'}}"
  printf '%s\n' "$conf" >"$prefix/nginx.conf"
  start nginx nginx -p "$prefix" -e "$prefix/error.log" -c "$prefix/nginx.conf"
  NGINX_PID="$STARTED_PID"
  NGINX_URL="http://127.0.0.1:$port$MOBILE_PATH"
  for _ in $(seq $((START_TIMEOUT_S * 10))); do
    [ "$(http_status "$NGINX_URL")" = 200 ] && return 0
    kill -0 "$NGINX_PID" 2>/dev/null || { cat "$prefix/error.log" "$WORK/nginx.err" >&2 || true; die "nginx did not start"; }
    sleep 0.1
  done
  die "nginx does not answer $NGINX_URL"
}

start_ceiling() {
  start ceiling "$BIN/bench_http_ceiling" --port 0 --threads "$MOBILE_CONNECTIONS" \
    --headers "$WORK/captured.headers" --body "$WORK/captured.body"
  CEILING_PID="$STARTED_PID"
  local line
  line="$(wait_for_line ceiling "$CEILING_PID" 'bench_http_ceiling listening')"
  CEILING_URL="http://127.0.0.1:$(json_field "$line" port)$MOBILE_PATH"
}

# The ceilings must serve what bffd serves, byte for byte in the body.
check_same_body() {
  local url="$1" label="$2"
  curl -s -o "$WORK/check.body" --max-time 10 "$url"
  cmp -s "$WORK/check.body" "$WORK/captured.body" || die "$label serves a different body than the captured one"
}

show_headers() {
  log "$1 answers:"
  curl -s -D - -o /dev/null --max-time 10 "$2" | tr -d '\r' | sed '/^$/d; s/^/    /' >&2
}

# Synthetic stand-in for bffd's mobile answer, used only when bffd cannot serve it yet.
write_synthetic_response() {
  printf '%s' '{"id":"SKU-10001","name":"Bench product","price":"12.99","currency":"EUR","thumbnail_url":"https://img.example/SKU-10001/thumb.jpg"}' \
    >"$WORK/captured.body"
  printf 'HTTP/1.1 200 OK\r\nCache-Control: public, max-age=3600, stale-while-revalidate=60\r\nContent-Type: application/json\r\nETag: "0123456789abcdef"\r\nServer-Timing: cache;desc=hit, total;dur=0.1\r\ntraceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n\r\n' \
    >"$WORK/captured.headers"
  tr -d '\r' <"$WORK/captured.headers" | grep -v -i -e '^HTTP/' -e '^$' >"$WORK/captured.header-lines"
}

# bench_mobile [ceilings]: with "ceilings", bffd is not started and the ceilings serve a synthetic answer.
bench_mobile() {
  log "(a) mobile product, cache hit: $MOBILE_CONNECTIONS connections, wrk -t$WRK_THREADS, $DURATION x $ROUNDS rounds"
  warn_if_busy
  local have_bffd=0 bffd_url="" mobile_pid="" status=""
  if [ "${1:-}" != ceilings ]; then
    start_bffd bffd-mobile --data "$WORK/data-embedded"
    mobile_pid="$BFFD_PID"
    bffd_url="$BFFD_HTTP$MOBILE_PATH"
    for _ in 1 2 3; do status="$(http_status "$bffd_url")"; done  # the first answers fill the cache
    if [ "$status" = 200 ]; then
      have_bffd=1
      capture_response "$bffd_url"
      show_headers bffd "$bffd_url"
    else
      log "bffd answers HTTP $status for $MOBILE_PATH: measuring the ceilings alone, on a synthetic response"
    fi
  fi
  [ "$have_bffd" = 1 ] || write_synthetic_response

  start_ceiling
  start_nginx
  check_same_body "$CEILING_URL" "bench_http_ceiling"
  check_same_body "$NGINX_URL" "nginx"
  show_headers "bench_http_ceiling" "$CEILING_URL"
  show_headers "nginx" "$NGINX_URL"

  local targets=(ceiling nginx) url
  [ "$have_bffd" = 1 ] && targets=(bffd ceiling nginx)
  declare -A urls=([bffd]="$bffd_url" [ceiling]="$CEILING_URL" [nginx]="$NGINX_URL")
  declare -A results=()
  for t in "${targets[@]}"; do run_wrk "warmup-$t" "$MOBILE_CONNECTIONS" "${urls[$t]}" "$WARMUP_DURATION" >/dev/null; done
  log "load before the runs: $(machine_load)"
  for r in $(seq "$ROUNDS"); do
    # Interleaved, so a disturbance on the machine hits every target alike.
    for t in "${targets[@]}"; do
      url="${urls[$t]}"
      results[$t]+="$(run_wrk "$t-$r" "$MOBILE_CONNECTIONS" "$url" "$DURATION") "
    done
    log "round $r: $(for t in "${targets[@]}"; do printf '%s %s  ' "$t" "$(awk '/^Requests\/sec:/ { print $2 }' "$WORK/wrk-$t-$r.txt")"; done)"
  done
  log "load after the runs: $(machine_load)"

  printf '\n(a) mobile product, cache hit: GET %s, %s connections, wrk -t%s -d%s, %s rounds\n' \
    "$MOBILE_PATH" "$MOBILE_CONNECTIONS" "$WRK_THREADS" "$DURATION" "$ROUNDS"
  printf '%-22s %12s %10s %10s   %s\n' server "median req/s" "p50 ms" "p99 ms" "all rounds (req/s)"
  declare -A med=()
  for t in "${targets[@]}"; do
    med[$t]="$(printf '%s\n' ${results[$t]} | median)"
    local p50s="" p99s=""
    for r in $(seq "$ROUNDS"); do p50s+="$(wrk_percentile "$t-$r" 50%) "; p99s+="$(wrk_percentile "$t-$r" 99%) "; done
    printf '%-22s %12.0f %10s %10s   %s\n' "$(case $t in bffd) echo "bffd";; ceiling) echo "bare cpp-httplib";; nginx) echo "nginx (file)";; esac)" \
      "${med[$t]}" "$(printf '%s\n' $p50s | median)" "$(printf '%s\n' $p99s | median)" "${results[$t]}"
  done
  if [ "$have_bffd" = 1 ]; then
    local to_ceiling to_nginx verdict
    to_ceiling="$(awk -v a="${med[bffd]}" -v b="${med[ceiling]}" 'BEGIN { printf "%.2f", a / b }')"
    to_nginx="$(awk -v a="${med[bffd]}" -v b="${med[nginx]}" 'BEGIN { printf "%.2f", a / b }')"
    verdict="$(awk -v r="$to_ceiling" -v t="$TARGET_RATIO" 'BEGIN { print (r >= t) ? "PASS" : "FAIL" }')"
    printf 'summary (a): bffd %.0f req/s = %sx bare cpp-httplib (%.0f), %sx nginx (%.0f); target >= %sx bare cpp-httplib: %s\n' \
      "${med[bffd]}" "$to_ceiling" "${med[ceiling]}" "$to_nginx" "${med[nginx]}" "$TARGET_RATIO" "$verdict"
    MOBILE_MEMORY="$(memory_of "$mobile_pid")"
  else
    printf 'summary (a): ceilings only (bffd does not serve %s yet): bare cpp-httplib %.0f req/s, nginx %.0f req/s\n' \
      "$MOBILE_PATH" "${med[ceiling]}" "${med[nginx]}"
  fi
  stop_process "$NGINX_PID"
  stop_process "$CEILING_PID"
  [ -z "$mobile_pid" ] || stop_process "$mobile_pid"
}

bench_web() {
  log "(b) web product page, bff-domain with injected latencies: $WEB_CONNECTIONS connections, $DURATION x $ROUNDS rounds"
  warn_if_busy
  mkdir -p "$WORK/data-web"
  start domain "$BIN/bff-domain" --listen 127.0.0.1:0 --data "$WORK/data-web" --faults "$FAULTS"
  local domain_pid="$STARTED_PID" line domain_port
  line="$(wait_for_line domain "$domain_pid" '"msg":"bff-domain listening"')"
  domain_port="$(json_field "$line" port)"
  log "bff-domain on port $domain_port with faults $FAULTS"
  # Sharing the data directory shares the internal credential key.
  start_bffd bffd-web --domain "http://127.0.0.1:$domain_port" --data "$WORK/data-web"
  local web_pid="$BFFD_PID" url="$BFFD_HTTP$WEB_PATH" status
  status="$(http_status "$url")"
  if [ "$status" != 200 ]; then
    printf 'summary (b): not measured: bffd answers HTTP %s for %s\n' "$status" "$WEB_PATH"
    stop_process "$web_pid"; stop_process "$domain_pid"
    return 0
  fi
  curl -s --max-time 10 -D "$WORK/web.headers" -o "$WORK/web.body" "$url"
  log "one web answer: $(grep -i '^server-timing' "$WORK/web.headers" | tr -d '\r')"
  if ! grep -q '"degraded":\[\]' "$WORK/web.body"; then
    log "warning: the page is degraded under these latencies: $(grep -o '"degraded":\[[^]]*\]' "$WORK/web.body")"
  fi
  local single=""
  for _ in $(seq 10); do single+="$(curl -s -o /dev/null -w '%{time_total}' --max-time 10 "$url" | awk '{ printf "%.2f", $1 * 1000 }') "; done
  log "ten sequential requests (ms): $single"

  run_wrk web-warmup "$WEB_CONNECTIONS" "$url" "$WARMUP_DURATION" >/dev/null
  log "load before the runs: $(machine_load)"
  local rps="" p50s="" p99s=""
  for r in $(seq "$ROUNDS"); do
    rps+="$(run_wrk "web-$r" "$WEB_CONNECTIONS" "$url" "$DURATION" -s "$ROOT/bench/server_timing.lua") "
    p50s+="$(wrk_percentile "web-$r" 50%) "
    p99s+="$(wrk_percentile "web-$r" 99%) "
    log "round $r: $(awk '/^Requests\/sec:/ { print $2 }' "$WORK/wrk-web-$r.txt") req/s, p50 $(wrk_percentile "web-$r" 50%) ms, p99 $(wrk_percentile "web-$r" 99%) ms"
  done
  log "load after the runs: $(machine_load)"
  local p50 p99 d50 d99 verdict
  p50="$(printf '%s\n' $p50s | median)"
  p99="$(printf '%s\n' $p99s | median)"
  d50="$(awk -v p="$p50" -v c="$CRITICAL_PATH_MS" 'BEGIN { printf "%+.2f", p - c }')"
  d99="$(awk -v p="$p99" -v c="$CRITICAL_PATH_MS" 'BEGIN { printf "%+.2f", p - c }')"
  verdict="$(awk -v a="$p50" -v b="$p99" -v c="$CRITICAL_PATH_MS" -v s50="$P50_SLACK_MS" -v s99="$P99_SLACK_MS" \
    'BEGIN { print (a - c <= s50 && b - c <= s99) ? "PASS" : "FAIL" }')"
  printf '\n(b) web product page: GET %s, %s connections, wrk -t%s -d%s, %s rounds, critical path %s ms\n' \
    "$WEB_PATH" "$WEB_CONNECTIONS" "$WRK_THREADS" "$DURATION" "$ROUNDS" "$CRITICAL_PATH_MS"
  printf '%-10s %10s %12s   %s\n' metric median "vs 30 ms" "all rounds"
  printf '%-10s %10s %12s   %s\n' "p50 ms" "$p50" "$d50" "$p50s"
  printf '%-10s %10s %12s   %s\n' "p99 ms" "$p99" "$d99" "$p99s"
  printf '%-10s %10s %12s   %s\n' "req/s" "$(printf '%s\n' $rps | median)" "" "$rps"
  # Where the time goes, as bffd itself reports it (Server-Timing), in the last round.
  printf 'inside bffd, round %s (ms):\n' "$ROUNDS"
  grep '^server-timing' "$WORK/wrk-web-$ROUNDS.txt" | sed 's/^server-timing /  /'
  local inside
  inside="$(awk '$2 == "total" { sub("p50=", "", $4); print $4 }' "$WORK/wrk-web-$ROUNDS.txt")"
  printf '  the HTTP front and loopback add %s ms at p50 (wrk p50 %s - bffd total p50 %s)\n' \
    "$(awk -v a="$(wrk_percentile "web-$ROUNDS" 50%)" -v b="$inside" 'BEGIN { printf "%.2f", a - b }')" \
    "$(wrk_percentile "web-$ROUNDS" 50%)" "$inside"
  printf 'summary (b): p50 %s ms (%s ms from the 30 ms critical path, target within %s), p99 %s ms (%s ms, target within %s): %s\n' \
    "$p50" "$d50" "$P50_SLACK_MS" "$p99" "$d99" "$P99_SLACK_MS" "$verdict"
  WEB_MEMORY="$(memory_of "$web_pid")"
  stop_process "$web_pid"
  stop_process "$domain_pid"
}

main() {
  require
  log "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(awk '/MemTotal/ { printf "%.1f GiB RAM", $2 / 1048576 }' /proc/meminfo)"
  log "binaries: $BIN; work directory: $WORK"
  MOBILE_MEMORY=""
  WEB_MEMORY=""
  case "$ONLY" in
    all) bench_mobile; bench_web ;;
    mobile) bench_mobile ;;
    web) bench_web ;;
    ceilings) bench_mobile ceilings ;;
    *) die "BENCH_ONLY must be all, mobile, web or ceilings" ;;
  esac
  printf '\n(c) bffd resident memory after the runs\n'
  [ -n "$MOBILE_MEMORY" ] && printf 'summary (c): bffd, embedded domain, after (a): %s\n' "$MOBILE_MEMORY"
  [ -n "$WEB_MEMORY" ] && printf 'summary (c): bffd, remote domain, after (b): %s\n' "$WEB_MEMORY"
  [ -z "$MOBILE_MEMORY$WEB_MEMORY" ] && printf 'summary (c): not measured (bffd served neither endpoint)\n'
  return 0
}

main "$@"
