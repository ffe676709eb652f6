# common.sh - what the benchmark scripts share: a free loopback port, and a `vggserve serve`
# started on it and waited for until /readyz answers. Source it from bash (set -u safe).
#
#   bench_serve LOG COMMAND...   runs COMMAND --port P in the background (stdout dropped,
#                                stderr to LOG); sets $port and $server. Returns 0 once
#                                /readyz answers 200, 1 (after printing LOG) when the server
#                                exits or is not ready within 120 s.
#   bench_stop                   stops $server, if any, and waits for it.

bench_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

bench_serve() {
  local log=$1
  shift
  port=$(bench_free_port)
  "$@" --port "$port" >/dev/null 2>"$log" &
  server=$!
  for _ in $(seq 1 600); do
    curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && return 0
    kill -0 "$server" 2>/dev/null || break
    sleep 0.2
  done
  cat "$log" >&2
  return 1
}

bench_stop() {
  if [[ -n ${server:-} ]]; then
    kill "$server" 2>/dev/null
    wait "$server" 2>/dev/null || true
  fi
  server=
}
