#!/bin/sh
# bench/load.sh: the HTTP end-to-end figures of docs/BENCHMARKS.md (make bench-load).
# Starts `jifu serve` on the built apps (durable private PostgreSQL), warms it,
# then measures GET /apps/hello/ twice, printing the load average around each:
#   1. closed loop: hey, CONC clients (default 64) for DUR (default 20s);
#   2. open loop: vegeta at a fixed RATE (default 5000 req/s) for DUR, whose
#      latencies are not held back by the clients' own waiting.
# Usage: bench/load.sh [BIN] [APPS_DIR] [ADDR]
set -eu
BIN=${1:-bin/jifu}
APPS=${2:-build/apps}
ADDR=${3:-127.0.0.1:18089}
DUR=${DUR:-20s}
CONC=${CONC:-64}
RATE=${RATE:-5000}
URL=http://$ADDR/apps/hello/

if ! command -v hey >/dev/null 2>&1; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y hey >/dev/null
fi
VEGETA=$(command -v vegeta || echo "$(go env GOPATH)/bin/vegeta")
if [ ! -x "$VEGETA" ]; then
	go install github.com/tsenart/vegeta/v12@v12.13.0
fi

"$BIN" --log-level=warn serve --dev-apps "$APPS" --addr "$ADDR" ${SERVE_FLAGS:-} >/dev/null &
pid=$!
trap 'kill -INT $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT INT TERM
for _ in $(seq 150); do
	curl -sf "http://$ADDR/readyz" >/dev/null && break
	sleep 0.2
done
hey -n 5000 -c 16 "$URL" >/dev/null # warm: every pool instance, PostgreSQL's caches

if [ "${ONLY:-}" != vegeta ]; then
	echo "== hey -z $DUR -c $CONC $URL   (load average before: $(cut -d' ' -f1-3 /proc/loadavg))"
	hey -z "$DUR" -c "$CONC" "$URL" | sed -n '/Summary/,/Status code/p'
	echo "   load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
fi
if [ "${ONLY:-}" != hey ]; then
	echo "== vegeta attack -rate $RATE/s -duration $DUR GET $URL   (load average before: $(cut -d' ' -f1-3 /proc/loadavg))"
	echo "GET $URL" | "$VEGETA" attack -rate "$RATE/s" -duration "$DUR" | "$VEGETA" report
	echo "   load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
fi
