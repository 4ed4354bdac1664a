#!/usr/bin/env bash
# Generated-input test of the OAuth / OpenID Connect endpoints (tests/fuzz/oauth.py, with
# Hypothesis) against a real server on SQLite: 0 answers >= 500, every refusal in its RFC's
# shape, no redirect to an unregistered URI, no panic in the server's log.
#
#   bash tests/fuzz/oauth.sh                          # bounded run (as in .ci/run)
#   FUZZ_OAUTH_EXAMPLES=3000 bash tests/fuzz/oauth.sh   # a longer one
set -euo pipefail
cd "$(dirname "$0")/../.."

python3 -c 'import hypothesis' 2>/dev/null || python3 -m pip install --quiet hypothesis

export REDIRECT_URI="https://rp.fuzz.example/callback"
export POST_LOGOUT_URI="https://rp.fuzz.example/signed-out"
fuzz_provision() {
  local out
  out="$("$BIN" client create --tenant fuzz --name "Fuzz RP" --redirect-uri "$REDIRECT_URI" \
    --post-logout-redirect-uri "$POST_LOGOUT_URI" --grant-type authorization_code \
    --grant-type refresh_token --grant-type client_credentials --scope openid --scope email \
    --scope profile --scope offline_access --json)"
  CLIENT_ID="$(json_field client_id <<<"$out")"
  CLIENT_SECRET="$(json_field client_secret <<<"$out")"
  PUBLIC_ID="$("$BIN" client create --tenant fuzz --name "Fuzz SPA" --public \
    --redirect-uri "$REDIRECT_URI" --post-logout-redirect-uri "$POST_LOGOUT_URI" --json \
    | json_field client_id)"
  export CLIENT_ID CLIENT_SECRET PUBLIC_ID
}
# shellcheck source=tests/fuzz/server.sh
source tests/fuzz/server.sh

status=0
python3 tests/fuzz/oauth.py || status=1
server_panicked && status=1
exit "$status"
