# Helpers shared by bench/*.sh: processes started and stopped, log lines awaited, machine load, medians.
# Not a benchmark itself (./bff bench runs bench/*.sh). Sourced after the script has defined log, die,
# WORK, PIDS and START_TIMEOUT_S.

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    # A process that ignores SIGTERM for 10 s is killed.
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  PIDS=()
  if [ "${BENCH_KEEP:-0}" = 1 ]; then log "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}

# stop_process PID: ends one process this script started (SIGTERM, then SIGKILL after 10 s).
stop_process() {
  local pid="$1" keep=() p
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  for p in "${PIDS[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}

# start NAME CMD...: runs CMD in the background with its output in $WORK/NAME.{out,err}; sets STARTED_PID.
start() {
  local name="$1"; shift
  "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
  STARTED_PID=$!
  PIDS+=("$STARTED_PID")
}

# wait_for_line NAME PID PATTERN: prints the first line of NAME's output matching PATTERN, waiting for it.
wait_for_line() {
  local name="$1" pid="$2" pattern="$3" line
  for _ in $(seq $((START_TIMEOUT_S * 10))); do
    line="$(grep -h -m1 -e "$pattern" "$WORK/$name.out" "$WORK/$name.err" 2>/dev/null | head -n1 || true)"
    if [ -n "$line" ]; then printf '%s\n' "$line"; return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 20 "$WORK/$name.err" "$WORK/$name.out" >&2 || true
      die "$name exited before logging '$pattern'"
    fi
    sleep 0.1
  done
  die "$name did not log '$pattern' within ${START_TIMEOUT_S}s"
}

# json_field LINE FIELD: a string or number field of a one-line JSON object.
json_field() {
  printf '%s\n' "$1" | sed -n 's/.*"'"$2"'":"\{0,1\}\([^",}]*\).*/\1/p' | head -n1
}

machine_load() {
  local compiles
  compiles="$(pgrep -c cc1plus || true)"
  printf 'load average %s, %s compiler processes running' "$(cut -d' ' -f1-3 /proc/loadavg)" "${compiles:-0}"
}

# cpu_busy_pct: how busy the machine is over half a second, in percent (all cores).
cpu_busy_pct() {
  local a b
  a="$(head -n1 /proc/stat)"; sleep 0.5; b="$(head -n1 /proc/stat)"
  printf '%s\n%s\n' "$a" "$b" | awk '{ idle = $5 + $6; total = 0; for (i = 2; i <= NF; i++) total += $i }
    NR == 1 { i0 = idle; t0 = total } NR == 2 { printf "%.0f", 100 * (1 - (idle - i0) / (total - t0)) }'
}

median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print a[(NR + 1) / 2]; else printf "%.2f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

# run_wrk LABEL CONNECTIONS URL DURATION [WRK ARGS...]: runs wrk, keeps its output in $WORK/wrk-LABEL.txt,
# prints req/s.
run_wrk() {
  local label="$1" conns="$2" url="$3" duration="$4" out="$WORK/wrk-$1.txt"
  shift 4
  local busy waited=0
  busy="$(cpu_busy_pct)"
  # Between runs the servers idle: anything busy now is another workload sharing the cores. Give it a while
  # to finish before measuring anyway.
  while [ "$busy" -gt "$QUIET_BUSY_PCT" ] && [ "$waited" -lt "$QUIET_WAIT_S" ]; do
    [ "$waited" -eq 0 ] && log "$label: the machine is ${busy}% busy; waiting up to ${QUIET_WAIT_S}s for it to calm down"
    sleep 2; waited=$((waited + 3))
    busy="$(cpu_busy_pct)"
  done
  [ "$busy" -le "$QUIET_BUSY_PCT" ] || log "warning: $label starts with the machine ${busy}% busy; its figure is suspect"
  [ "$(pgrep -c cc1plus || true)" -eq 0 ] || log "warning: $label starts while compilers run; its figure is suspect"
  wrk -t"$WRK_THREADS" -c"$conns" -d"$duration" --timeout "$WRK_TIMEOUT" --latency "$@" "$url" >"$out" 2>&1 ||
    die "wrk failed against $url: $(tail -n 3 "$out")"
  if grep -q -e 'Non-2xx' -e 'Socket errors' "$out"; then
    log "warning: $label: $(grep -h -e 'Non-2xx' -e 'Socket errors' "$out" | tr -s ' ' | paste -sd';' -)"
  fi
  [ "$(pgrep -c cc1plus || true)" -eq 0 ] || log "warning: $label ended while compilers run; its figure is suspect"
  awk '/^Requests\/sec:/ { print $2 }' "$out"
}
