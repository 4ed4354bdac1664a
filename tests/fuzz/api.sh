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
MAX_EXAMPLES="${FUZZ_MAX_EXAMPLES:-25}"
# Seconds for the tenant operations (52 of them); the 5 platform operations get a third.
MAX_TIME="${FUZZ_MAX_TIME:-300}"
CHECKS="not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"

# shellcheck source=tests/fuzz/server.sh
source tests/fuzz/server.sh
base="$BASE"
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

server_panicked && status=1
exit "$status"
