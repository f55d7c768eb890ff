#!/bin/sh
# Scrapes GET /metrics of a stored fleet with Debian's real Prometheus, default scrape settings
# apart from the interval (30 s; scrape_timeout 10 s), and prints what Prometheus measured:
# up, scrape_duration_seconds, scrape_samples_scraped, scrape_body_size_bytes per job.
#
#   bench/scrape-with-prometheus.sh DIR [SECONDS] [PARAMS...]
#
# DIR holds storage.db from `bench-storage --dir DIR` (it is hard-linked as the collector's
# database: the collector migrates and writes to it). The release-fast collector
# (target/release-fast/routerstats-collector) serves it on loopback with its default config,
# except listeners and a retention long enough to keep the generated (old) samples. One scrape
# job per PARAMS item (a query string: "" is the default answer, "stations=true",
# "shard=0/4"...). SECONDS (default 100) is how long Prometheus scrapes before the figures are
# read. Everything runs on 127.0.0.1 and is stopped at the end.
set -eu
[ $# -ge 1 ] || { echo "usage: $0 DIR [SECONDS] [PARAMS...]" >&2; exit 2; }
dir=$1
shift
secs=100
if [ $# -ge 1 ]; then
  secs=$1
  shift
fi
[ $# -gt 0 ] || set -- ""
bin=${COLLECTOR_BIN:-target/release-fast/routerstats-collector}
work=$dir/scrape
rm -rf "$work"
mkdir -p "$work/data" "$work/prom"
ln "$dir/storage.db" "$work/data/routerstats.db"
api=127.0.0.1:18931
prom=127.0.0.1:18932
cat >"$work/collector.toml" <<EOF
data_dir = "$work/data"
ingest_listen = "127.0.0.1:18930"
api_listen = "$api"
[retention]
raw_days = 3650
rollup_5m_days = 3650
rollup_1h_days = 3650
EOF
"$bin" apikey create --data-dir "$work/data" --role read --name scrape-bench 2>/dev/null |
  tr -d '\n' >"$work/key.trim"
"$bin" serve --config "$work/collector.toml" >"$work/collector.log" 2>&1 &
cpid=$!
{
  echo "global: {scrape_interval: 30s, scrape_timeout: 10s}"
  echo "scrape_configs:"
  i=0
  for p in "$@"; do
    echo "  - job_name: j$i"
    echo "    metrics_path: /metrics"
    echo "    authorization: {credentials_file: $PWD/$work/key.trim}"
    if [ -n "$p" ]; then
      printf '    params: {'
      first=1
      for kv in $(echo "$p" | tr '&' ' '); do
        [ $first = 1 ] || printf ', '
        printf '%s: ["%s"]' "${kv%%=*}" "${kv#*=}"
        first=0
      done
      echo '}'
    fi
    echo "    static_configs: [{targets: [\"$api\"]}]"
    i=$((i + 1))
  done
} >"$work/prometheus.yml"
sleep 3
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/prom" \
  --web.listen-address="$prom" --enable-feature=extra-scrape-metrics \
  >"$work/prometheus.log" 2>&1 &
ppid=$!
trap 'kill $ppid $cpid 2>/dev/null || true' EXIT
sleep "$secs"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
i=0
for p in "$@"; do
  echo "job j$i: GET /metrics?$p (every scrape in the run, oldest first)"
  for m in up scrape_duration_seconds scrape_samples_scraped scrape_body_size_bytes; do
    v=$(curl -s "http://$prom/api/v1/query" --data-urlencode "query=$m{job=\"j$i\"}[10m]" |
      grep -o '"[0-9.e+-]*"' | tr -d '"' | tr '\n' ' ')
    echo "  $m = $v"
  done
  i=$((i + 1))
done
echo "per-scrape history: curl 'http://$prom/api/v1/query?query=scrape_duration_seconds[5m]' (while running)"
kill $ppid $cpid 2>/dev/null || true
wait $ppid $cpid 2>/dev/null || true
# The logs stay in DIR (the database link and Prometheus' data go).
cp "$work/collector.log" "$work/prometheus.log" "$dir/" 2>/dev/null || true
rm -rf "$work"
