#!/usr/bin/env bash
# Portcullis benchmark: start-up time, idle memory and throughput/latency of the hot
# OAuth/OIDC endpoints, against a freshly migrated database, on 127.0.0.1 only.
#
#   bash benches/bench.sh [--no-build] [-h|--help]
#
# See benches/README.md for what is measured and the BENCH_* knobs.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: bash benches/bench.sh [--no-build] [-h|--help]

  --no-build   use the existing target/release/portcullis instead of `cargo build --release`

environment:
  BENCH_DURATION=10        seconds per scenario
  BENCH_CONCURRENCY=32     concurrent connections
  BENCH_WARMUP_REQUESTS=50 sequential warm-up requests per GET endpoint before the RSS reading
  BENCH_PORT=<free port>   port to bind on 127.0.0.1 (default: a free one)
  BENCH_DATABASE_URL=...   e.g. postgres://postgres@127.0.0.1:5432/bench (default: SQLite in a temp dir)
  BENCH_TENANT=bench       tenant slug to create / use
  BENCH_TOOL=auto          auto | oha | wrk (auto: oha, installed with cargo if missing; else wrk)
  BENCH_OPENSSL_SECONDS=3  seconds per `openssl speed` run; 0 skips the signing ceilings
  PORTCULLIS_MASTER_KEY    kept if set (e.g. to reuse a PostgreSQL database), else random
  PORTCULLIS_*             passed through to the server and CLI (BIND, PUBLIC_URL,
                           DATABASE_URL and LOG_LEVEL are always set by this script)
EOF
}

BUILD=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --no-build) BUILD=0 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "bench.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

DURATION="${BENCH_DURATION:-10}"
CONCURRENCY="${BENCH_CONCURRENCY:-32}"
WARMUP_REQUESTS="${BENCH_WARMUP_REQUESTS:-50}"
TENANT="${BENCH_TENANT:-bench}"
TOOL_CHOICE="${BENCH_TOOL:-auto}"
OPENSSL_SECONDS="${BENCH_OPENSSL_SECONDS:-3}"

for v in DURATION CONCURRENCY WARMUP_REQUESTS OPENSSL_SECONDS; do
    if ! [[ "${!v}" =~ ^[0-9]+$ ]]; then
        echo "bench.sh: BENCH_$v must be a non-negative integer (got '${!v}')" >&2
        exit 2
    fi
done
if ((DURATION < 1 || CONCURRENCY < 1)); then
    echo "bench.sh: BENCH_DURATION and BENCH_CONCURRENCY must be at least 1" >&2
    exit 2
fi
case "$TOOL_CHOICE" in auto | oha | wrk) ;; *)
    echo "bench.sh: BENCH_TOOL must be auto, oha or wrk" >&2; exit 2 ;;
esac

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$REPO_ROOT/target}"
[[ "$TARGET_DIR" = /* ]] || TARGET_DIR="$REPO_ROOT/$TARGET_DIR"
BIN="$TARGET_DIR/release/portcullis"

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] error: %s\n' "$*" >&2; exit 1; }

for cmd in curl python3 openssl; do
    command -v "$cmd" >/dev/null 2>&1 || die "$cmd is required"
done

# ---------------------------------------------------------------------------
# Cleanup: stop the server, remove the temp dir. Runs on every exit path.
# ---------------------------------------------------------------------------
TMP=""
SERVER_PID=""
# shellcheck disable=SC2317 # invoked through the EXIT trap
cleanup() {
    local rc=$?
    trap - EXIT
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        local i
        for ((i = 0; i < 50; i++)); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [[ -n "$TMP" && -d "$TMP" ]]; then
        rm -rf "$TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------

# json_field KEY: read a CLI/HTTP answer on stdin, print KEY of the JSON object in it
# (the whole input, or failing that its last line that is a JSON object). Exit 1 if absent.
json_field() {
    python3 -c '
import json, sys
key = sys.argv[1]
text = sys.stdin.read()
objs = []
try:
    objs.append(json.loads(text))
except ValueError:
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                objs.append(json.loads(line))
                break
            except ValueError:
                pass
for o in objs:
    if isinstance(o, dict) and o.get(key) not in (None, ""):
        print(o[key])
        sys.exit(0)
sys.exit(1)
' "$1"
}

# stamp VAR: store nanoseconds since the epoch in VAR without forking (bash 5's
# EPOCHREALTIME, microsecond resolution); falls back to `date +%s%N`.
stamp() {
    if [[ -n "${EPOCHREALTIME:-}" ]]; then
        printf -v "$1" '%s000' "${EPOCHREALTIME//[.,]/}"
    else
        printf -v "$1" '%s' "$(date +%s%N)"
    fi
}

basic_auth_header() { # id secret -> "Basic base64(id:secret)"
    printf 'Basic %s' "$(printf '%s:%s' "$1" "$2" | base64 | tr -d '\n')"
}

redact_url() { # hide credentials in a database URL
    printf '%s' "$1" | sed -E 's#(://)[^/@]*@#\1***@#'
}

# ---------------------------------------------------------------------------
# 1. Load generator: oha (cargo install if missing), else wrk (apt-get if missing)
# ---------------------------------------------------------------------------
TOOL=""
OHA=""
OHA_JSON_FLAGS=()

find_oha() {
    if command -v oha >/dev/null 2>&1; then
        command -v oha
    elif [[ -x "$HOME/.cargo/bin/oha" ]]; then
        printf '%s\n' "$HOME/.cargo/bin/oha"
    else
        return 1
    fi
}

setup_oha() {
    if ! OHA="$(find_oha)"; then
        command -v cargo >/dev/null 2>&1 || { log "cargo not found; cannot install oha"; return 1; }
        log "oha not found; checking crates.io (cargo info oha)"
        if ! timeout 180 cargo info oha >/dev/null 2>&1; then
            log "cargo info oha failed (no registry access?)"
            return 1
        fi
        log "installing oha with cargo into $HOME/.cargo (this takes a few minutes)"
        if ! cargo install oha --locked --root "$HOME/.cargo" >&2; then
            log "cargo install oha failed"
            return 1
        fi
        OHA="$(find_oha)" || return 1
    fi
    local help
    help="$("$OHA" --help 2>&1)" || true
    if grep -q -- '--output-format' <<<"$help"; then
        OHA_JSON_FLAGS=(--output-format json)
    elif grep -Eq -- '(^|[[:space:]])-j,? ' <<<"$help"; then
        OHA_JSON_FLAGS=(-j)
    else
        log "$OHA has neither --output-format nor -j; cannot read its results"
        return 1
    fi
    TOOL=oha
}

setup_wrk() {
    if ! command -v wrk >/dev/null 2>&1; then
        command -v apt-get >/dev/null 2>&1 || { log "wrk missing and no apt-get"; return 1; }
        log "installing wrk with apt-get"
        if ! DEBIAN_FRONTEND=noninteractive apt-get install -y wrk >&2; then
            DEBIAN_FRONTEND=noninteractive apt-get update >&2 || true
            DEBIAN_FRONTEND=noninteractive apt-get install -y wrk >&2 || return 1
        fi
    fi
    TOOL=wrk
}

case "$TOOL_CHOICE" in
    oha) setup_oha || die "oha unavailable" ;;
    wrk) setup_wrk || die "wrk unavailable" ;;
    auto) setup_oha || { log "falling back to wrk"; setup_wrk || die "neither oha nor wrk is available"; } ;;
esac
if [[ "$TOOL" = oha ]]; then
    TOOL_VERSION="$("$OHA" --version 2>/dev/null | head -n1 || true)"
else
    TOOL_VERSION="wrk $(wrk --version 2>&1 | head -n1 | sed -e "s/^wrk //" -e "s/ Copyright.*//" || true)"
fi
log "load generator: ${TOOL_VERSION:-$TOOL}"

# ---------------------------------------------------------------------------
# 2. Build
# ---------------------------------------------------------------------------
if ((BUILD)); then
    log "cargo build --release"
    (cd "$REPO_ROOT" && cargo build --release) || die "cargo build --release failed"
fi
[[ -x "$BIN" ]] || die "$BIN not found (build it, or drop --no-build)"

# ---------------------------------------------------------------------------
# 3. Environment
# ---------------------------------------------------------------------------
TMP="$(mktemp -d "${TMPDIR:-/tmp}/portcullis-bench.XXXXXX")"

if [[ -n "${BENCH_PORT:-}" ]]; then
    PORT="$BENCH_PORT"
else
    PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
fi
[[ "$PORT" =~ ^[0-9]+$ ]] || die "bad port: $PORT"
BASE="http://127.0.0.1:$PORT"
ISSUER="$BASE/t/$TENANT"

if [[ -n "${BENCH_DATABASE_URL:-}" ]]; then
    export PORTCULLIS_DATABASE_URL="$BENCH_DATABASE_URL"
else
    export PORTCULLIS_DATABASE_URL="sqlite://$TMP/bench.db"
fi
# A fresh key per run, unless one is given (to reuse a PostgreSQL database across runs).
if [[ -z "${PORTCULLIS_MASTER_KEY:-}" ]]; then
    PORTCULLIS_MASTER_KEY="$(openssl rand -base64 32)"
fi
export PORTCULLIS_MASTER_KEY
export PORTCULLIS_BIND="127.0.0.1:$PORT"
export PORTCULLIS_PUBLIC_URL="$BASE"
export PORTCULLIS_LOG_LEVEL=warn
DB_LABEL="$(redact_url "$PORTCULLIS_DATABASE_URL")"
log "database: $DB_LABEL"

# Run the CLI from the temp dir so no stray ./portcullis.toml is picked up.
pc() { (cd "$TMP" && "$BIN" "$@"); }

# ---------------------------------------------------------------------------
# 4. Migrate, create tenant and clients
# ---------------------------------------------------------------------------
pc migrate >"$TMP/migrate.out" 2>&1 || { cat "$TMP/migrate.out" >&2; die "portcullis migrate failed"; }

if ! pc tenant create "$TENANT" --name Bench --json >"$TMP/tenant.out" 2>"$TMP/tenant.err"; then
    # A reused (PostgreSQL) database may already have the tenant; carry on and let the
    # requests show whether it works.
    log "warning: tenant create $TENANT failed (already exists?): $(tr '\n' ' ' <"$TMP/tenant.err")"
fi

declare -A CLIENT_ID CLIENT_SECRET
for alg in RS256 ES256 EdDSA; do
    out="$TMP/client-$alg.out"
    if ! pc client create --tenant "$TENANT" --name "bench-$alg" \
        --redirect-uri http://127.0.0.1/cb --grant-type client_credentials --scope api \
        --signing-alg "$alg" --json >"$out" 2>"$TMP/client-$alg.err"; then
        cat "$TMP/client-$alg.err" >&2
        die "client create ($alg) failed"
    fi
    CLIENT_ID[$alg]="$(json_field client_id <"$out")" || { cat "$out" >&2; die "no client_id in client create ($alg) output"; }
    CLIENT_SECRET[$alg]="$(json_field client_secret <"$out")" || { cat "$out" >&2; die "no client_secret in client create ($alg) output"; }
done

# ---------------------------------------------------------------------------
# 5. Start the server: time to first 200 from /ready
# ---------------------------------------------------------------------------
# Polled with bash's /dev/tcp rather than curl: a curl exec costs ~15 ms here, which would be
# the resolution of the measurement; one probe below costs well under a millisecond.
ready_probe() { # -> 0 when GET /ready answers 200
    local line=""
    if ! { exec 3<>"/dev/tcp/127.0.0.1/$PORT"; } 2>/dev/null; then
        return 1
    fi
    printf 'GET /ready HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nConnection: close\r\n\r\n' "$PORT" >&3 2>/dev/null || true
    IFS= read -r -t 2 line <&3 2>/dev/null || true
    exec 3>&-
    LAST_READY_STATUS="${line%$'\r'}"
    [[ "$line" =~ ^HTTP/1\.[01]\ 200 ]]
}

READY_TIMEOUT_S=30
LAST_READY_STATUS="(no answer)"
# A FIFO held open read-write never delivers data: `read -t 0.001` on it is a 1 ms sleep
# without forking (an external `sleep` costs ~4 ms here).
mkfifo "$TMP/tick"
t0=""
t_ready=""
SECONDS=0
stamp t0
(cd "$TMP" && exec "$BIN" serve) >"$TMP/server.log" 2>&1 &
SERVER_PID=$!
exec {TICK_FD}<>"$TMP/tick" # opened after the spawn so the server does not inherit it
trap '' PIPE # a probe writing to a socket the server just closed must not kill the script
while :; do
    if ready_probe; then
        stamp t_ready
        break
    fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        tail -n 40 "$TMP/server.log" >&2 || true
        die "portcullis serve exited before /ready answered 200"
    fi
    if ((SECONDS > READY_TIMEOUT_S)); then
        tail -n 40 "$TMP/server.log" >&2 || true
        die "/ready did not answer 200 within $READY_TIMEOUT_S s (last answer: $LAST_READY_STATUS)"
    fi
    read -r -t 0.001 -u "$TICK_FD" _ || true
done
exec {TICK_FD}>&-
trap - PIPE
code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$BASE/ready" || true)"
[[ "$code" = 200 ]] || die "curl GET /ready answered $code after the probe saw 200"
STARTUP_MS="$(awk -v d="$((t_ready - t0))" 'BEGIN { printf "%.1f", d / 1e6 }')"
log "ready after $STARTUP_MS ms"

# ---------------------------------------------------------------------------
# Warm-up: a few sequential requests on every endpoint, and the introspection token.
# The token is fetched before any load, so a rate limiter on /token cannot starve it.
# ---------------------------------------------------------------------------
TOKEN_BODY='grant_type=client_credentials&scope=api'
FORM='application/x-www-form-urlencoded'

fetch_token() { # alg -> prints the access token, or fails
    local alg="$1" resp
    resp="$(curl -s --max-time 10 -u "${CLIENT_ID[$alg]}:${CLIENT_SECRET[$alg]}" \
        -H "Content-Type: $FORM" --data "$TOKEN_BODY" "$ISSUER/token" || true)"
    if ! json_field access_token <<<"$resp"; then
        log "warning: no access_token from $ISSUER/token with the $alg client: ${resp:0:300}"
        return 1
    fi
}

ACCESS_TOKEN="$(fetch_token RS256)" || ACCESS_TOKEN=""
fetch_token ES256 >/dev/null || true
fetch_token EdDSA >/dev/null || true

for path in "/.well-known/openid-configuration" "/jwks"; do
    for ((i = 0; i < WARMUP_REQUESTS; i++)); do
        curl -s -o /dev/null --max-time 5 "$ISSUER$path" || true
    done
done
if [[ -n "$ACCESS_TOKEN" ]]; then
    curl -s -o /dev/null --max-time 5 -u "${CLIENT_ID[RS256]}:${CLIENT_SECRET[RS256]}" \
        -H "Content-Type: $FORM" --data "token=$ACCESS_TOKEN" "$ISSUER/introspect" || true
fi

if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    tail -n 40 "$TMP/server.log" >&2 || true
    die "portcullis serve exited during the warm-up"
fi

rss_mib() { # field (VmRSS | VmHWM) -> MiB of the server process
    awk -v f="$1:" '$1 == f { printf "%.1f", $2 / 1024; found = 1 } END { if (!found) print "n/a" }' \
        "/proc/$SERVER_PID/status" 2>/dev/null || echo "n/a"
}
sleep 1
IDLE_RSS="$(rss_mib VmRSS)"
log "idle RSS after warm-up: $IDLE_RSS MiB"

# ---------------------------------------------------------------------------
# 6. Scenarios
# ---------------------------------------------------------------------------

# Parsers print one line: "<req/s> <p50 ms> <p99 ms> <non-2xx>", "-" where unknown.
parse_oha() {
    python3 -c '
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except Exception:
    sys.exit(1)
s = d.get("summary") or {}
lp = d.get("latencyPercentiles") or {}
def ms(v):
    return "-" if v is None else "%.2f" % (float(v) * 1000)
codes = d.get("statusCodeDistribution") or {}
# requestsPerSec from oha also counts the requests cancelled at the deadline; count only
# completed responses (any status, as wrk does) over the run time instead.
rps = s.get("requestsPerSec")
if s.get("total"):
    rps = sum(int(n) for n in codes.values()) / float(s["total"])
bad = 0
for code, n in codes.items():
    if not str(code).startswith("2"):
        bad += int(n)
# Requests still in flight when the duration ends are cancelled by oha; they are not errors.
for msg, n in (d.get("errorDistribution") or {}).items():
    if "deadline" not in msg.lower():
        bad += int(n)
print("%s %s %s %d" % ("-" if rps is None else "%.1f" % rps, ms(lp.get("p50")), ms(lp.get("p99")), bad))
' "$1"
}

parse_wrk() {
    python3 -c '
import json, sys
for line in open(sys.argv[1]):
    if line.startswith("BENCHJSON "):
        d = json.loads(line[len("BENCHJSON "):])
        rps = d["requests"] / (d["duration_us"] / 1e6) if d["duration_us"] else 0.0
        # wrk counts status >= 400 as errors; socket errors are added.
        bad = int(d["status_errors"] + d["socket_errors"])
        print("%.1f %.2f %.2f %d" % (rps, d["p50_us"] / 1000, d["p99_us"] / 1000, bad))
        sys.exit(0)
sys.exit(1)
' "$1"
}

WRK_LUA="$TMP/wrk.lua"
cat >"$WRK_LUA" <<'EOF'
local method = os.getenv("BENCH_WRK_METHOD")
if method and method ~= "" then wrk.method = method end
local body = os.getenv("BENCH_WRK_BODY")
if body and body ~= "" then wrk.body = body end
local ctype = os.getenv("BENCH_WRK_CTYPE")
if ctype and ctype ~= "" then wrk.headers["Content-Type"] = ctype end
local auth = os.getenv("BENCH_WRK_AUTH")
if auth and auth ~= "" then wrk.headers["Authorization"] = auth end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%.0f,"duration_us":%.0f,"p50_us":%.3f,"p99_us":%.3f,"status_errors":%.0f,"socket_errors":%.0f}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
EOF

# run_load NAME URL [METHOD CONTENT_TYPE AUTH_HEADER BODY] -> prints the parser's line
run_load() {
    local name="$1" url="$2" method="${3:-GET}" ctype="${4:-}" auth="${5:-}" body="${6:-}"
    local out="$TMP/load-$name.out"
    if [[ "$TOOL" = oha ]]; then
        local args=(--no-tui "${OHA_JSON_FLAGS[@]}" -z "${DURATION}s" -c "$CONCURRENCY" -m "$method")
        [[ -n "$ctype" ]] && args+=(-T "$ctype")
        [[ -n "$auth" ]] && args+=(-H "Authorization: $auth")
        [[ -n "$body" ]] && args+=(-d "$body")
        if ! timeout $((DURATION + 60)) "$OHA" "${args[@]}" "$url" >"$out" 2>"$out.err"; then
            log "oha failed for $name: $(head -c 300 "$out.err" | tr '\n' ' ')"
            return 1
        fi
        parse_oha "$out"
    else
        local threads=2
        ((CONCURRENCY < threads)) && threads="$CONCURRENCY"
        if ! BENCH_WRK_METHOD="$method" BENCH_WRK_CTYPE="$ctype" BENCH_WRK_AUTH="$auth" BENCH_WRK_BODY="$body" \
            timeout $((DURATION + 60)) wrk -t "$threads" -c "$CONCURRENCY" -d "${DURATION}s" \
            -s "$WRK_LUA" "$url" >"$out" 2>"$out.err"; then
            log "wrk failed for $name: $(head -c 300 "$out.err" | tr '\n' ' ')"
            return 1
        fi
        parse_wrk "$out"
    fi
}

ROWS=()
ANY_BAD=0
INTROSPECTION_SKIPPED=0
scenario() { # name, then run_load's arguments after NAME
    local name="$1" res
    shift
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        ROWS+=("$name server-down - - -")
        return 0
    fi
    log "scenario $name: ${DURATION}s, $CONCURRENCY connections"
    if res="$(run_load "$name" "$@")" && [[ -n "$res" ]]; then
        ROWS+=("$name $res")
        local bad="${res##* }"
        [[ "$bad" =~ ^[0-9]+$ ]] && ((bad > 0)) && ANY_BAD=1
    else
        ROWS+=("$name failed - - -")
    fi
    sleep 1
    return 0
}

scenario discovery "$ISSUER/.well-known/openid-configuration"
scenario jwks "$ISSUER/jwks"
for alg in RS256 ES256 EdDSA; do
    scenario "token-$alg" "$ISSUER/token" POST "$FORM" \
        "$(basic_auth_header "${CLIENT_ID[$alg]}" "${CLIENT_SECRET[$alg]}")" "$TOKEN_BODY"
done
if [[ -n "$ACCESS_TOKEN" ]]; then
    scenario introspection "$ISSUER/introspect" POST "$FORM" \
        "$(basic_auth_header "${CLIENT_ID[RS256]}" "${CLIENT_SECRET[RS256]}")" "token=$ACCESS_TOKEN"
else
    ROWS+=("introspection skipped - - -")
    INTROSPECTION_SKIPPED=1
fi

LOADED_RSS="$(rss_mib VmRSS)"
PEAK_RSS="$(rss_mib VmHWM)"
SERVER_ALIVE=yes
kill -0 "$SERVER_PID" 2>/dev/null || SERVER_ALIVE=no

# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------
echo
echo "Portcullis benchmark"
echo "  binary:       $BIN"
echo "  database:     $DB_LABEL"
echo "  load tool:    ${TOOL_VERSION:-$TOOL}; ${DURATION}s per scenario, $CONCURRENCY connections, 127.0.0.1:$PORT"
echo "  machine:      $(nproc 2>/dev/null || echo '?') cores (load generator and server share them)"
echo "  startup:      $STARTUP_MS ms from exec of 'portcullis serve' to first 200 on /ready"
echo "  idle RSS:     $IDLE_RSS MiB (after warm-up)"
echo "  RSS after load: $LOADED_RSS MiB (peak $PEAK_RSS MiB); server still running: $SERVER_ALIVE"
echo
printf '%-16s %12s %10s %10s %9s\n' scenario 'requests/s' 'p50 ms' 'p99 ms' 'non-2xx'
printf '%-16s %12s %10s %10s %9s\n' ---------------- ------------ ---------- ---------- ---------
for row in "${ROWS[@]}"; do
    # shellcheck disable=SC2086 # fields are single words by construction
    printf '%-16s %12s %10s %10s %9s\n' $row
done
if ((INTROSPECTION_SKIPPED)); then
    echo
    echo "note: introspection skipped: no access token could be obtained from the token endpoint."
fi
if ((ANY_BAD)); then
    echo
    echo "note: some scenarios had non-2xx responses or errors; their numbers measure the error"
    if [[ "$TOOL" = wrk ]]; then
        echo "      path (wrk counts statuses >= 400 plus socket errors), not the happy path."
    else
        echo "      path, not the happy path (rate limiting? see the server's rate-limit settings)."
    fi
fi
if [[ "$SERVER_ALIVE" = no ]] || ((ANY_BAD)) || printf '%s\n' "${ROWS[@]}" | grep -q ' failed '; then
    if [[ -s "$TMP/server.log" ]]; then
        echo
        echo "last lines of the server log:"
        tail -n 20 "$TMP/server.log" | sed 's/^/  | /'
    fi
fi

# ---------------------------------------------------------------------------
# 7/8. Signing ceilings of this machine (single core, OpenSSL CLI)
# ---------------------------------------------------------------------------
# openssl_sign_rate ALGO: sign/s from `openssl speed`, located by the "sign/s" column of
# the header, counted from the right (works whether or not encrypt/decrypt columns exist).
openssl_sign_rate() {
    openssl speed -seconds "$OPENSSL_SECONDS" "$1" 2>/dev/null | python3 -c '
import sys
lines = [l.rstrip() for l in sys.stdin if l.strip()]
for i, l in enumerate(lines):
    cols = l.split()
    if "sign/s" in cols and i + 1 < len(lines):
        idx = cols.index("sign/s") - len(cols)
        data = lines[i + 1].split()
        try:
            print("%.1f" % float(data[idx]))
            sys.exit(0)
        except (ValueError, IndexError):
            pass
sys.exit(1)
' || echo "n/a"
}

if ((OPENSSL_SECONDS > 0)); then
    echo
    echo "Signing ceilings of this machine (openssl speed -seconds $OPENSSL_SECONDS, one core, $(openssl version | awk '{print $1, $2}')):"
    for pair in "RS256:rsa2048" "ES256:ecdsap256" "EdDSA:ed25519"; do
        jose="${pair%%:*}"
        algo="${pair#*:}"
        rate="$(openssl_sign_rate "$algo")"
        printf '  %-6s (%-9s): %s sign/s\n' "$jose" "$algo" "$rate"
    done
fi

exit 0
