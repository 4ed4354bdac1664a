#!/usr/bin/env bash
# Schema-driven fuzzing of the JSON API: schemathesis (PyPI) against the served /openapi.json
# of a real server on SQLite, with a tenant, an admin API key, a platform key and a user
# provisioned through the CLI. Every operation, positive and negative data, the stateful
# links of the document; fails on any finding of the checks below, or on a panic in the
# server's log.
#
#   bash tests/fuzz/api.sh                 # bounded run (as in .ci/run)
#   FUZZ_MAX_EXAMPLES=200 FUZZ_MAX_TIME=1800 bash tests/fuzz/api.sh   # a longer one
#
# Installs schemathesis (PyPI) if it is missing; uses target/debug/portcullis (built if
# absent) or PORTCULLIS_BIN.
set -euo pipefail
cd "$(dirname "$0")/../.."

command -v schemathesis >/dev/null 2>&1 || python3 -m pip install --quiet schemathesis
BIN="${PORTCULLIS_BIN:-target/debug/portcullis}"
[ -n "${PORTCULLIS_BIN:-}" ] || cargo build --quiet
MAX_EXAMPLES="${FUZZ_MAX_EXAMPLES:-25}"
# Seconds for the tenant operations (52 of them); the 5 platform operations get a third.
MAX_TIME="${FUZZ_MAX_TIME:-300}"
CHECKS="not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"

dir="$(mktemp -d)"
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
export PORTCULLIS_DATABASE_URL="sqlite://$dir/fuzz.db"
export PORTCULLIS_MASTER_KEY="$(python3 -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())')"
export PORTCULLIS_BIND="127.0.0.1:$port"
export PORTCULLIS_PUBLIC_URL="http://127.0.0.1:$port"
export PORTCULLIS_LOG_LEVEL=warn
# A fuzzer is one address sending thousands of requests: the limiter would answer most of them
# 429 (tested on its own in the suite) and hide what the handlers do.
export PORTCULLIS_RATE_LIMIT__ENABLED=false
# Cheap hashing for the users the fuzzer creates (the cost is not what is tested here).
export PORTCULLIS_ARGON2__MEMORY_KIB=1024 PORTCULLIS_ARGON2__ITERATIONS=1 PORTCULLIS_ARGON2__PARALLELISM=1

json_field() { python3 -c "import json, sys; print(json.load(sys.stdin)[\"$1\"])"; }
"$BIN" migrate >/dev/null
"$BIN" tenant create fuzz --name "Fuzz" >/dev/null
TENANT_KEY="$("$BIN" apikey create --tenant fuzz --name fuzz --scope '*' --json | json_field key)"
PLATFORM_KEY="$("$BIN" apikey create --platform --name fuzz --scope '*' --json | json_field key)"
printf 'Fuzz-Passw0rd!x\n' | "$BIN" user create --tenant fuzz --email admin@fuzz.example \
  --password-stdin --role admin --json >/dev/null
export TENANT_KEY PLATFORM_KEY

"$BIN" serve >"$dir/server.log" 2>&1 &
server=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
  sleep 0.1
done

base="http://127.0.0.1:$port"
# Dynamic client registration on, so /register is exercised past its switch.
curl -fsS -X PATCH "$base/t/fuzz/api/v1/admin/settings" -H "x-api-key: $TENANT_KEY" \
  -H 'content-type: application/json' -d '{"registration_enabled": true}' >/dev/null
run() {
  local key="$1" max_time="$2"
  shift 2
  # --phases: the document's examples, the coverage phase (boundary and negative values for
  # every parameter), random generation, and the stateful links.
  schemathesis --no-color --config-file tests/fuzz/schemathesis.toml run "$base/openapi.json" \
    --url "$base" \
    --header "x-api-key: $key" \
    --checks "$CHECKS" \
    --mode all \
    --phases examples,coverage,fuzzing,stateful \
    --max-examples "$MAX_EXAMPLES" \
    --max-time "$max_time" \
    --request-timeout 10 \
    --workers 2 \
    "$@"
}
status=0
echo "== schemathesis: tenant operations (admin API key of tenant fuzz)"
run "$TENANT_KEY" "$MAX_TIME" --exclude-path-regex '^/api/v1/admin/(tenants|bans)' || status=1
echo "== schemathesis: platform operations (platform API key)"
run "$PLATFORM_KEY" "$((MAX_TIME / 3))" --include-path-regex '^/api/v1/admin/(tenants|bans)' || status=1

if grep -n "panicked" "$dir/server.log"; then
  echo "the server panicked during the fuzzing run" >&2
  status=1
fi
exit "$status"
