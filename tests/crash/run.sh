#!/usr/bin/env bash
# Crash safety (issue 13 point 2): a real server on SQLite and then on PostgreSQL, 16
# concurrent clients rotating refresh tokens (first-party JSON API and OAuth /token) and
# racing authorization-code redemptions while the server is killed with SIGKILL and
# restarted on the same database; then a private redis-server is killed -9 under load and
# restarted. tests/crash/storm.py keeps every client's ledger and checks the invariants
# (stated at its top) against the ledgers, the database (sqlite3 / psql) and the audit log.
# Exits non-zero on any violated invariant.
#
#   bash tests/crash/run.sh                     # both databases (as in CI)
#   CRASH_DATABASES=sqlite bash tests/crash/run.sh
#   CRASH_SEED=1234 CRASH_KILLS=8 bash tests/crash/run.sh
#   CRASH_KNOWN_BUGS=A5,C5 bash tests/crash/run.sh   # report these invariants, do not fail on them
#   CRASH_KEEP=1 …                              # on failure keep the work dir (ledger.json) and DB
#
# Uses target/debug/portcullis (cargo build first) or PORTCULLIS_BIN; PostgreSQL on
# postgres://postgres@127.0.0.1:5432 (CRASH_POSTGRES_ADMIN_URL), a fresh database per
# run, dropped afterwards. Installs Debian's sqlite3 if it is missing.
set -euo pipefail
cd "$(dirname "$0")/../.."

BIN="${PORTCULLIS_BIN:-target/debug/portcullis}"
[ -n "${PORTCULLIS_BIN:-}" ] || nice -n 10 cargo build --quiet
DATABASES="${CRASH_DATABASES:-sqlite postgres}"
PG_ADMIN="${CRASH_POSTGRES_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
PG_BASE="${PG_ADMIN%/*}"

if ! command -v sqlite3 >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sqlite3 >/dev/null
fi
command -v redis-server >/dev/null 2>&1 || { echo "redis-server is required" >&2; exit 1; }
if [[ " $DATABASES " == *" postgres "* ]]; then
  command -v psql >/dev/null 2>&1 || { echo "psql is required for the PostgreSQL run" >&2; exit 1; }
  psql "$PG_ADMIN" -XAtqc 'SELECT 1' >/dev/null ||
    { echo "PostgreSQL is unreachable at $PG_ADMIN" >&2; exit 1; }
fi

dir=""
pgdb=""
cleanup() {
  if [ -n "$dir" ]; then
    # Only the processes storm.py started (it writes their pids here).
    for f in "$dir"/server.pid "$dir"/redis.pid; do
      [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null || true
    done
    rm -rf "$dir"
  fi
  if [ -n "$pgdb" ]; then
    psql "$PG_ADMIN" -XAtqc "DROP DATABASE IF EXISTS \"$pgdb\" WITH (FORCE)" >/dev/null 2>&1 || true
  fi
  dir=""
  pgdb=""
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
json_field() { python3 -c "import json, sys; print(json.load(sys.stdin)[\"$1\"])"; }

run_one() {
  local db="$1"
  dir="$(mktemp -d)"
  local port redis_port
  port="$(free_port)"
  redis_port="$(free_port)"
  if [ "$db" = sqlite ]; then
    export PORTCULLIS_DATABASE_URL="sqlite://$dir/crash.db"
  else
    pgdb="crash_$(date +%s)_$$"
    psql "$PG_ADMIN" -XAtqc "CREATE DATABASE \"$pgdb\"" >/dev/null
    export PORTCULLIS_DATABASE_URL="$PG_BASE/$pgdb"
  fi
  export PORTCULLIS_MASTER_KEY="$(python3 -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())')"
  export PORTCULLIS_BIND="127.0.0.1:$port"
  export PORTCULLIS_PUBLIC_URL="http://127.0.0.1:$port"
  export PORTCULLIS_LOG_LEVEL=warn
  # 16 clients from one address: the storm is not about the limiter (the Redis phase turns
  # it on with its own windows).
  export PORTCULLIS_RATE_LIMIT__ENABLED=false
  # Cheap hashing for the sign-ins (the cost is not what is tested here).
  export PORTCULLIS_ARGON2__MEMORY_KIB=1024 PORTCULLIS_ARGON2__ITERATIONS=1 PORTCULLIS_ARGON2__PARALLELISM=1

  local redirect="http://127.0.0.1:9/callback" password="Crash-Passw0rd!x" users="" tenant_id client cid secret rl_id rl_key
  "$BIN" migrate >/dev/null
  tenant_id="$("$BIN" tenant create crash --name "Crash" --json | json_field id)"
  rl_id="$("$BIN" tenant create rl --name "Rate limit probe" --json | json_field id)"
  rl_key="$("$BIN" apikey create --tenant rl --name probe --scope '*' --json | json_field key)"
  client="$("$BIN" client create --tenant crash --name "Crash RP" --redirect-uri "$redirect" \
    --grant-type authorization_code --grant-type refresh_token --json)"
  cid="$(json_field client_id <<<"$client")"
  secret="$(json_field client_secret <<<"$client")"
  for i in 1 2 3 4; do
    printf '%s\n' "$password" | "$BIN" user create --tenant crash --email "user$i@crash.example" \
      --password-stdin --json >/dev/null
    users="${users:+$users,}user$i@crash.example"
  done

  local status=0
  PYTHONDONTWRITEBYTECODE=1 python3 tests/crash/storm.py --bin "$BIN" --workdir "$dir" --db "$db" \
    --db-url "$PORTCULLIS_DATABASE_URL" --port "$port" --tenant crash --tenant-id "$tenant_id" \
    --client-id "$cid" --client-secret "$secret" --redirect-uri "$redirect" --users "$users" \
    --password "$password" --rl-tenant rl --rl-tenant-id "$rl_id" --rl-key "$rl_key" --redis-port "$redis_port" || status=$?
  if [ "$status" -ne 0 ]; then
    echo "== $db: server log (last 40 lines)" >&2
    grep -v "slow statement" "$dir/server.log" | tail -n 40 >&2 || true
    if [ -n "${CRASH_KEEP:-}" ]; then
      local keep
      keep="$(mktemp -d /tmp/crash-keep.XXXX)"
      cp -r "$dir"/. "$keep"/
      echo "== kept the work directory (ledger.json, logs, SQLite file) in $keep" >&2
      if [ -n "$pgdb" ]; then
        echo "== kept the PostgreSQL database $PORTCULLIS_DATABASE_URL (drop it yourself)" >&2
        pgdb=""
      fi
    fi
  fi
  if [ -f "$dir/summary.json" ]; then
    python3 - "$dir/summary.json" >>"$summaries" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
failed = [k + (" (known bug)" if v.endswith("known bug") else "")
          for k, v in s["invariants"].items() if v != "ok"]
print(f"{s['database']:9} {s['seconds']:6.1f}s  requests {s['http_requests_sent']:6}  refreshes "
      f"{s['refreshes_sent']:5}  rotations ok {s['rotations_seen_succeeded']:5}  kills "
      f"{s['kills']}  restarts {s['restarts']}  code races {s['code_races']['total']:3}  "
      f"invariants: {'all ok' if not failed else 'FAILED ' + ','.join(failed)}")
PY
  fi
  cleanup
  return "$status"
}

overall=0
start=$SECONDS
summaries="$(mktemp)"
for db in $DATABASES; do
  echo "== crash safety on $db"
  if run_one "$db"; then
    echo "== $db: all invariants held"
  else
    echo "== $db: invariants violated" >&2
    overall=1
  fi
done
echo "== crash safety: $((SECONDS - start)) s for $DATABASES"
cat "$summaries"
rm -f "$summaries"
exit "$overall"
