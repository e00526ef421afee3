#!/usr/bin/env bash
# HTTP load from a second process (wrk) against a release `stormcom serve` on loopback:
# storefront product reads (with and without the 1 s microcache) and full guest checkouts
# (hot SKU and spread over 1,000 variants). Prints figures; asserts nothing.
# Usage: bash bench/http.sh [postgres-url]   (SQLite in a temp dir when no URL is given)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "wrk is required (apt-get install wrk)"; exit 1; }
cargo build --release -q -p stormcom
BIN=$PWD/target/release/stormcom
DIR=$(mktemp -d)
export STORMCOM_DATA_DIR=$DIR STORMCOM_LOG=warn
if [ $# -ge 1 ]; then
  SCHEMA=bench_http_$$
  psql "$1" -qc "CREATE SCHEMA $SCHEMA" >/dev/null
  export STORMCOM_DATABASE_URL="$1?options=-c%20search_path%3D$SCHEMA"
  trap 'kill $(jobs -p) 2>/dev/null; psql "$1" -qc "DROP SCHEMA $SCHEMA CASCADE" >/dev/null; rm -rf "$DIR"' EXIT
else
  trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$DIR"' EXIT
fi
PORT=18090
URL=http://127.0.0.1:$PORT

echo 'bench password 123' | $BIN admin create-user --email bench@example.com >/dev/null
$BIN admin create-store --name Bench --handle bench --owner bench@example.com >/dev/null
$BIN admin set-plan --store bench --plan enterprise >/dev/null
# One load generator on one address is not a crowd: measure the server, not the limiter.
export STORMCOM_RATE_LIMITS=off
$BIN bench catalog --products 1000 --stock 1000000 > "$DIR/catalog.csv"
$BIN import shopify --store bench "$DIR/catalog.csv" >/dev/null
$BIN import shopify --store bench fixtures/shopify/apparel.csv >/dev/null

serve() {
  $BIN serve --listen 127.0.0.1:$PORT "$@" > "$DIR/serve.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 50); do curl -sf $URL/healthz >/dev/null && return; sleep 0.1; done
  echo "server did not start"; cat "$DIR/serve.log"; exit 1
}
stop() { kill $SERVER; wait $SERVER 2>/dev/null || true; }

PRODUCT=$URL/v1/storefront/bench/products/classic-varsity-top
serve --storefront-cache-ms 0
echo "== storefront product read, no cache: wrk -t2 -c64 -d10s $PRODUCT"
wrk -t2 -c64 -d10s "$PRODUCT" | grep -E "Requests/sec|Latency"
stop
serve
echo "== storefront product read, 1 s microcache: wrk -t2 -c64 -d10s $PRODUCT"
wrk -t2 -c64 -d10s "$PRODUCT" | grep -E "Requests/sec|Latency"

curl -s "$URL/v1/storefront/bench/products/bench-product-1" | grep -o 'var_[0-9a-f]*' | head -1 > "$DIR/hot.txt"
: > "$DIR/spread.txt"
AFTER=""
while :; do
  PAGE=$(curl -s "$URL/v1/storefront/bench/products?limit=100$AFTER")
  echo "$PAGE" | grep -o '"id":"var_[0-9a-f]*"' | cut -d'"' -f4 >> "$DIR/spread.txt"
  NEXT=$(echo "$PAGE" | grep -o '"next_cursor":"prod_[0-9a-f]*"' | cut -d'"' -f4 || true)
  [ -z "$NEXT" ] && break
  AFTER="&after=$NEXT"
done
echo "== guest checkout, hot SKU: wrk -t32 -c32 -d10s -s bench/checkout.lua $URL -- bench hot.txt"
wrk -t32 -c32 -d10s -s bench/checkout.lua "$URL" -- bench "$DIR/hot.txt" | grep -E "checkouts|Latency"
echo "== guest checkout, spread over $(wc -l < "$DIR/spread.txt") variants: wrk -t32 -c32 -d10s -s bench/checkout.lua $URL -- bench spread.txt"
wrk -t32 -c32 -d10s -s bench/checkout.lua "$URL" -- bench "$DIR/spread.txt" | grep -E "checkouts|Latency"
echo "== server memory: $(grep -E 'VmHWM' /proc/$SERVER/status)"
stop
