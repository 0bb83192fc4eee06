#!/bin/sh
# bench/load.sh: the HTTP end-to-end figures of docs/BENCHMARKS.md (make bench-load).
# Starts `jifu serve` on the built apps (durable private PostgreSQL), warms it,
# then measures GET /apps/hello/ twice, printing the load average around each:
#   1. closed loop: hey, CONC clients (default 64) for DUR (default 20s);
#   2. open loop: bench/openloop at a fixed RATE (default 5000 req/s) for DUR,
#      whose latencies count from each request's due time, so they are not
#      held back by the clients' own waiting;
#   3. with FLOOR=1, hey against bench/floor (a server that does nothing): the
#      best any server can show with the generator on the same cores;
#   4. with VEGETA=1, the same open loop with vegeta (which costs about 300 µs
#      of CPU per request, too much to offer 5,000 req/s on these two cores).
# After each run it prints the CPU seconds the server, PostgreSQL (postmaster
# and backends) and the load generator used, and their sum per request: on
# two cores, 2 s of CPU per second bound the throughput whatever else runs.
# Usage: bench/load.sh [BIN] [APPS_DIR] [ADDR]
#   env: DUR CONC RATE, RATES="1000 2000 5000" (open loop at each), ONLY=hey|open, FLOOR=1, VEGETA=1,
#   SERVE_FLAGS (for example --interrupt=wazero), DATA_DIR
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
OPENLOOP=$(mktemp -d)/openloop
(cd "$(dirname "$0")" && go build -o "$OPENLOOP" ./openloop)
if [ "${VEGETA:-}" = 1 ]; then
	VEGETA=$(command -v vegeta || echo "$(go env GOPATH)/bin/vegeta")
	[ -x "$VEGETA" ] || go install github.com/tsenart/vegeta/v12@v12.13.0
fi

DATA_DIR=${DATA_DIR:-.data}
"$BIN" --log-level=warn --data-dir "$DATA_DIR" serve --dev-apps "$APPS" --addr "$ADDR" ${SERVE_FLAGS:-} >/dev/null &
pid=$!
trap 'kill -INT $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT INT TERM
for _ in $(seq 150); do
	curl -sf "http://$ADDR/readyz" >/dev/null && break
	sleep 0.2
done
hey -n 5000 -c 16 "$URL" >/dev/null # warm: every pool instance, PostgreSQL's caches

# ticks PID...: user+system clock ticks of the processes (and PostgreSQL's
# backends when given the postmaster).
ticks() {
	for p in "$@"; do
		[ -r "/proc/$p/stat" ] && awk '{print $14 + $15}' "/proc/$p/stat"
	done | awk '{s += $1} END {print s + 0}'
}
pgpids() {
	pm=$(head -1 "$DATA_DIR/pg/data/postmaster.pid" 2>/dev/null || true)
	[ -n "$pm" ] && echo "$pm $(pgrep -P "$pm" | tr '\n' ' ')"
}
HZ=$(getconf CLK_TCK)
# report REQUESTS GEN_CPU_SECONDS: the CPU since the last mark, per process and per request.
mark() { S0=$(ticks $pid); P0=$(ticks $(pgpids)); }
report() {
	awk -v n="$1" -v gen="$2" -v s="$(($(ticks $pid) - S0))" -v p="$(($(ticks $(pgpids)) - P0))" -v hz="$HZ" 'BEGIN {
		s /= hz; p /= hz
		printf "   CPU seconds: server %.1f, PostgreSQL %.1f, load generator %.1f; per request %.0f µs (server %.0f, PostgreSQL %.0f, generator %.0f) over %d requests\n",
			s, p, gen, (s + p + gen) / n * 1e6, s / n * 1e6, p / n * 1e6, gen / n * 1e6, n }'
}

if [ "${ONLY:-}" != open ]; then
	echo "== hey -z $DUR -c $CONC $URL   (load average before: $(cut -d' ' -f1-3 /proc/loadavg))"
	mark
	/usr/bin/time -f '%U %S' -o /tmp/jifu-load-gen.time hey -z "$DUR" -c "$CONC" "$URL" >/tmp/jifu-load-hey.txt
	sed -n '/Summary/,/Status code/p;/\[200\]/p' /tmp/jifu-load-hey.txt
	report "$(awk '/responses/ {s += $2} END {print s + 0}' /tmp/jifu-load-hey.txt)" "$(awk '{print $1 + $2}' /tmp/jifu-load-gen.time)"
	echo "   load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
fi
if [ "${ONLY:-}" != hey ]; then
	for rate in ${RATES:-$RATE}; do
		echo "== openloop -rate $rate -duration $DUR -url $URL   (load average before: $(cut -d' ' -f1-3 /proc/loadavg))"
		mark
		/usr/bin/time -f '%U %S' -o /tmp/jifu-load-gen.time "$OPENLOOP" -url "$URL" -rate "$rate" -duration "$DUR" | tee /tmp/jifu-load-open.txt
		report "$(awk '/^Requests/ {print $2}' /tmp/jifu-load-open.txt)" "$(awk '{print $1 + $2}' /tmp/jifu-load-gen.time)"
		echo "   load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
	done
fi
if [ "${VEGETA:-}" = 1 ]; then
	echo "== vegeta attack -rate $RATE/s -duration $DUR GET $URL   (load average before: $(cut -d' ' -f1-3 /proc/loadavg))"
	mark
	echo "GET $URL" | /usr/bin/time -f '%U %S' -o /tmp/jifu-load-gen.time "$VEGETA" attack -rate "$RATE/s" -duration "$DUR" >/tmp/jifu-load-vegeta.bin
	"$VEGETA" report </tmp/jifu-load-vegeta.bin | tee /tmp/jifu-load-vegeta.txt
	report "$(awk '/^Requests/ {gsub(",", "", $5); print $5}' /tmp/jifu-load-vegeta.txt)" "$(awk '{print $1 + $2}' /tmp/jifu-load-gen.time)"
	echo "   load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
fi
if [ "${FLOOR:-}" = 1 ]; then
	FLOORBIN=$(dirname "$OPENLOOP")/floor
	(cd "$(dirname "$0")" && go build -o "$FLOORBIN" ./floor)
	"$FLOORBIN" -addr 127.0.0.1:18090 &
	fpid=$!
	sleep 0.5
	hey -n 5000 -c 16 http://127.0.0.1:18090/ >/dev/null
	echo "== floor: hey -z $DUR -c $CONC against bench/floor   (load average before: $(cut -d' ' -f1-3 /proc/loadavg))"
	F0=$(ticks $fpid)
	/usr/bin/time -f '%U %S' -o /tmp/jifu-load-gen.time hey -z "$DUR" -c "$CONC" http://127.0.0.1:18090/ >/tmp/jifu-load-floor.txt
	sed -n '/Summary/,/Status code/p;/\[200\]/p' /tmp/jifu-load-floor.txt
	awk -v n="$(awk '/responses/ {s += $2} END {print s + 0}' /tmp/jifu-load-floor.txt)" -v gen="$(awk '{print $1 + $2}' /tmp/jifu-load-gen.time)" \
		-v s="$(($(ticks $fpid) - F0))" -v hz="$HZ" 'BEGIN { s /= hz
		printf "   CPU seconds: floor server %.1f, load generator %.1f; per request %.0f µs (server %.0f, generator %.0f) over %d requests\n",
			s, gen, (s + gen) / n * 1e6, s / n * 1e6, gen / n * 1e6, n }'
	kill $fpid
fi
