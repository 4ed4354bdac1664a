# Sourced by the fuzzing scripts: a real server on a fresh SQLite file, with tenant `fuzz`,
# an admin API key of it (TENANT_KEY), a platform key (PLATFORM_KEY), an admin user
# (admin@fuzz.example / FUZZ_PASSWORD), dynamic client registration on, the limiter off and
# cheap hashing. Sets BIN, BASE and FUZZ_DIR (the server's log is $FUZZ_DIR/server.log);
# stops the server and removes FUZZ_DIR on exit. `server_panicked` fails if the log shows
# a panic. A script may define `fuzz_provision` (run before the server starts) first.

BIN="${PORTCULLIS_BIN:-target/debug/portcullis}"
[ -n "${PORTCULLIS_BIN:-}" ] || cargo build --quiet

FUZZ_DIR="$(mktemp -d)"
FUZZ_SERVER=""
fuzz_cleanup() {
  [ -n "$FUZZ_SERVER" ] && kill "$FUZZ_SERVER" 2>/dev/null || true
  rm -rf "$FUZZ_DIR"
}
trap fuzz_cleanup EXIT

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
export PORTCULLIS_DATABASE_URL="sqlite://$FUZZ_DIR/fuzz.db"
export PORTCULLIS_MASTER_KEY="$(python3 -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())')"
export PORTCULLIS_BIND="127.0.0.1:$port"
export PORTCULLIS_PUBLIC_URL="http://127.0.0.1:$port"
export PORTCULLIS_LOG_LEVEL=warn
# A fuzzer is one address sending thousands of requests: the limiter would answer most of them
# 429 (tested on its own in the suite) and hide what the handlers do.
export PORTCULLIS_RATE_LIMIT__ENABLED=false
# Cheap hashing for the users the fuzzer creates (the cost is not what is tested here).
export PORTCULLIS_ARGON2__MEMORY_KIB=1024 PORTCULLIS_ARGON2__ITERATIONS=1 PORTCULLIS_ARGON2__PARALLELISM=1
export FUZZ_PASSWORD='Fuzz-Passw0rd!x'

json_field() { python3 -c "import json, sys; print(json.load(sys.stdin)[\"$1\"])"; }
"$BIN" migrate >/dev/null
"$BIN" tenant create fuzz --name "Fuzz" >/dev/null
TENANT_KEY="$("$BIN" apikey create --tenant fuzz --name fuzz --scope '*' --json | json_field key)"
PLATFORM_KEY="$("$BIN" apikey create --platform --name fuzz --scope '*' --json | json_field key)"
printf '%s\n' "$FUZZ_PASSWORD" | "$BIN" user create --tenant fuzz --email admin@fuzz.example \
  --password-stdin --role admin --json >/dev/null
export TENANT_KEY PLATFORM_KEY
# What the sourcing script provisions besides, before the server starts.
if declare -F fuzz_provision >/dev/null; then fuzz_provision; fi

"$BIN" serve >"$FUZZ_DIR/server.log" 2>&1 &
FUZZ_SERVER=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
  sleep 0.1
done
BASE="http://127.0.0.1:$port"
export BASE

# Dynamic client registration on, so /register is exercised past its switch.
curl -fsS -X PATCH "$BASE/t/fuzz/api/v1/admin/settings" -H "x-api-key: $TENANT_KEY" \
  -H 'content-type: application/json' -d '{"registration_enabled": true}' >/dev/null

server_panicked() {
  if grep -n "panicked" "$FUZZ_DIR/server.log"; then
    echo "the server panicked during the fuzzing run" >&2
    return 0
  fi
  return 1
}
