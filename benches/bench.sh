#!/usr/bin/env bash
# Portcullis benchmark: start-up time, idle memory and throughput/latency of the hot
# OAuth/OIDC endpoints and of the complete browser sign-in flow, against a freshly migrated
# database, beside the Node.js reference provider `oidc-provider` (the "peer") measured the
# same way on the same machine, on 127.0.0.1 only.
#
#   bash benches/bench.sh [--no-build] [--no-peer] [-h|--help]
#
# See benches/README.md for what is measured, the targets and the BENCH_* knobs.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: bash benches/bench.sh [--no-build] [--no-peer] [-h|--help]

  --no-build   use the existing release/portcullis of the target dir instead of
               `cargo build --release` (the flow driver is still built if it is missing)
  --no-peer    measure Portcullis only (no oidc-provider, no ratios)

environment:
  BENCH_DURATION=10        seconds per scenario
  BENCH_CONCURRENCY=32     concurrent connections (HTTP scenarios)
  BENCH_FLOW_CONCURRENCY=4 virtual users of the sign-in flow scenario (both servers)
  BENCH_STORM_CONCURRENCY=16 virtual users of the sign-in storm (Portcullis)
  BENCH_PROBE_RATE=100     discovery requests/s of the probe during the storm
  BENCH_WARMUP_REQUESTS=50 sequential warm-up requests per GET endpoint before the RSS reading
  BENCH_WARMUP_SECONDS=1   unmeasured load before each HTTP scenario (both servers; 0 = none)
  BENCH_PORT=<free port>   Portcullis port on 127.0.0.1 (default: a free one)
  BENCH_PEER_PORT=<free>   peer port on 127.0.0.1 (default: a free one)
  BENCH_PEER_WORKERS=2     worker processes of the peer's cluster mode (<2 skips it)
  BENCH_SERVER_CPUS=1      CPU list for the server under test   (taskset -c; only with >= 2 cores)
  BENCH_LOAD_CPUS=0        CPU list for this script and the load generators
  BENCH_DATABASE_URL=...   e.g. postgres://postgres@127.0.0.1:5432/bench (default: SQLite in a temp dir)
  BENCH_TENANT=bench       tenant slug to create / use
  BENCH_TOOL=auto          auto | oha | wrk (auto: oha if installed, else wrk via apt-get;
                           oha forces `cargo install oha` when it is missing)
  BENCH_OPENSSL_SECONDS=3  seconds per `openssl speed` run; 0 skips the signing ceilings
  BENCH_ARGON2_SECONDS=5   seconds of the Argon2id ceilings; 0 skips them
  BENCH_PERF_DIR=<dir>     record `perf record -g` of the server during every scenario there
  BENCH_READY_SAMPLES=5     starts of the server for the ready-after-exec figure (the median)
  BENCH_SUSTAIN_SECONDS=300  sustained load after the scenarios, on SQLite and on PostgreSQL (each
                           its own fresh database and server): client_credentials ES256 at
                           BENCH_CONCURRENCY plus sign-in flows (BENCH_FLOW_CONCURRENCY users);
                           tokens/s per minute, DB growth per million tokens; 0 skips it
  BENCH_SUSTAIN_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres
                           admin URL for it: a database portcullis_sustain_<random> is created
                           there with psql and dropped at the end; unreachable = SQLite only
  BENCH_FUZZ_SECONDS=120   seconds of `cargo fuzz` (fuzz/: the SAML parsers) after the report,
                           shared by its targets (at least 10 s each); 0 skips it, as does a
                           machine without cargo-fuzz. A finding is reported, not an exit status
  BENCH_FUZZ_SANITIZER=address  sanitizer of the fuzz build (address | none)
  PORTCULLIS_ARGON2__MEMORY_KIB / __ITERATIONS / __PARALLELISM
                           Argon2id cost (default 65536 / 3 / 4), used by Portcullis, the peer
                           and the ceiling alike
  PORTCULLIS_MASTER_KEY    kept if set (e.g. to reuse a PostgreSQL database), else random
  PORTCULLIS_*             passed through to the server and CLI (BIND, PUBLIC_URL,
                           DATABASE_URL, LOG_LEVEL and the rate limits are set by this script)
EOF
}

BUILD=1
PEER=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --no-build) BUILD=0 ;;
        --no-peer) PEER=0 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "bench.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

DURATION="${BENCH_DURATION:-10}"
CONCURRENCY="${BENCH_CONCURRENCY:-32}"
FLOW_CONCURRENCY="${BENCH_FLOW_CONCURRENCY:-4}"
STORM_CONCURRENCY="${BENCH_STORM_CONCURRENCY:-16}"
PROBE_RATE="${BENCH_PROBE_RATE:-100}"
WARMUP_REQUESTS="${BENCH_WARMUP_REQUESTS:-50}"
WARMUP_SECONDS="${BENCH_WARMUP_SECONDS:-1}"
PEER_WORKERS="${BENCH_PEER_WORKERS:-2}"
TENANT="${BENCH_TENANT:-bench}"
TOOL_CHOICE="${BENCH_TOOL:-auto}"
OPENSSL_SECONDS="${BENCH_OPENSSL_SECONDS:-3}"
ARGON2_SECONDS="${BENCH_ARGON2_SECONDS:-5}"
FUZZ_SECONDS="${BENCH_FUZZ_SECONDS:-120}"
FUZZ_SANITIZER="${BENCH_FUZZ_SANITIZER:-address}"
SUSTAIN_SECONDS="${BENCH_SUSTAIN_SECONDS:-300}"
SUSTAIN_PG_ADMIN_URL="${BENCH_SUSTAIN_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
ARGON2_M="${PORTCULLIS_ARGON2__MEMORY_KIB:-65536}"
ARGON2_T="${PORTCULLIS_ARGON2__ITERATIONS:-3}"
ARGON2_P="${PORTCULLIS_ARGON2__PARALLELISM:-4}"

for v in DURATION CONCURRENCY FLOW_CONCURRENCY STORM_CONCURRENCY PROBE_RATE WARMUP_REQUESTS \
    WARMUP_SECONDS PEER_WORKERS OPENSSL_SECONDS ARGON2_SECONDS ARGON2_M ARGON2_T ARGON2_P FUZZ_SECONDS \
    SUSTAIN_SECONDS; do
    if ! [[ "${!v}" =~ ^[0-9]+$ ]]; then
        echo "bench.sh: BENCH_$v (or its PORTCULLIS_ARGON2__* source) must be a non-negative integer (got '${!v}')" >&2
        exit 2
    fi
done
if ((DURATION < 1 || CONCURRENCY < 1 || FLOW_CONCURRENCY < 1 || STORM_CONCURRENCY < 1 || PROBE_RATE < 1)); then
    echo "bench.sh: BENCH_DURATION, BENCH_*CONCURRENCY and BENCH_PROBE_RATE must be at least 1" >&2
    exit 2
fi
if ((SUSTAIN_SECONDS == 1)); then
    echo "bench.sh: BENCH_SUSTAIN_SECONDS must be 0 (skip) or at least 2 (a first and a last part)" >&2
    exit 2
fi
case "$TOOL_CHOICE" in auto | oha | wrk) ;; *)
    echo "bench.sh: BENCH_TOOL must be auto, oha or wrk" >&2; exit 2 ;;
esac
case "$FUZZ_SANITIZER" in address | none) ;; *)
    echo "bench.sh: BENCH_FUZZ_SANITIZER must be address or none" >&2; exit 2 ;;
esac

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$REPO_ROOT/target}"
[[ "$TARGET_DIR" = /* ]] || TARGET_DIR="$REPO_ROOT/$TARGET_DIR"
BIN="$TARGET_DIR/release/portcullis"
FLOW_BIN="$TARGET_DIR/release/bench-flow"
PEER_DIR="$REPO_ROOT/benches/peer"

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] error: %s\n' "$*" >&2; exit 1; }

for cmd in curl python3 openssl; do
    command -v "$cmd" >/dev/null 2>&1 || die "$cmd is required"
done

# ---------------------------------------------------------------------------
# CPU placement: with >= 2 cores the server under test gets BENCH_SERVER_CPUS (default CPU 1)
# and this script, with everything it starts (load generators, curl, ...), BENCH_LOAD_CPUS
# (default CPU 0). The servers are started with `taskset -c $SERVER_CPUS`.
# ---------------------------------------------------------------------------
NCPU="$(nproc 2>/dev/null || echo 1)"
PINNED=0
SERVER_CPUS=""
LOAD_CPUS=""
SERVER_NCPU="$NCPU"
LOAD_NCPU="$NCPU"
if ((NCPU >= 2)) && command -v taskset >/dev/null 2>&1; then
    SERVER_CPUS="${BENCH_SERVER_CPUS:-1}"
    LOAD_CPUS="${BENCH_LOAD_CPUS:-0}"
    SERVER_NCPU="$(taskset -c "$SERVER_CPUS" nproc 2>/dev/null)" || die "bad BENCH_SERVER_CPUS: $SERVER_CPUS"
    LOAD_NCPU="$(taskset -c "$LOAD_CPUS" nproc 2>/dev/null)" || die "bad BENCH_LOAD_CPUS: $LOAD_CPUS"
    taskset -cp "$LOAD_CPUS" $$ >/dev/null || die "cannot pin the script to CPUs $LOAD_CPUS"
    PINNED=1
elif ((NCPU >= 2)); then
    log "warning: taskset not found; server and load generator share all cores"
fi
on_server() { # run a command on the server's CPUs
    if ((PINNED)); then taskset -c "$SERVER_CPUS" "$@"; else "$@"; fi
}
if ((PINNED)); then
    PLACEMENT="server on CPU(s) $SERVER_CPUS ($SERVER_NCPU core(s)), load generators on CPU(s) $LOAD_CPUS ($LOAD_NCPU core(s)), taskset"
else
    PLACEMENT="$NCPU core(s) shared by server and load generator (no pinning)"
fi

# ---------------------------------------------------------------------------
# Cleanup: stop every server and background load process, drop the PostgreSQL database of
# the sustained load, remove the temp dir. Runs on every exit path.
# ---------------------------------------------------------------------------
TMP=""
SERVER_PID=""
PEER_PID=""
BG_PIDS=()
SUSTAIN_PG_DB="" # name of the database the sustained load created, while it exists

stop_pid() { # pid [extra pids killed after it]: TERM, wait up to 5 s, KILL
    local pid="$1" i
    shift
    [[ -n "$pid" ]] || return 0
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    local c
    for c in "$@"; do
        if kill -0 "$c" 2>/dev/null; then kill -KILL "$c" 2>/dev/null || true; fi
    done
    return 0
}

children_of() { # pid -> its child pids, one per line (none if it has none)
    if command -v pgrep >/dev/null 2>&1; then
        pgrep -P "$1" 2>/dev/null || true
    else
        ps -o pid= --ppid "$1" 2>/dev/null || true
    fi
}

stop_peer() {
    [[ -n "$PEER_PID" ]] || return 0
    local kids
    mapfile -t kids < <(children_of "$PEER_PID")
    stop_pid "$PEER_PID" "${kids[@]}"
    PEER_PID=""
}

# psql_at URL SQL -> the answer, unaligned and without headers (5 s to connect, 60 s in all)
psql_at() { PGCONNECT_TIMEOUT=5 timeout 60 psql "$1" -X -q -A -t -v ON_ERROR_STOP=1 -c "$2"; }

sustain_drop_db() { # drop the sustained load's PostgreSQL database, if it (still) exists
    [[ -n "$SUSTAIN_PG_DB" ]] || return 0
    if ! psql_at "$SUSTAIN_PG_ADMIN_URL" "DROP DATABASE IF EXISTS \"$SUSTAIN_PG_DB\" WITH (FORCE)" >/dev/null 2>&1; then
        log "warning: could not drop the database $SUSTAIN_PG_DB (drop it by hand)"
    fi
    SUSTAIN_PG_DB=""
}

# shellcheck disable=SC2317 # invoked through the EXIT trap
cleanup() {
    local rc=$?
    trap - EXIT
    local p
    for p in "${BG_PIDS[@]}"; do
        stop_pid "$p"
    done
    stop_peer
    stop_pid "$SERVER_PID"
    sustain_drop_db
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

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# busy_pct SECONDS: CPU used on the whole machine over SECONDS, in % of one core (from
# /proc/stat), to tell whether other work perturbs the run.
busy_pct() {
    python3 -c '
import sys, time
def snap():
    f = open("/proc/stat").readline().split()[1:]
    v = [int(x) for x in f]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return sum(v[:8]) - idle
a = snap(); time.sleep(float(sys.argv[1])); b = snap()
import os
hz = os.sysconf("SC_CLK_TCK")
print("%.0f" % ((b - a) / hz / float(sys.argv[1]) * 100))
' "$1" 2>/dev/null || echo "?"
}

# cpu_snap: "<machine busy jiffies> <jiffies of this script and all its descendants>"; the
# difference of two snapshots is CPU used by *other* processes in between (the compiler or
# test suite of someone else on the machine), which perturbs the numbers.
cpu_snap() {
    python3 -c '
import os
def busy():
    v = [int(x) for x in open("/proc/stat").readline().split()[1:9]]
    return sum(v) - v[3] - v[4]
me = int(os.environ["BENCH_SCRIPT_PID"])
procs = {}
for d in os.listdir("/proc"):
    if d.isdigit():
        try:
            st = open("/proc/%s/stat" % d).read()
        except OSError:
            continue
        f = st[st.rindex(")") + 2:].split()
        # fields after the name: state ppid ... utime(14) stime(15) cutime(16) cstime(17)
        procs[int(d)] = (int(f[1]), sum(int(x) for x in f[11:15]))
ours, todo = 0, [me]
kids = {}
for pid, (ppid, _) in procs.items():
    kids.setdefault(ppid, []).append(pid)
while todo:
    p = todo.pop()
    if p in procs:
        ours += procs[p][1]
    todo.extend(kids.get(p, []))
print(busy(), ours)
' 2>/dev/null || echo "0 0"
}
export BENCH_SCRIPT_PID=$$
# other_pct "<snap before>" "<snap after>" SECONDS -> % of one core used by other processes
other_pct() {
    local b1 o1 b2 o2
    read -r b1 o1 <<<"$1"
    read -r b2 o2 <<<"$2"
    awk -v d="$(((b2 - b1) - (o2 - o1)))" -v hz="$(getconf CLK_TCK)" -v s="$3" \
        'BEGIN { v = d / hz / s * 100; if (v < 0) v = 0; printf "%.0f", v }'
}

# ---------------------------------------------------------------------------
# 1. Load generator: oha if installed, else wrk (apt-get if missing). BENCH_TOOL=oha installs
#    oha with cargo when it is missing (a few minutes); wrk from Debian takes seconds.
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

setup_oha() { # [install]: with "install", cargo install oha when it is missing
    if ! OHA="$(find_oha)"; then
        [[ "${1:-}" = install ]] || return 1
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
    oha) setup_oha install || die "oha unavailable" ;;
    wrk) setup_wrk || die "wrk unavailable" ;;
    auto) setup_oha || setup_wrk || { log "wrk unavailable; trying cargo install oha"; setup_oha install; } ||
        die "neither oha nor wrk is available" ;;
esac
if [[ "$TOOL" = oha ]]; then
    TOOL_VERSION="$("$OHA" --version 2>/dev/null | head -n1 || true)"
else
    TOOL_VERSION="wrk $(wrk --version 2>&1 | head -n1 | sed -e "s/^wrk //" -e "s/ Copyright.*//" || true)"
fi
log "load generator: ${TOOL_VERSION:-$TOOL}"

# ---------------------------------------------------------------------------
# 2. Build: the server (unless --no-build) and the flow driver (benches/flow, own workspace,
#    same target dir)
# ---------------------------------------------------------------------------
if ((BUILD)); then
    log "cargo build --release"
    (cd "$REPO_ROOT" && CARGO_TARGET_DIR="$TARGET_DIR" cargo build --release) || die "cargo build --release failed"
fi
[[ -x "$BIN" ]] || die "$BIN not found (build it, or drop --no-build)"
if ((BUILD)) || [[ ! -x "$FLOW_BIN" ]]; then
    log "cargo build --release --manifest-path benches/flow/Cargo.toml"
    CARGO_TARGET_DIR="$TARGET_DIR" cargo build --release --manifest-path "$REPO_ROOT/benches/flow/Cargo.toml" ||
        die "building the flow driver failed"
fi
[[ -x "$FLOW_BIN" ]] || die "$FLOW_BIN not found"

# The peer: Node.js + `npm ci` in benches/peer (oidc-provider, @node-rs/argon2 with its
# prebuilt binary from the npm registry).
PEER_NOTE=""
if ((PEER)); then
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        PEER=0
        PEER_NOTE="peer skipped: node/npm not found"
    elif [[ ! -f "$PEER_DIR/node_modules/.package-lock.json" ||
        "$PEER_DIR/package-lock.json" -nt "$PEER_DIR/node_modules/.package-lock.json" ]]; then
        log "npm ci in benches/peer"
        if ! (cd "$PEER_DIR" && npm ci --no-audit --no-fund >&2); then
            PEER=0
            PEER_NOTE="peer skipped: npm ci in benches/peer failed"
        fi
    fi
    [[ -n "$PEER_NOTE" ]] && log "$PEER_NOTE"
fi
PEER_VERSION=""
if ((PEER)); then
    PEER_VERSION="$(cd "$PEER_DIR" && node -p '
        "oidc-provider " + require("./node_modules/oidc-provider/package.json").version +
        ", @node-rs/argon2 " + require("./node_modules/@node-rs/argon2/package.json").version +
        ", node " + process.version' 2>/dev/null || echo 'oidc-provider ?')"
fi

# ---------------------------------------------------------------------------
# 3. Environment
# ---------------------------------------------------------------------------
TMP="$(mktemp -d "${TMPDIR:-/tmp}/portcullis-bench.XXXXXX")"

if [[ -n "${BENCH_PORT:-}" ]]; then
    PORT="$BENCH_PORT"
else
    PORT="$(free_port)"
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
export PORTCULLIS_ARGON2__MEMORY_KIB="$ARGON2_M" PORTCULLIS_ARGON2__ITERATIONS="$ARGON2_T" \
    PORTCULLIS_ARGON2__PARALLELISM="$ARGON2_P"
# The benchmark measures the happy path, not 429s: the per-IP limits are raised out of reach,
# the limiter itself stays in the request path (its cost is measured). Unknown keys are
# ignored by builds without a rate limiter.
export PORTCULLIS_RATE_LIMIT__CREDENTIALS__LIMIT=1000000000
export PORTCULLIS_RATE_LIMIT__API__LIMIT=1000000000
export PORTCULLIS_RATE_LIMIT__PUBLIC__LIMIT=1000000000
DB_LABEL="$(redact_url "$PORTCULLIS_DATABASE_URL")"
IS_SQLITE=0
[[ "$PORTCULLIS_DATABASE_URL" = sqlite:* ]] && IS_SQLITE=1
log "database: $DB_LABEL"
log "CPU placement: $PLACEMENT"

FLOW_EMAIL="bench-$(openssl rand -hex 4)@example.com" # unique: a reused database keeps old users
FLOW_PASSWORD="Bench-flow-$(openssl rand -hex 8)"
FLOW_REDIRECT="http://127.0.0.1:9/cb"

# Run the CLI from the temp dir so no stray ./portcullis.toml is picked up.
pc() { (cd "$TMP" && "$BIN" "$@"); }

# Other work on the machine perturbs every number: measure it once before anything starts.
IDLE_BUSY="$(busy_pct 2)"
if [[ "$IDLE_BUSY" =~ ^[0-9]+$ ]] && ((IDLE_BUSY > 15)); then
    log "warning: the machine is busy before the run (${IDLE_BUSY}% of a core in use by other processes)"
fi

# ---------------------------------------------------------------------------
# 4. Machine ceilings on the server's cores, measured before any server runs:
#    openssl speed (rsa2048, ecdsap256, ed25519 sign/s) and Argon2id hashes/s.
# ---------------------------------------------------------------------------
# openssl_sign_rate ALGO: sign/s from `openssl speed`, located by the "sign/s" column of
# the header, counted from the right (works whether or not encrypt/decrypt columns exist).
openssl_sign_rate() {
    local multi=()
    ((SERVER_NCPU > 1)) && multi=(-multi "$SERVER_NCPU")
    on_server openssl speed "${multi[@]}" -seconds "$OPENSSL_SECONDS" "$1" 2>/dev/null | python3 -c '
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

declare -A CEIL
CEIL[rsa2048]=n/a
CEIL[ecdsap256]=n/a
CEIL[ed25519]=n/a
if ((OPENSSL_SECONDS > 0)); then
    for algo in rsa2048 ecdsap256 ed25519; do
        log "ceiling: openssl speed $algo on the server's cores"
        CEIL[$algo]="$(openssl_sign_rate "$algo")"
    done
fi
ARGON2_CEIL=n/a
if ((ARGON2_SECONDS > 0)); then
    log "ceiling: Argon2id m=$ARGON2_M t=$ARGON2_T p=$ARGON2_P, $SERVER_NCPU thread(s), ${ARGON2_SECONDS}s"
    if on_server "$FLOW_BIN" argon2 --m "$ARGON2_M" --t "$ARGON2_T" --p "$ARGON2_P" \
        --threads "$SERVER_NCPU" --duration "$ARGON2_SECONDS" >"$TMP/argon2.json" 2>"$TMP/argon2.err"; then
        ARGON2_CEIL="$(json_field hashes_per_s <"$TMP/argon2.json")" || ARGON2_CEIL=n/a
    else
        log "argon2 ceiling failed: $(head -c 300 "$TMP/argon2.err")"
    fi
fi

PEER_ARGON2_CEIL=n/a
if ((ARGON2_SECONDS > 0 && PEER)); then
    log "ceiling: Argon2id with the peer's library (@node-rs/argon2), same cost and cores"
    if (cd "$PEER_DIR" && PEER_ARGON2_M="$ARGON2_M" PEER_ARGON2_T="$ARGON2_T" PEER_ARGON2_P="$ARGON2_P" \
        PEER_ARGON2_THREADS="$SERVER_NCPU" PEER_ARGON2_SECONDS="$ARGON2_SECONDS" \
        on_server node argon2-ceiling.mjs) >"$TMP/argon2-peer.json" 2>"$TMP/argon2-peer.err"; then
        PEER_ARGON2_CEIL="$(json_field hashes_per_s <"$TMP/argon2-peer.json")" || PEER_ARGON2_CEIL=n/a
    else
        log "peer argon2 ceiling failed: $(head -c 300 "$TMP/argon2-peer.err")"
    fi
fi

# ---------------------------------------------------------------------------
# 5. Migrate, create tenant, clients and the sign-in user
# ---------------------------------------------------------------------------
# These run the CLI on the database of the exported PORTCULLIS_DATABASE_URL (the sustained
# load below points it at its own databases); KEY names their output files in $TMP and the
# CLIENT_ID / CLIENT_SECRET entries.
declare -A CLIENT_ID CLIENT_SECRET

# setup_db KEY: migrate, then create the tenant -> 1 (logged) if migrate fails, 2 if only the
# tenant could not be created (a reused PostgreSQL database may already have it)
setup_db() {
    local key="$1"
    if ! pc migrate >"$TMP/migrate-$key.out" 2>&1; then
        cat "$TMP/migrate-$key.out" >&2
        log "portcullis migrate ($key) failed"
        return 1
    fi
    if ! pc tenant create "$TENANT" --name Bench --json >"$TMP/tenant-$key.out" 2>"$TMP/tenant-$key.err"; then
        log "warning: tenant create $TENANT ($key) failed (already exists?): $(tr '\n' ' ' <"$TMP/tenant-$key.err")"
        return 2
    fi
}

# create_cc_client KEY ALG: a confidential client_credentials client (scope api) whose access
# tokens are signed with ALG -> CLIENT_ID[KEY], CLIENT_SECRET[KEY]; 1 (logged) on failure
create_cc_client() {
    local key="$1" alg="$2" out="$TMP/client-$1.out"
    if ! pc client create --tenant "$TENANT" --name "bench-$alg" \
        --redirect-uri http://127.0.0.1/cb --grant-type client_credentials --scope api \
        --signing-alg "$alg" --json >"$out" 2>"$TMP/client-$key.err"; then
        cat "$TMP/client-$key.err" >&2
        log "client create ($key, $alg) failed"
        return 1
    fi
    CLIENT_ID[$key]="$(json_field client_id <"$out")" || { cat "$out" >&2; log "no client_id in client create ($key) output"; return 1; }
    CLIENT_SECRET[$key]="$(json_field client_secret <"$out")" || { cat "$out" >&2; log "no client_secret in client create ($key) output"; return 1; }
}

# create_flow_client KEY: the sign-in client (authorization code, FLOW_REDIRECT, no consent
# screen) -> CLIENT_ID[KEY], CLIENT_SECRET[KEY], and the user FLOW_EMAIL / FLOW_PASSWORD;
# 1 (logged) on failure
create_flow_client() {
    local key="$1" out="$TMP/client-$1.out"
    if pc client create --tenant "$TENANT" --name flow --redirect-uri "$FLOW_REDIRECT" --skip-consent \
        --json >"$out" 2>"$TMP/client-$key.err" &&
        CLIENT_ID[$key]="$(json_field client_id <"$out")" &&
        CLIENT_SECRET[$key]="$(json_field client_secret <"$out")"; then
        if ! printf '%s\n' "$FLOW_PASSWORD" | pc user create --tenant "$TENANT" --email "$FLOW_EMAIL" \
            --password-stdin >"$TMP/user-$key.out" 2>&1; then
            log "warning: user create ($key) failed, no sign-in flows: $(head -c 300 "$TMP/user-$key.out" | tr '\n' ' ')"
            return 1
        fi
    else
        log "warning: flow client create ($key) failed, no sign-in flows: $(cat "$out" "$TMP/client-$key.err" | head -c 300 | tr '\n' ' ')"
        return 1
    fi
}

setup_rc=0
setup_db main || setup_rc=$?
((setup_rc != 1)) || die "portcullis migrate failed"
for alg in RS256 ES256 EdDSA; do
    create_cc_client "$alg" "$alg" || die "client create ($alg) failed"
done
FLOW_OK=1
create_flow_client flow || FLOW_OK=0
# The proof-of-possession client: private_key_jwt with a P-256 key made by the driver.
POP_OK=1
if "$FLOW_BIN" pop-key --out "$TMP/pop-key.pem" >"$TMP/pop-jwks.json" 2>"$TMP/pop-key.err" &&
    pc client create --tenant "$TENANT" --name bench-pkjwt --redirect-uri http://127.0.0.1/cb \
        --grant-type client_credentials --scope api --signing-alg ES256 --jwks "$TMP/pop-jwks.json" \
        --json >"$TMP/client-pkjwt.out" 2>"$TMP/client-pkjwt.err" &&
    CLIENT_ID[pkjwt]="$(json_field client_id <"$TMP/client-pkjwt.out")"; then
    :
else
    log "warning: private_key_jwt client create failed, no proof-of-possession rows: $(cat "$TMP/pop-key.err" "$TMP/client-pkjwt.err" 2>/dev/null | head -c 300 | tr '\n' ' ')"
    POP_OK=0
fi

# ---------------------------------------------------------------------------
# 6. Start the server: time to first 200 from /ready
# ---------------------------------------------------------------------------
# Polled with bash's /dev/tcp rather than curl: a curl exec costs ~15 ms here, which would be
# the resolution of the measurement; one probe below costs well under a millisecond.
ready_probe() { # PORT -> 0 when GET /ready answers 200
    local line=""
    if ! { exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null; then
        return 1
    fi
    printf 'GET /ready HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nConnection: close\r\n\r\n' "$1" >&3 2>/dev/null || true
    IFS= read -r -t 2 line <&3 2>/dev/null || true
    exec 3>&-
    LAST_READY_STATUS="${line%$'\r'}"
    [[ "$line" =~ ^HTTP/1\.[01]\ 200 ]]
}

READY_TIMEOUT_S=30
# A FIFO held open read-write never delivers data: `read -t 0.001` on it is a 1 ms sleep
# without forking (an external `sleep` costs ~4 ms here).
mkfifo "$TMP/tick"

# start_server LOG: `portcullis serve` in the background, from the temp dir, on the server's
# CPUs, with the exported PORTCULLIS_* environment -> its pid in SERVER_PID (stopped by the
# cleanup, whichever server it is)
start_server() {
    if ((PINNED)); then
        (cd "$TMP" && exec taskset -c "$SERVER_CPUS" "$BIN" serve) >"$1" 2>&1 &
    else
        (cd "$TMP" && exec "$BIN" serve) >"$1" 2>&1 &
    fi
    SERVER_PID=$!
}

# wait_ready PORT LOG: poll GET /ready of SERVER_PID about every millisecond -> 0 with the
# time of the first 200 in t_ready; 1 (logged, with the end of LOG) if the server exits first
# or READY_TIMEOUT_S pass
wait_ready() {
    local port="$1" logf="$2" tick rc=1 until=$((SECONDS + READY_TIMEOUT_S))
    LAST_READY_STATUS="(no answer)"
    exec {tick}<>"$TMP/tick" # opened after the spawn so the server does not inherit it
    trap '' PIPE # a probe writing to a socket the server just closed must not kill the script
    while :; do
        if ready_probe "$port"; then
            stamp t_ready
            rc=0
            break
        fi
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            tail -n 40 "$logf" >&2 || true
            log "portcullis serve exited before /ready answered 200"
            break
        fi
        if ((SECONDS > until)); then
            tail -n 40 "$logf" >&2 || true
            log "/ready did not answer 200 within $READY_TIMEOUT_S s (last answer: $LAST_READY_STATUS)"
            break
        fi
        read -r -t 0.001 -u "$tick" _ || true
    done
    exec {tick}>&-
    trap - PIPE
    return "$rc"
}

# One start is one noisy sample (a slow page-in or a scheduler hiccup doubles it): the server is
# started READY_SAMPLES times, stopped between starts, and the median is the figure; the last
# start is the server the scenarios use.
t0=""
t_ready=""
READY_SAMPLES="${BENCH_READY_SAMPLES:-5}"
STARTUP_SAMPLES=()
for ((sample = 1; sample <= READY_SAMPLES; sample++)); do
    stamp t0
    start_server "$TMP/server.log"
    wait_ready "$PORT" "$TMP/server.log" || die "portcullis serve did not become ready"
    STARTUP_SAMPLES+=("$(awk -v d="$((t_ready - t0))" 'BEGIN { printf "%.1f", d / 1e6 }')")
    if ((sample < READY_SAMPLES)); then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
done
code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$BASE/ready" || true)"
[[ "$code" = 200 ]] || die "curl GET /ready answered $code after the probe saw 200"
STARTUP_MS="$(printf '%s\n' "${STARTUP_SAMPLES[@]}" | sort -n | awk '{ v[NR] = $1 } END { printf "%.1f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')"
log "ready after $STARTUP_MS ms (median of ${READY_SAMPLES} starts: ${STARTUP_SAMPLES[*]} ms)"

# ---------------------------------------------------------------------------
# Warm-up: a few sequential requests on every endpoint, and the introspection token.
# The token is fetched before any load, so a rate limiter on /token cannot starve it.
# ---------------------------------------------------------------------------
TOKEN_BODY='grant_type=client_credentials&scope=api'
FORM='application/x-www-form-urlencoded'

fetch_token() { # url id secret label -> prints the access token, or fails
    local resp
    resp="$(curl -s --max-time 10 -u "$2:$3" -H "Content-Type: $FORM" --data "$TOKEN_BODY" "$1" || true)"
    if ! json_field access_token <<<"$resp"; then
        log "warning: no access_token from $1 with the $4 client: ${resp:0:300}"
        return 1
    fi
}

ACCESS_TOKEN="$(fetch_token "$ISSUER/token" "${CLIENT_ID[RS256]}" "${CLIENT_SECRET[RS256]}" RS256)" || ACCESS_TOKEN=""
fetch_token "$ISSUER/token" "${CLIENT_ID[ES256]}" "${CLIENT_SECRET[ES256]}" ES256 >/dev/null || true
fetch_token "$ISSUER/token" "${CLIENT_ID[EdDSA]}" "${CLIENT_SECRET[EdDSA]}" EdDSA >/dev/null || true

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

rss_mib() { # field (VmRSS | VmHWM) [pid...] -> MiB, summed over the pids (default: the server)
    local f="$1"
    shift
    [[ $# -gt 0 ]] || set -- "$SERVER_PID"
    local files=() p
    for p in "$@"; do files+=("/proc/$p/status"); done
    awk -v f="$f:" '$1 == f { s += $2; found = 1 } END { if (found) printf "%.1f", s / 1024; else print "n/a" }' \
        "${files[@]}" 2>/dev/null || echo "n/a"
}
sleep 1
IDLE_RSS="$(rss_mib VmRSS)"
log "idle RSS after warm-up: $IDLE_RSS MiB"

# ---------------------------------------------------------------------------
# 7. Scenarios
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

# run_load NAME SECONDS URL [METHOD CONTENT_TYPE AUTH_HEADER BODY] -> prints the parser's line
run_load() {
    local name="$1" secs="$2" url="$3" method="${4:-GET}" ctype="${5:-}" auth="${6:-}" body="${7:-}"
    local out="$TMP/load-$name.out"
    if [[ "$TOOL" = oha ]]; then
        local args=(--no-tui "${OHA_JSON_FLAGS[@]}" -z "${secs}s" -c "$CONCURRENCY" -m "$method")
        [[ -n "$ctype" ]] && args+=(-T "$ctype")
        [[ -n "$auth" ]] && args+=(-H "Authorization: $auth")
        [[ -n "$body" ]] && args+=(-d "$body")
        if ! timeout $((secs + 60)) "$OHA" "${args[@]}" "$url" >"$out" 2>"$out.err"; then
            log "oha failed for $name: $(head -c 300 "$out.err" | tr '\n' ' ')"
            return 1
        fi
        parse_oha "$out"
    else
        local threads="$LOAD_NCPU"
        ((CONCURRENCY < threads)) && threads="$CONCURRENCY"
        if ! BENCH_WRK_METHOD="$method" BENCH_WRK_CTYPE="$ctype" BENCH_WRK_AUTH="$auth" BENCH_WRK_BODY="$body" \
            timeout $((secs + 60)) wrk -t "$threads" -c "$CONCURRENCY" -d "${secs}s" \
            -s "$WRK_LUA" "$url" >"$out" 2>"$out.err"; then
            log "wrk failed for $name: $(head -c 300 "$out.err" | tr '\n' ' ')"
            return 1
        fi
        parse_wrk "$out"
    fi
}

# Results: RES[<side>/<scenario>] = "<req/s> <p50> <p99> <errors>" (side: pc, single, cluster).
declare -A RES OTHER
ROWS=()
ANY_BAD=0
INTROSPECTION_SKIPPED=0

# Optional profiles: BENCH_PERF_DIR=<dir> records `perf record -g` of the server under test
# during every measured scenario into <dir>/<side>-<scenario>.data (kept after the run).
PERF_DIR="${BENCH_PERF_DIR:-}"
PERF_PID=""
if [[ -n "$PERF_DIR" ]]; then
    command -v perf >/dev/null 2>&1 || die "BENCH_PERF_DIR is set but perf is not installed"
    mkdir -p "$PERF_DIR"
fi
perf_start() { # side pid name
    [[ -n "$PERF_DIR" ]] || return 0
    perf record -q -F 499 -g -p "$2" -o "$PERF_DIR/$1-$3.data" -- sleep "$DURATION" \
        >/dev/null 2>"$PERF_DIR/$1-$3.err" &
    PERF_PID=$!
    BG_PIDS+=("$PERF_PID")
}
perf_stop() {
    [[ -n "$PERF_PID" ]] || return 0
    wait "$PERF_PID" 2>/dev/null || true
    PERF_PID=""
}

# measure SIDE PID NAME URL [run_load arguments after the URL] -> stores RES[SIDE/NAME]
measure() {
    local side="$1" pid="$2" name="$3" res
    shift 3
    if ! kill -0 "$pid" 2>/dev/null; then
        RES[$side/$name]="server-down - - -"
        return 0
    fi
    if ((WARMUP_SECONDS > 0)); then
        run_load "$side-$name-warmup" "$WARMUP_SECONDS" "$@" >/dev/null || true
    fi
    log "$side: $name, ${DURATION}s, $CONCURRENCY connections"
    perf_start "$side" "$pid" "$name"
    local snap0 t0s t1s
    snap0="$(cpu_snap)"
    t0s="${EPOCHREALTIME:-$(date +%s.%N)}"
    if res="$(run_load "$side-$name" "$DURATION" "$@")" && [[ -n "$res" ]]; then
        RES[$side/$name]="$res"
    else
        RES[$side/$name]="failed - - -"
    fi
    perf_stop
    t1s="${EPOCHREALTIME:-$(date +%s.%N)}"
    OTHER[$side/$name]="$(other_pct "$snap0" "$(cpu_snap)" "$(awk -v a="$t0s" -v b="$t1s" 'BEGIN { print b - a }')")"
    sleep 1
    return 0
}

# flow_cmd ISSUER CLIENT_ID SECRET CONCURRENCY SECONDS -> FLOW_CMD: the command line of
# complete sign-in flows of the FLOW_EMAIL user with bench-flow (JSON on stdout). An array
# rather than a function, so that `"${FLOW_CMD[@]}" &` gives the pid of the driver itself.
flow_cmd() {
    FLOW_CMD=(timeout $(($5 + 120)) "$FLOW_BIN" flow --issuer "$1" --client-id "$2"
        --client-secret "$3" --redirect-uri "$FLOW_REDIRECT" --email "$FLOW_EMAIL"
        --password "$FLOW_PASSWORD" --concurrency "$4" --duration "$5")
}

# flow_result OUT -> "<flows/s> <p50 ms> <p99 ms> <errors>" of the flow driver's JSON; its first
# error, if any, in OUT.note
flow_result() {
    python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
f = lambda v: "-" if v is None else "%.2f" % v
print("%.2f %s %s %d" % (d["flows_per_s"], f(d["p50_ms"]), f(d["p99_ms"]), d["errors"] + d["warmup_errors"]))
if d.get("first_error"):
    print("first error: " + d["first_error"], file=sys.stderr)
' "$1" 2>"$1.note"
}

# run_flow SIDE PID NAME ISSUER CLIENT_ID SECRET CONCURRENCY -> stores RES[SIDE/NAME]
run_flow() {
    local side="$1" pid="$2" name="$3" issuer="$4" id="$5" secret="$6" conc="$7"
    local out="$TMP/flow-$side-$name.json"
    if ! kill -0 "$pid" 2>/dev/null; then
        RES[$side/$name]="server-down - - -"
        return 0
    fi
    log "$side: $name, ${DURATION}s, $conc virtual users"
    perf_start "$side" "$pid" "$name"
    local snap0 t0s t1s
    snap0="$(cpu_snap)"
    t0s="${EPOCHREALTIME:-$(date +%s.%N)}"
    flow_cmd "$issuer" "$id" "$secret" "$conc" "$DURATION"
    if "${FLOW_CMD[@]}" >"$out" 2>"$out.err"; then
        RES[$side/$name]="$(flow_result "$out")" || RES[$side/$name]="failed - - -"
        [[ -s "$out.note" ]] && log "$side $name: $(head -c 400 "$out.note")"
    else
        log "flow driver failed for $side $name: $(head -c 400 "$out.err" | tr '\n' ' ')"
        RES[$side/$name]="failed - - -"
    fi
    perf_stop
    [[ "$name" = storm ]] && wait_probe
    t1s="${EPOCHREALTIME:-$(date +%s.%N)}"
    OTHER[$side/$name]="$(other_pct "$snap0" "$(cpu_snap)" "$(awk -v a="$t0s" -v b="$t1s" 'BEGIN { print b - a }')")"
    sleep 1
    return 0
}

# run_pop NAME ARGS… -> RES[pc/NAME]: client_credentials tokens from bench-flow pop, which
# signs every request itself (assertion and/or DPoP proof, ES256) like a real client
run_pop() {
    local name="$1" out="$TMP/pop-$1.json"
    shift
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        RES[pc/$name]="server-down - - -"
        return 0
    fi
    log "pc: $name, ${DURATION}s, $CONCURRENCY connections (bench-flow pop)"
    perf_start pc "$SERVER_PID" "$name"
    local snap0 t0s t1s
    snap0="$(cpu_snap)"
    t0s="${EPOCHREALTIME:-$(date +%s.%N)}"
    if timeout $((DURATION + 120)) "$FLOW_BIN" pop --url "$ISSUER/token" --concurrency "$CONCURRENCY" \
        --duration "$DURATION" --warmup "$WARMUP_SECONDS" "$@" >"$out" 2>"$out.err"; then
        RES[pc/$name]="$(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
f = lambda v: "-" if v is None else "%.2f" % v
print("%.0f %s %s %d" % (d["requests_per_s"], f(d["p50_ms"]), f(d["p99_ms"]), d["errors"]))
if d.get("first_error"):
    print("first error: " + d["first_error"], file=sys.stderr)
print("token_type " + str(d.get("token_type")), file=sys.stderr)
' "$out" 2>"$out.note")" || RES[pc/$name]="failed - - -"
        log "pc $name: $(head -c 400 "$out.note" | tr '\n' ' ')"
    else
        log "pop driver failed for $name: $(head -c 400 "$out.err" | tr '\n' ' ')"
        RES[pc/$name]="failed - - -"
    fi
    perf_stop
    t1s="${EPOCHREALTIME:-$(date +%s.%N)}"
    OTHER[pc/$name]="$(other_pct "$snap0" "$(cpu_snap)" "$(awk -v a="$t0s" -v b="$t1s" 'BEGIN { print b - a }')")"
    sleep 1
}

PC_AUTH=()
for alg in RS256 ES256 EdDSA; do
    PC_AUTH+=("$(basic_auth_header "${CLIENT_ID[$alg]}" "${CLIENT_SECRET[$alg]}")")
done

measure pc "$SERVER_PID" discovery "$ISSUER/.well-known/openid-configuration"
measure pc "$SERVER_PID" jwks "$ISSUER/jwks"
i=0
for alg in RS256 ES256 EdDSA; do
    measure pc "$SERVER_PID" "token-$alg" "$ISSUER/token" POST "$FORM" "${PC_AUTH[$i]}" "$TOKEN_BODY"
    i=$((i + 1))
done
if [[ -n "$ACCESS_TOKEN" ]]; then
    measure pc "$SERVER_PID" introspection "$ISSUER/introspect" POST "$FORM" "${PC_AUTH[0]}" "token=$ACCESS_TOKEN"
else
    RES[pc/introspection]="skipped - - -"
    INTROSPECTION_SKIPPED=1
fi
# Proof of possession, all ES256 and signed per request by the driver: the secret client as a
# baseline of the same driver, then private_key_jwt, then private_key_jwt + DPoP.
if ((POP_OK)); then
    run_pop pop-secret --client-id "${CLIENT_ID[ES256]}" --client-secret "${CLIENT_SECRET[ES256]}"
    run_pop pop-pkjwt --client-id "${CLIENT_ID[pkjwt]}" --key "$TMP/pop-key.pem"
    run_pop pop-pkjwt-dpop --client-id "${CLIENT_ID[pkjwt]}" --key "$TMP/pop-key.pem" --dpop 1
fi
if ((FLOW_OK)); then
    run_flow pc "$SERVER_PID" flow "$ISSUER" "${CLIENT_ID[flow]}" "${CLIENT_SECRET[flow]}" "$FLOW_CONCURRENCY"
else
    RES[pc/flow]="skipped - - -"
fi

PROBE_PID=""
PROBE_RC=1
wait_probe() {
    [[ -n "$PROBE_PID" ]] || return 0
    PROBE_RC=0
    wait "$PROBE_PID" || PROBE_RC=$?
    PROBE_PID=""
}

# Sign-in storm: flows at a concurrency that keeps the Argon2id permits busy, and at the same
# time a fixed-rate discovery probe (open loop) whose p99 must stay low.
STORM_PROBE="skipped - - -"
if ((FLOW_OK)) && kill -0 "$SERVER_PID" 2>/dev/null; then
    log "pc: sign-in storm, ${DURATION}s, $STORM_CONCURRENCY virtual users + discovery probe at $PROBE_RATE req/s"
    "$FLOW_BIN" probe --url "$ISSUER/.well-known/openid-configuration" --rate "$PROBE_RATE" \
        --duration "$DURATION" >"$TMP/probe.json" 2>"$TMP/probe.err" &
    PROBE_PID=$!
    BG_PIDS+=("$PROBE_PID")
    run_flow pc "$SERVER_PID" storm "$ISSUER" "${CLIENT_ID[flow]}" "${CLIENT_SECRET[flow]}" "$STORM_CONCURRENCY"
    wait_probe
    if ((PROBE_RC == 0)); then
        STORM_PROBE="$(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
f = lambda v: "-" if v is None else "%.2f" % v
print("%.1f %s %s %d" % (d["requests"] / max(1e-9, float(sys.argv[2])), f(d["p50_ms"]), f(d["p99_ms"]), d["errors"]))
' "$TMP/probe.json" "$DURATION")" || STORM_PROBE="failed - - -"
    else
        log "probe failed: $(head -c 300 "$TMP/probe.err")"
        STORM_PROBE="failed - - -"
    fi
    BG_PIDS=()
fi
RES[pc/storm-probe]="$STORM_PROBE"
OTHER[pc/storm-probe]="${OTHER[pc/storm]:-}"

for name in discovery jwks token-RS256 token-ES256 token-EdDSA introspection pop-secret pop-pkjwt pop-pkjwt-dpop flow storm storm-probe; do
    ROWS+=("$name ${RES[pc/$name]:-skipped - - -}")
done
for row in "${ROWS[@]}"; do
    bad="${row##* }"
    [[ "$bad" =~ ^[0-9]+$ ]] && ((bad > 0)) && ANY_BAD=1
done

LOADED_RSS="$(rss_mib VmRSS)"
PEAK_RSS="$(rss_mib VmHWM)"
SERVER_ALIVE=yes
kill -0 "$SERVER_PID" 2>/dev/null || SERVER_ALIVE=no
SERVER_LOG_TAIL=""
if [[ -s "$TMP/server.log" ]]; then
    SERVER_LOG_TAIL="$(tail -n 20 "$TMP/server.log")"
fi
stop_pid "$SERVER_PID"
SERVER_PID=""

# ---------------------------------------------------------------------------
# 8. The peer: oidc-provider, one process, then a node:cluster of BENCH_PEER_WORKERS workers,
#    on the same CPUs as Portcullis. The cluster's in-memory stores are per worker, so it
#    runs only the stateless scenarios (discovery, JWKS, client_credentials JWTs);
#    introspection (of an opaque token: oidc-provider refuses to introspect JWTs) and the
#    flow use the single process.
# ---------------------------------------------------------------------------
PEER_SECRET="bench-peer-$(openssl rand -hex 8)"
PEER_IDLE_RSS=n/a
PEER_STARTUP_MS=n/a
PEER_ISSUER=""

start_peer() { # workers -> sets PEER_PID and PEER_ISSUER, or fails
    local workers="$1" port line="" t_start t_up
    if [[ -n "${BENCH_PEER_PORT:-}" ]]; then port="$BENCH_PEER_PORT"; else port="$(free_port)"; fi
    local PIN=()
    ((PINNED)) && PIN=(taskset -c "$SERVER_CPUS")
    : >"$TMP/peer-$workers.out"
    stamp t_start
    (cd "$PEER_DIR" && PORT="$port" PEER_WORKERS="$workers" PEER_SECRET="$PEER_SECRET" \
        PEER_EMAIL="$FLOW_EMAIL" PEER_PASSWORD="$FLOW_PASSWORD" PEER_REDIRECT_URI="$FLOW_REDIRECT" \
        PEER_ARGON2_M="$ARGON2_M" PEER_ARGON2_T="$ARGON2_T" PEER_ARGON2_P="$ARGON2_P" \
        NODE_ENV=production exec "${PIN[@]}" node server.mjs) \
        >"$TMP/peer-$workers.out" 2>"$TMP/peer-$workers.err" &
    PEER_PID=$!
    local i
    for ((i = 0; i < 600; i++)); do
        line="$(head -n1 "$TMP/peer-$workers.out" 2>/dev/null || true)"
        [[ "$line" = LISTENING\ * ]] && break
        kill -0 "$PEER_PID" 2>/dev/null || break
        sleep 0.05
    done
    if [[ "$line" != LISTENING\ * ]]; then
        log "peer ($workers worker(s)) did not start: $(tail -n 5 "$TMP/peer-$workers.err" | tr '\n' ' ')"
        stop_peer
        return 1
    fi
    stamp t_up
    PEER_STARTUP_MS="$(awk -v d="$((t_up - t_start))" 'BEGIN { printf "%.0f", d / 1e6 }')"
    PEER_ISSUER="${line#LISTENING }"
    log "peer ($workers worker(s)) listening at $PEER_ISSUER after $PEER_STARTUP_MS ms"
}

PEER_AUTH=()
if ((PEER)); then
    for alg in RS256 ES256 EdDSA opaque; do
        PEER_AUTH+=("$(basic_auth_header "cc-$alg" "$PEER_SECRET")")
    done
fi

peer_stateless() { # side
    local side="$1" i=0 alg
    measure "$side" "$PEER_PID" discovery "$PEER_ISSUER/.well-known/openid-configuration"
    measure "$side" "$PEER_PID" jwks "$PEER_ISSUER/jwks"
    for alg in RS256 ES256 EdDSA; do
        measure "$side" "$PEER_PID" "token-$alg" "$PEER_ISSUER/token" POST "$FORM" "${PEER_AUTH[$i]}" "$TOKEN_BODY"
        i=$((i + 1))
    done
}

if ((PEER)); then
    if start_peer 1; then
        PEER_SINGLE_STARTUP_MS="$PEER_STARTUP_MS"
        for path in "/.well-known/openid-configuration" "/jwks"; do
            for ((i = 0; i < WARMUP_REQUESTS; i++)); do
                curl -s -o /dev/null --max-time 5 "$PEER_ISSUER$path" || true
            done
        done
        sleep 1
        PEER_IDLE_RSS="$(rss_mib VmRSS "$PEER_PID")"
        peer_stateless single
        PEER_TOKEN="$(fetch_token "$PEER_ISSUER/token" cc-opaque "$PEER_SECRET" "peer opaque")" || PEER_TOKEN=""
        if [[ -n "$PEER_TOKEN" ]]; then
            measure single "$PEER_PID" introspection "$PEER_ISSUER/token/introspection" POST "$FORM" \
                "${PEER_AUTH[3]}" "token=$PEER_TOKEN"
        fi
        run_flow single "$PEER_PID" flow "$PEER_ISSUER" flow "$PEER_SECRET" "$FLOW_CONCURRENCY"
        PEER_LOG_TAIL="$(tail -n 20 "$TMP/peer-1.err" 2>/dev/null || true)"
        stop_peer
    else
        PEER_NOTE="peer (single process) did not start"
    fi
    if ((PEER_WORKERS >= 2)); then
        if start_peer "$PEER_WORKERS"; then
            peer_stateless cluster
            stop_peer
        else
            PEER_NOTE="${PEER_NOTE:+$PEER_NOTE; }peer cluster did not start"
        fi
    fi
fi

# ---------------------------------------------------------------------------
# 9. Sustained load (BENCH_SUSTAIN_SECONDS; 0 skips it), with every other server stopped: on
#    SQLite, then on PostgreSQL (a database created for it at BENCH_SUSTAIN_POSTGRES_URL and
#    dropped afterwards), each a fresh database set up like the main one and its own server
#    (same environment and CPUs). client_credentials ES256 at BENCH_CONCURRENCY runs in
#    consecutive parts of 60 s (the last one shorter; two halves below 120 s) while the flow
#    driver signs in for the whole duration. Per database: tokens/s of every part (the last
#    must stay >= 90 % of the first), flows/s, the database size before (after set-up) and
#    after (server stopped with SIGTERM) per million tokens issued (client_credentials 2xx +
#    completed flows), RSS at the end and the non-2xx count.
# ---------------------------------------------------------------------------

# db_bytes URL -> bytes of the database: SQLite file + -wal + -shm; PostgreSQL pg_database_size
db_bytes() {
    if [[ "$1" = sqlite:* ]]; then
        local f="${1#sqlite:}" t=0 x
        f="${f#//}"
        f="${f%%\?*}"
        for x in "$f" "$f-wal" "$f-shm"; do
            if [[ -f "$x" ]]; then t=$((t + $(stat -c %s "$x"))); fi
        done
        echo "$t"
    else
        psql_at "$1" 'SELECT pg_database_size(current_database())'
    fi
}

# db_tables URL -> "<table> <bytes>" per table, indexes (and TOAST) included
db_tables() {
    if [[ "$1" = sqlite:* ]]; then
        local f="${1#sqlite:}"
        f="${f#//}"
        python3 -c '
import sqlite3, sys
c = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
for name, size in c.execute("SELECT m.tbl_name, SUM(d.pgsize) FROM dbstat d "
                            "JOIN sqlite_master m ON m.name = d.name GROUP BY m.tbl_name"):
    print(name, size)
' "${f%%\?*}"
    else
        psql_at "$1" "SELECT relname || ' ' || pg_total_relation_size(relid) FROM pg_stat_user_tables"
    fi
}

# Per database LABEL (sqlite, postgres): SUSTAIN_ROW (the report's row), SUSTAIN_DETAIL (lines
# under it) and SUSTAIN_RES ("<first tok/s> <last tok/s> <non-2xx> <other%>", for the targets).
declare -A SUSTAIN_ROW SUSTAIN_DETAIL SUSTAIN_RES
SUSTAIN_LABELS=()

sustain_skip() { # LABEL TEXT: a database not measured, and why
    SUSTAIN_LABELS+=("$1")
    SUSTAIN_ROW[$1]="$2"
}

# sustain_run LABEL DATABASE_URL: the sustained load on that (fresh) database
sustain_run() {
    local label="$1" url="$2" key="sustain-$1"
    sustain_skip "$label" "failed (set-up, see the log)"
    local port
    port="$(free_port)"
    local -x PORTCULLIS_DATABASE_URL="$url" PORTCULLIS_BIND="127.0.0.1:$port" \
        PORTCULLIS_PUBLIC_URL="http://127.0.0.1:$port"
    local issuer="http://127.0.0.1:$port/t/$TENANT" flows=1
    setup_db "$key" || return 0
    create_cc_client "$key" ES256 || return 0
    create_flow_client "$key-flow" || flows=0
    local before tbefore="$TMP/$key-tables-before" tafter="$TMP/$key-tables-after"
    before="$(db_bytes "$url")" || before=""
    db_tables "$url" >"$tbefore" 2>/dev/null || true

    local slog="$TMP/server-$key.log"
    start_server "$slog"
    if ! wait_ready "$port" "$slog"; then
        stop_pid "$SERVER_PID"
        SERVER_PID=""
        SUSTAIN_ROW[$label]="failed (the server did not become ready)"
        return 0
    fi
    if ! fetch_token "$issuer/token" "${CLIENT_ID[$key]}" "${CLIENT_SECRET[$key]}" "$key ES256" >/dev/null; then
        stop_pid "$SERVER_PID"
        SERVER_PID=""
        SUSTAIN_ROW[$label]="failed (no token from the ES256 client)"
        return 0
    fi
    local auth
    auth="$(basic_auth_header "${CLIENT_ID[$key]}" "${CLIENT_SECRET[$key]}")"

    local parts=() left="$SUSTAIN_SECONDS" c
    if ((SUSTAIN_SECONDS < 120)); then
        parts=($((SUSTAIN_SECONDS / 2)) $((SUSTAIN_SECONDS - SUSTAIN_SECONDS / 2)))
    else
        while ((left > 0)); do
            c=60
            ((left >= 60)) || c="$left"
            parts+=("$c")
            left=$((left - c))
        done
    fi
    log "$label: sustained load, ${SUSTAIN_SECONDS}s: client_credentials ES256 at $CONCURRENCY connections" \
        "in ${#parts[@]} parts + $( ((flows)) && echo "$FLOW_CONCURRENCY sign-in users" || echo "no sign-ins")"
    local snap0 t0s t1s flow_pid="" flow_out="$TMP/flow-$key.json" chunks="$TMP/$key-parts"
    : >"$chunks"
    snap0="$(cpu_snap)"
    t0s="${EPOCHREALTIME:-$(date +%s.%N)}"
    if ((flows)); then
        flow_cmd "$issuer" "${CLIENT_ID[$key-flow]}" "${CLIENT_SECRET[$key-flow]}" "$FLOW_CONCURRENCY" "$SUSTAIN_SECONDS"
        "${FLOW_CMD[@]}" >"$flow_out" 2>"$flow_out.err" &
        flow_pid=$!
        BG_PIDS+=("$flow_pid")
    fi
    local i=0 res
    for c in "${parts[@]}"; do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            res="server-down - - -"
        elif ! res="$(run_load "$key-$i" "$c" "$issuer/token" POST "$FORM" "$auth" "$TOKEN_BODY")" || [[ -z "$res" ]]; then
            res="failed - - -"
        fi
        log "$label: part $((i + 1))/${#parts[@]} (${c}s): ${res%% *} tokens/s"
        printf '%s %s\n' "$c" "$res" >>"$chunks"
        i=$((i + 1))
    done
    local flow_res="skipped - - -"
    if [[ -n "$flow_pid" ]]; then
        if wait "$flow_pid"; then
            flow_res="$(flow_result "$flow_out")" || flow_res="failed - - -"
            [[ -s "$flow_out.note" ]] && log "$label flows: $(head -c 400 "$flow_out.note")"
        else
            log "flow driver failed for $label: $(head -c 400 "$flow_out.err" | tr '\n' ' ')"
            flow_res="failed - - -"
        fi
        BG_PIDS=()
    fi
    t1s="${EPOCHREALTIME:-$(date +%s.%N)}"
    local other rss peak alive=yes live after
    other="$(other_pct "$snap0" "$(cpu_snap)" "$(awk -v a="$t0s" -v b="$t1s" 'BEGIN { print b - a }')")"
    rss="$(rss_mib VmRSS)"
    peak="$(rss_mib VmHWM)"
    kill -0 "$SERVER_PID" 2>/dev/null || alive=no
    live="$(db_bytes "$url")" || live=""
    stop_pid "$SERVER_PID"
    SERVER_PID=""
    after="$(db_bytes "$url")" || after=""
    db_tables "$url" >"$tafter" 2>/dev/null || true
    if [[ "$alive" = no ]]; then
        log "$label: the server died during the sustained load:"
        tail -n 20 "$slog" | sed 's/^/  | /' >&2 || true
    fi

    # One python pass: the row, the per-part line, the sizes and the tables that grew most.
    local summary
    if summary="$(python3 - "$label" "$chunks" "$flow_res" "$flow_out" "${before:--}" "${live:--}" \
        "${after:--}" "$rss" "$peak" "$alive" "$other" "$tbefore" "$tafter" <<'PY'
import json, sys
(label, chunks, flow_res, flow_out, before, live, after, rss, peak, alive, other,
 tbefore, tafter) = sys.argv[1:14]
MiB = 1048576.0
def num(x):
    try:
        return float(x)
    except ValueError:
        return None
parts = []
for line in open(chunks):
    f = line.split()
    parts.append((float(f[0]), num(f[1]), f[4]))
rates = [p[1] for p in parts]
first, last = rates[0], rates[-1]
tokens = 0.0
bad = 0
for secs, rps, b in parts:
    nb = int(b) if b.isdigit() else 0
    bad += nb
    if rps is not None:
        tokens += max(0.0, rps * secs - nb)
fr = flow_res.split()
flows_s = num(fr[0])
flows = 0
try:
    flows = int(json.load(open(flow_out))["flows"])
except Exception:
    pass
if fr[3].isdigit():
    bad += int(fr[3])
tokens += flows
before, live, after = num(before), num(live), num(after)
fmt = lambda v, spec="%.1f": "-" if v is None else spec % v
ratio = last / first * 100 if first and last is not None else None
growth = (after - before) / MiB if after is not None and before is not None else None
per_m = growth / tokens * 1e6 if growth is not None and tokens > 0 else None
row = ("tokens/s first minute %s, last minute %s (%s %% of first), flows/s %s, DB %s MiB (%s MiB per million "
       "tokens), RSS %s MiB, non-2xx %d" % (fmt(first), fmt(last), fmt(ratio, "%.0f"), fmt(flows_s, "%.2f"),
       fmt(growth, "%+.1f"), fmt(per_m, "%.2f"), rss, bad))
if alive != "yes":
    row += ", SERVER DIED"
print("%s %s %d %s" % (fmt(first), fmt(last), bad, other))
print(row)
print("tokens/s per part: %s (%s s); %d tokens (%d of them sign-ins)" % (
    " ".join(fmt(r) for r in rates), " ".join("%g" % p[0] for p in parts), tokens, flows))
print("DB size: %s MiB before, %s MiB at the end (server running), %s MiB after SIGTERM; peak RSS %s MiB; "
      "other processes %s%% of a core" % (fmt(before and before / MiB, "%.2f"), fmt(live and live / MiB, "%.2f"),
      fmt(after and after / MiB, "%.2f"), peak, other))
def tables(path):
    d = {}
    try:
        for line in open(path):
            f = line.split()
            if len(f) == 2:
                d[f[0]] = int(f[1])
    except OSError:
        pass
    return d
tb, ta = tables(tbefore), tables(tafter)
grew = sorted(((ta[t] - tb.get(t, 0), t) for t in ta), reverse=True)
grew = [(g, t) for g, t in grew if g > 0][:4]
print("grew most: " + (", ".join("%s %+.1f MiB" % (t, g / MiB) for g, t in grew) if grew else "-"))
PY
)"; then
        SUSTAIN_RES[$label]="$(sed -n 1p <<<"$summary")"
        SUSTAIN_ROW[$label]="$(sed -n 2p <<<"$summary")"
        SUSTAIN_DETAIL[$label]="$(tail -n +3 <<<"$summary")"
    else
        SUSTAIN_ROW[$label]="failed (the summary, see the log)"
    fi
    return 0
}

if ((SUSTAIN_SECONDS > 0)); then
    sustain_run sqlite "sqlite://$TMP/sustain.db"
    pg_label="$(redact_url "$SUSTAIN_PG_ADMIN_URL")"
    if ! command -v psql >/dev/null 2>&1; then
        log "psql not found: sustained load on SQLite only"
        sustain_skip postgres "skipped (psql not found)"
    elif ! psql_at "$SUSTAIN_PG_ADMIN_URL" 'SELECT 1' >/dev/null 2>"$TMP/sustain-pg.err"; then
        log "PostgreSQL unreachable at $pg_label ($(head -c 200 "$TMP/sustain-pg.err" | tr '\n' ' ')): sustained load on SQLite only"
        sustain_skip postgres "skipped (PostgreSQL unreachable at $pg_label)"
    else
        SUSTAIN_PG_DB="portcullis_sustain_$(openssl rand -hex 4)" # set first: the cleanup drops it
        if psql_at "$SUSTAIN_PG_ADMIN_URL" "CREATE DATABASE \"$SUSTAIN_PG_DB\"" >/dev/null 2>"$TMP/sustain-pg.err" &&
            pg_url="$(python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' \
                "$SUSTAIN_PG_ADMIN_URL" "$SUSTAIN_PG_DB")"; then
            log "sustained load on PostgreSQL: database $SUSTAIN_PG_DB at $pg_label"
            sustain_run postgres "$pg_url"
        else
            log "CREATE DATABASE $SUSTAIN_PG_DB failed: $(head -c 300 "$TMP/sustain-pg.err" | tr '\n' ' ')"
            sustain_skip postgres "failed (CREATE DATABASE at $pg_label)"
        fi
        sustain_drop_db
    fi
fi

# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------
echo
echo "Portcullis benchmark"
echo "  binary:       $BIN"
echo "  database:     $DB_LABEL"
echo "  load tool:    ${TOOL_VERSION:-$TOOL}; ${DURATION}s per scenario, $CONCURRENCY connections, 127.0.0.1:$PORT"
echo "  flows:        benches/flow driver, $FLOW_CONCURRENCY virtual users (storm: $STORM_CONCURRENCY + discovery probe at $PROBE_RATE req/s)"
echo "  machine:      $NCPU cores; $PLACEMENT"
echo "  other load:   ${IDLE_BUSY}% of a core busy before the run (other processes); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
if [[ "$IDLE_BUSY" =~ ^[0-9]+$ ]] && ((IDLE_BUSY > 15)); then
    echo "  WARNING:      other processes were using CPU when the run started: the numbers are perturbed"
fi
echo "  argon2id:     m=$ARGON2_M KiB, t=$ARGON2_T, p=$ARGON2_P"
echo "  startup:      $STARTUP_MS ms from exec of 'portcullis serve' to first 200 on /ready (median of $READY_SAMPLES starts: ${STARTUP_SAMPLES[*]} ms)"
echo "  idle RSS:     $IDLE_RSS MiB (after warm-up)"
echo "  RSS after load: $LOADED_RSS MiB (peak $PEAK_RSS MiB); server still running at the end: $SERVER_ALIVE"
if ((PEER)); then
    echo "  peer:         $PEER_VERSION; single process and a node:cluster of $PEER_WORKERS workers,"
    echo "                same CPUs; idle RSS (single) $PEER_IDLE_RSS MiB; LISTENING after ${PEER_SINGLE_STARTUP_MS:-n/a} ms"
fi
[[ -n "$PEER_NOTE" ]] && echo "  note:         $PEER_NOTE"
echo
echo "Portcullis (flow and storm rows: complete sign-in flows/s and per-flow latency; storm-probe: discovery during the storm)"
printf '%-16s %12s %10s %10s %9s %8s\n' scenario 'requests/s' 'p50 ms' 'p99 ms' 'non-2xx' 'other%'
printf '%-16s %12s %10s %10s %9s %8s\n' ---------------- ------------ ---------- ---------- --------- --------
for row in "${ROWS[@]}"; do
    # shellcheck disable=SC2086 # fields are single words by construction
    printf '%-16s %12s %10s %10s %9s %8s\n' $row "${OTHER[pc/${row%% *}]:--}"
done
echo "(other%: CPU used by processes outside this benchmark during the row, in % of one core; more than"
echo " a few % means someone else's work shared the machine and perturbed that row)"
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
    if [[ -n "$SERVER_LOG_TAIL" ]]; then
        echo
        echo "last lines of the server log:"
        printf '%s\n' "$SERVER_LOG_TAIL" | sed 's/^/  | /'
    fi
fi

if ((OPENSSL_SECONDS > 0)) || ((ARGON2_SECONDS > 0)); then
    echo
    echo "Ceilings of this machine on the server's $SERVER_NCPU core(s) ($(openssl version | awk '{print $1, $2}'), openssl speed -seconds $OPENSSL_SECONDS):"
    printf '  %-6s (%-9s): %s sign/s\n' RS256 rsa2048 "${CEIL[rsa2048]}" ES256 ecdsap256 "${CEIL[ecdsap256]}" \
        EdDSA ed25519 "${CEIL[ed25519]}"
    printf '  %-18s: %s hashes/s (m=%s KiB, t=%s, p=%s, argon2-rust, reused arena, %s thread(s), %ss)\n' \
        Argon2id "$ARGON2_CEIL" "$ARGON2_M" "$ARGON2_T" "$ARGON2_P" "$SERVER_NCPU" "$ARGON2_SECONDS"
    if ((PEER)); then
        printf '  %-18s: %s verifications/s (same cost, @node-rs/argon2, the peer'"'"'s library; for reference)\n' \
            "Argon2id (peer)" "$PEER_ARGON2_CEIL"
    fi
fi

SUSTAIN_TSV="$TMP/sustain.tsv" # "<label> <first tok/s> <last tok/s> <non-2xx> <other%>"
: >"$SUSTAIN_TSV"
if ((${#SUSTAIN_LABELS[@]})); then
    echo
    echo "Sustained load (${SUSTAIN_SECONDS}s per database, each fresh with its own server; client_credentials ES256 at"
    echo "$CONCURRENCY connections in parts of 60 s, or two halves below 120 s, with $FLOW_CONCURRENCY sign-in users throughout)"
    for label in "${SUSTAIN_LABELS[@]}"; do
        printf '%-17s: %s\n' "sustain-$label" "${SUSTAIN_ROW[$label]}"
        if [[ -n "${SUSTAIN_DETAIL[$label]:-}" ]]; then
            printf '%s\n' "${SUSTAIN_DETAIL[$label]}" | sed 's/^/                   /'
        fi
        printf '%s %s\n' "$label" "${SUSTAIN_RES[$label]:-- - - -}" >>"$SUSTAIN_TSV"
    done
    echo "(DB: size after SIGTERM minus size after set-up, SQLite file + -wal + -shm, PostgreSQL pg_database_size;"
    echo " tokens = client_credentials 2xx + completed sign-ins; first/last minute = first/last part)"
fi

# Comparison table, targets and verdicts.
RESULTS_TSV="$TMP/results.tsv"
: >"$RESULTS_TSV"
for key in "${!RES[@]}"; do
    printf '%s\t%s %s\n' "$key" "${RES[$key]}" "${OTHER[$key]:--}" >>"$RESULTS_TSV"
done
python3 - "$RESULTS_TSV" "$PEER" "${CEIL[rsa2048]}" "$ARGON2_CEIL" "$IDLE_RSS" "$STARTUP_MS" "$IS_SQLITE" \
    "$SUSTAIN_TSV" <<'EOF'
import sys

path, peer_on, rsa_ceil, argon_ceil, idle_rss, startup, is_sqlite, sustain_path = sys.argv[1:9]
peer_on = peer_on == "1"
res = {}
for line in open(path):
    key, val = line.rstrip("\n").split("\t")
    side, name = key.split("/", 1)
    f = val.split()
    def num(x):
        try:
            return float(x)
        except ValueError:
            return None
    res[(side, name)] = {"rps": num(f[0]), "p50": num(f[1]), "p99": num(f[2]), "bad": f[3], "raw": f[0],
                         "other": num(f[4]) if len(f) > 4 else None}

def num(x):
    try:
        return float(x)
    except ValueError:
        return None

rsa_ceil, argon_ceil, idle_rss, startup = map(num, (rsa_ceil, argon_ceil, idle_rss, startup))

def fmt(v, spec="%.1f"):
    return "-" if v is None else spec % v

def best_peer(name):
    cands = [(s, res[(s, name)]) for s in ("single", "cluster") if (s, name) in res and res[(s, name)]["rps"] is not None]
    if not cands:
        return None, None
    return max(cands, key=lambda c: c[1]["rps"])

rows = []
verdicts = []
def add(name, target_desc, checks, pc, peer, mode, ratio):
    ok = [c for c in checks if c[1] is not None]
    if not checks:
        verdict = "-"
    elif len(ok) < len(checks):
        verdict = "n/a" if not ok or all(c[1] for c in ok) else "FAIL(" + ",".join(c[0] for c in ok if not c[1]) + ")"
    else:
        bad = [c[0] for c in ok if not c[1]]
        verdict = "pass" if not bad else "FAIL(" + ",".join(bad) + ")"
    verdicts.append(verdict)
    rows.append((name,
                 fmt(pc["rps"]) if pc else "-", fmt(pc["p50"], "%.2f") if pc else "-", fmt(pc["p99"], "%.2f") if pc else "-",
                 fmt(peer["rps"]) if peer else "-", fmt(peer["p50"], "%.2f") if peer else "-",
                 fmt(peer["p99"], "%.2f") if peer else "-", mode or "-",
                 "-" if ratio is None else "%.2fx" % ratio, target_desc, verdict))

for name in ("discovery", "jwks", "token-RS256", "token-ES256", "token-EdDSA", "introspection", "flow"):
    pc = res.get(("pc", name))
    mode, peer = best_peer(name) if peer_on else (None, None)
    ratio = pc["rps"] / peer["rps"] if pc and peer and pc["rps"] and peer["rps"] else None
    p99_ok = None
    if pc and peer and pc["p99"] is not None and peer["p99"] is not None:
        p99_ok = pc["p99"] < peer["p99"]
    checks = []
    if name in ("discovery", "jwks", "token-ES256", "token-EdDSA"):
        desc = ">=3x peer, p99<peer"
        checks.append(("ratio", None if ratio is None else ratio >= 3.0))
    elif name == "token-RS256":
        want = 0.9 * rsa_ceil if rsa_ceil else None
        desc = ">=90%% RSA ceil (%s), p99<peer" % fmt(want, "%.0f")
        checks.append(("ceil", None if want is None or not pc or pc["rps"] is None else pc["rps"] >= want))
    elif name == "flow":
        desc = ">=1.3x peer, p99<peer"
        checks.append(("ratio", None if ratio is None else ratio >= 1.3))
    else:
        desc = "p99<peer"
    checks.append(("p99", p99_ok))
    if pc and pc["bad"] not in ("0", "-"):
        checks.append(("errors", False))
    add(name, desc, checks, pc, peer, mode, ratio)

print()
print("Portcullis vs peer (oidc-provider; per scenario the better of single process and cluster, by req/s)")
hdr = ("scenario", "PC req/s", "PC p50", "PC p99", "peer req/s", "peer p50", "peer p99", "mode", "ratio", "target", "result")
w = (14, 10, 8, 8, 10, 8, 8, 7, 7, 34, 10)
line = lambda r: " ".join(str(v).ljust(w[i]) if i in (0, 7, 9, 10) else str(v).rjust(w[i]) for i, v in enumerate(r)).rstrip()
print(line(hdr))
print(line(tuple("-" * n for n in w)))
for r in rows:
    print(line(r))

print()
print("Portcullis targets without a peer counterpart")
storm = res.get(("pc", "storm"))
probe = res.get(("pc", "storm-probe"))
def target(label, value, desc, ok):
    v = "n/a" if ok is None else ("pass" if ok else "FAIL")
    verdicts.append(v)
    print("  %-34s %-28s %-22s %s" % (label, value, desc, v))
share = storm["rps"] / argon_ceil * 100 if storm and storm["rps"] and argon_ceil else None
target("sign-in storm: sign-ins/s", "%s/s = %s%% of %s hashes/s" % (fmt(storm["rps"] if storm else None, "%.2f"), fmt(share), fmt(argon_ceil, "%.2f")),
       ">= 90% of Argon2id ceiling", None if share is None else share >= 90.0)
target("sign-in storm: discovery p99", "%s ms (p50 %s ms)" % (fmt(probe["p99"] if probe else None, "%.2f"), fmt(probe["p50"] if probe else None, "%.2f")),
       "< 10 ms", None if not probe or probe["p99"] is None else probe["p99"] < 10.0)
target("idle RSS", "%s MiB" % fmt(idle_rss), "<= 20 MiB", None if idle_rss is None else idle_rss <= 20.0)
target("ready after exec" + (" (SQLite)" if is_sqlite == "1" else " (not SQLite)"), "%s ms" % fmt(startup),
       "<= 15 ms (SQLite)", None if startup is None or is_sqlite != "1" else startup <= 15.0)
for line in open(sustain_path):
    label, first, last, bad, other = line.split()
    first, last, other = num(first), num(last), num(other)
    ratio = last / first * 100 if first and last is not None else None
    target("sustain-%s: tokens/s" % label,
           "not measured" if first is None and last is None else
           "%s/%s = %s%%" % (fmt(last), fmt(first), fmt(ratio, "%.0f")), "last min >= 90% of 1st",
           None if ratio is None else ratio >= 90.0)
    # listed with the scenario rows below
    res[("sustain", label)] = {"bad": bad, "other": other}

print()
print("notes:")
print("  - ratio = Portcullis req/s / peer req/s (flow: complete sign-ins/s). Latencies in ms; the flow rows are per")
print("    complete flow (authorize -> sign-in form -> POST -> redirects -> code -> token).")
print("  - peer cluster mode has per-process in-memory state, so it runs discovery, JWKS and the client_credentials")
print("    JWT scenarios only; introspection (an opaque token: oidc-provider refuses to introspect JWT access")
print("    tokens) and the flow are single-process peer results.")
noisy = sorted("%s/%s (%d%%)" % (k[0], k[1], v["other"]) for k, v in res.items()
               if v["other"] is not None and v["other"] > 10)
if noisy:
    print("  - PERTURBED: other processes used > 10%% of a core during: %s; rerun on a quiet machine" % ", ".join(noisy))
errs = sorted("%s/%s (%s)" % (k[0], k[1], v["bad"]) for k, v in res.items() if v["bad"] not in ("0", "-"))
if errs:
    print("  - non-2xx responses or errors (those rows measured an error path): " + ", ".join(errs))
fails = sum(1 for v in verdicts if v.startswith("FAIL"))
print("  - %d target(s) checked: %d pass, %d fail, %d n/a" % (
    sum(1 for v in verdicts if v != "-"), sum(1 for v in verdicts if v == "pass"), fails,
    sum(1 for v in verdicts if v == "n/a")))
EOF

if ((PEER)) && [[ -n "${PEER_LOG_TAIL:-}" ]] && printf '%s\n' "${RES[@]}" | grep -q ' failed '; then
    echo
    echo "last lines of the peer's stderr:"
    printf '%s\n' "$PEER_LOG_TAIL" | sed 's/^/  | /'
fi


# ---------------------------------------------------------------------------
# 10. Optional: fuzz the SAML input parsers (fuzz/, cargo fuzz + libFuzzer), after every
#     measurement so that it perturbs none: BENCH_FUZZ_SECONDS in all, shared by the targets.
#     Seeds are read from fuzz/corpus/<target>; the inputs found go to the temp dir, so the
#     committed corpus stays as it is. A crash, timeout or OOM is kept in
#     fuzz/artifacts/<target>/ and reported here; like the targets above, it does not change
#     the exit status.
# ---------------------------------------------------------------------------
FUZZ_TARGETS=(saml_shape saml_response saml_logout saml_slo_query)
if ((FUZZ_SECONDS > 0)); then
    echo
    if ! cargo fuzz --version >/dev/null 2>&1; then
        echo "Fuzzing skipped: cargo-fuzz is not installed (cargo install cargo-fuzz --locked)"
    else
        FUZZ_EACH=$((FUZZ_SECONDS / ${#FUZZ_TARGETS[@]}))
        ((FUZZ_EACH < 10)) && FUZZ_EACH=10
        # cargo-fuzz needs nightly flags; RUSTC_BOOTSTRAP lets the stable toolchain take them.
        # No server runs any more: the build may use every core (fuzzing itself uses one).
        fuzz() { # build|run [args]
            local sub="$1" all=()
            shift
            ((PINNED)) && all=(taskset -c "0-$((NCPU - 1))")
            (cd "$REPO_ROOT/fuzz" && RUSTC_BOOTSTRAP=1 "${all[@]}" cargo fuzz "$sub" -s "$FUZZ_SANITIZER" "$@")
        }
        log "cargo fuzz build (fuzz/, sanitizer $FUZZ_SANITIZER; the first build of the instrumented crate takes long)"
        if ! fuzz build >"$TMP/fuzz-build.log" 2>&1; then
            echo "Fuzzing skipped: cargo fuzz build failed:"
            tail -n 15 "$TMP/fuzz-build.log" | sed 's/^/  | /'
        else
            echo "Fuzzing (cargo fuzz, libFuzzer, sanitizer $FUZZ_SANITIZER; ${FUZZ_EACH}s per target, seeds from fuzz/corpus):"
            printf '  %-16s %12s %10s %9s %9s  %s\n' target executions 'exec/s' 'new' 'RSS MiB' result
            for t in "${FUZZ_TARGETS[@]}"; do
                log "fuzz: $t for ${FUZZ_EACH}s"
                mkdir -p "$TMP/fuzz-corpus/$t"
                flog="$TMP/fuzz-$t.log"
                # samael 0.0.22 (through libxml 0.3.3) leaks the part of a document outside the
                # signed assertion it keeps: known, so that target runs without leak checks (a
                # leak that grows still ends at -rss_limit_mb); the others keep them.
                leaks=1
                [[ "$t" = saml_response ]] && leaks=0
                if ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=$leaks" \
                    fuzz run "$t" "$TMP/fuzz-corpus/$t" "$REPO_ROOT/fuzz/corpus/$t" -- \
                    -max_total_time="$FUZZ_EACH" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
                    -detect_leaks="$leaks" -print_final_stats=1 >"$flog" 2>&1; then
                    result=ok
                else
                    result="FINDING (fuzz/artifacts/$t/)"
                    if [[ -d "$REPO_ROOT/fuzz/artifacts/$t" ]]; then
                        cp "$flog" "$REPO_ROOT/fuzz/artifacts/$t/bench-$(date +%Y%m%d-%H%M%S).log" || true
                    fi
                fi
                fuzz_stat() { sed -n "s/^stat::$1: *//p" "$flog" | tail -n 1; }
                printf '  %-16s %12s %10s %9s %9s  %s\n' "$t" "$(fuzz_stat number_of_executed_units)" \
                    "$(fuzz_stat average_exec_per_sec)" "$(fuzz_stat new_units_added)" "$(fuzz_stat peak_rss_mb)" "$result"
                if [[ "$result" != ok ]]; then
                    grep -E -m 1 -A 25 '^(==[0-9]+==|thread .* panicked|ERROR: libFuzzer)' "$flog" | sed 's/^/  | /' ||
                        tail -n 25 "$flog" | sed 's/^/  | /' || true
                fi
            done
        fi
    fi
fi

exit 0
