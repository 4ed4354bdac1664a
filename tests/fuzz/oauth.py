"""Generated-input test of the OAuth 2.0 / OpenID Connect endpoints the OpenAPI document does
not describe: /authorize, /token, /par, /userinfo, /revoke, /introspect, /logout, /register and
/saml/acs of a real server (started by tests/fuzz/oauth.sh).

Hypothesis generates requests: random and malformed form bodies and query strings (duplicate
parameters, huge values, bracket-nested names, percent-encoded invalid UTF-8, control
characters), raw binary bodies, deeply nested JSON, wrong content types and random
Authorization, Cookie, Origin and X-Forwarded-For headers, mixed with the values a real client
sends so that generation reaches past the first check. Every response is held to:

* no status >= 500;
* JSON endpoints (/token, /revoke, /introspect, /register, /userinfo) refuse with
  `application/json` bodies carrying an `error` of the endpoint's RFC (6749 §5.2, 7009 §2.2.1,
  7662 §2.3, 7591 §3.2.2, 6750 §3.1), a string `error_description` when present,
  `Cache-Control: no-store`, and `WWW-Authenticate` on 401 (RFC 6749 §5.2, RFC 6750 §3);
* browser endpoints (/authorize, /logout, /saml/acs) answer a page (text/html) or a redirect
  that goes either to this server or to the registered redirect URI with an `error` (or
  `code`) and `iss` (RFC 9207) — never to a URI the client did not register;
* transport limits (413, 414, 431) are accepted as the refusal they are.

Environment: BASE, CLIENT_ID, CLIENT_SECRET, PUBLIC_ID, REDIRECT_URI, POST_LOGOUT_URI,
FUZZ_OAUTH_EXAMPLES (examples per endpoint and method, default 300).
"""

import base64
import collections
import http.client
import json
import os
import sys
import urllib.parse

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

BASE = os.environ["BASE"]
_url = urllib.parse.urlsplit(BASE)
HOST, PORT = _url.hostname, _url.port
TENANT = "/t/fuzz"
ISSUER = BASE + TENANT
CLIENT_ID = os.environ["CLIENT_ID"]
CLIENT_SECRET = os.environ["CLIENT_SECRET"]
PUBLIC_ID = os.environ["PUBLIC_ID"]
REDIRECT_URI = os.environ["REDIRECT_URI"]
POST_LOGOUT_URI = os.environ["POST_LOGOUT_URI"]
EXAMPLES = int(os.environ.get("FUZZ_OAUTH_EXAMPLES", "300"))

SENT = collections.Counter()
STATUSES = collections.Counter()
FINDINGS = []

# --- what the standards allow ---------------------------------------------------------------

TOKEN_ERRORS = {
    "invalid_request", "invalid_client", "invalid_grant", "unauthorized_client",
    "unsupported_grant_type", "invalid_scope",
    # RFC 9449 §5, §8: a refused DPoP proof, or one without the server's nonce.
    "invalid_dpop_proof", "use_dpop_nonce",
}
ERRORS = {
    "token": TOKEN_ERRORS,
    "revoke": {"invalid_request", "invalid_client", "unsupported_token_type"},
    "introspect": {"invalid_request", "invalid_client"},
    "register": {
        "invalid_redirect_uri", "invalid_client_metadata", "invalid_software_statement",
        "unapproved_software_statement", "invalid_token", "invalid_request",
    },
    "userinfo": {"invalid_request", "invalid_token", "insufficient_scope", "invalid_dpop_proof", "use_dpop_nonce"},
}
AUTHORIZE_ERRORS = {
    "invalid_request", "unauthorized_client", "access_denied", "unsupported_response_type",
    "invalid_scope", "temporarily_unavailable", "interaction_required", "login_required",
    "account_selection_required", "consent_required", "invalid_request_uri",
    "invalid_request_object", "request_not_supported", "request_uri_not_supported",
    "registration_not_supported",
}
# PAR (RFC 9126 §2.3) answers the authorization endpoint's errors, and client authentication's.
ERRORS["par"] = AUTHORIZE_ERRORS | {"invalid_client", "invalid_dpop_proof", "use_dpop_nonce"}
TRANSPORT_LIMITS = {413, 414, 431}
# Request heads (request line and headers) longer than this may be refused by the HTTP layer
# with a bare 400 (actix-http buffers 64 KiB); shorter ones reach the handlers.
HEAD_LIMIT = 60 * 1024
INVALID_FIELD_BYTES = set(range(0, 9)) | set(range(10, 32)) | {127}

# --- generation -----------------------------------------------------------------------------

GOOD = {
    "response_type": ["code", "token", "id_token", "code id_token", "none"],
    "client_id": [CLIENT_ID, PUBLIC_ID],
    "redirect_uri": [REDIRECT_URI, REDIRECT_URI + "/", REDIRECT_URI.upper(), "https://evil.example/cb"],
    "scope": ["openid", "openid email profile offline_access", "openid admin"],
    "state": ["xyz"],
    "nonce": ["n-0S6_WzA2Mj"],
    "code_challenge": ["E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"],
    "code_challenge_method": ["S256", "plain", "S512"],
    "response_mode": ["query", "fragment", "form_post", "jwt"],
    "prompt": ["none", "login", "consent", "select_account", "login none"],
    "max_age": ["0", "-1", "99999999999999999999"],
    "acr_values": ["mfa", "urn:portcullis:acr:mfa"],
    "ui_locales": ["pt-BR", "en", "xx"],
    "login_hint": ["admin@fuzz.example"],
    "id_token_hint": ["eyJhbGciOiJub25lIn0.e30."],
    "request": ["eyJhbGciOiJub25lIn0.e30."],
    "request_uri": ["urn:ietf:params:oauth:request_uri:x"],
    "dpop_jkt": ["NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs", "short"],
    "grant_type": [
        "authorization_code", "refresh_token", "client_credentials", "password",
        "urn:ietf:params:oauth:grant-type:device_code", "urn:ietf:params:oauth:grant-type:jwt-bearer",
    ],
    "code": ["SplxlOBeZQQYbYS6WxSbIA"],
    "code_verifier": ["dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"],
    "refresh_token": ["tGzv3JOkF0XG5Qx2TlKWIA"],
    "client_secret": [CLIENT_SECRET, "wrong"],
    "client_assertion_type": ["urn:ietf:params:oauth:client-assertion-type:jwt-bearer"],
    "client_assertion": ["eyJhbGciOiJub25lIn0.e30."],
    "token": ["tGzv3JOkF0XG5Qx2TlKWIA", "eyJhbGciOiJub25lIn0.e30."],
    "token_type_hint": ["access_token", "refresh_token", "id_token", "bogus"],
    "access_token": ["eyJhbGciOiJub25lIn0.e30."],
    "post_logout_redirect_uri": [POST_LOGOUT_URI, "https://evil.example/bye"],
    "logout_hint": ["admin@fuzz.example"],
    "SAMLResponse": [base64.b64encode(b"<samlp:Response/>").decode()],
    "RelayState": ["x"],
}


def xmlish():
    """Base64 of something shaped like SAML: nested elements, entities, comments."""
    tags = st.sampled_from([
        "samlp:Response", "saml:Assertion", "saml:Issuer", "saml:Subject", "saml:NameID",
        "ds:Signature", "ds:SignedInfo", "saml:EncryptedAssertion", "samlp:Status", "x",
    ])
    leaf = st.one_of(st.text(max_size=20), st.sampled_from([
        "&xxe;", "<!-- c -->", "<!DOCTYPE r [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>",
        "<![CDATA[x]]>", "\u0000", "&#0;",
    ]))
    tree = st.recursive(
        leaf,
        lambda kids: st.builds(
            lambda t, xs, attr: f"<{t}{attr}>{''.join(xs)}</{t}>",
            tags,
            st.lists(kids, max_size=4),
            st.sampled_from(["", ' ID="_1"', ' xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol"',
                             ' Version="2.0" IssueInstant="2026-01-01T00:00:00Z"']),
        ),
        max_leaves=30,
    )
    deep = st.integers(1, 5000).map(lambda n: "<a>" * n + "</a>" * n)
    return st.one_of(tree, deep).map(lambda x: base64.b64encode(x.encode("utf-8", "surrogatepass")).decode())


def junk_value():
    return st.one_of(
        st.text(max_size=40),
        st.binary(max_size=40),  # percent-encoded as is: invalid UTF-8 included
        st.integers(0, 300_000).map(lambda n: "A" * n),
        st.integers(1, 2000).map(lambda n: "a" + "[b]" * n),
        st.sampled_from(["", "%", "%zz", "\r\n", "\u0000", "../../etc/passwd", "null", "[]", "{}"]),
    )


def value_for(key):
    good = GOOD.get(key)
    extra = [xmlish()] if key == "SAMLResponse" else []
    if good:
        return st.one_of(st.sampled_from(good), junk_value(), *extra)
    return junk_value()


def pairs(keys):
    key = st.one_of(st.sampled_from(keys), st.text(max_size=12), st.binary(max_size=8))
    pair = key.flatmap(lambda k: st.tuples(st.just(k), value_for(k if isinstance(k, str) else "")))
    base = st.lists(pair, max_size=12)
    # Duplicates on purpose, as well as by chance.
    return st.one_of(base, base.map(lambda ps: ps + ps[:2]))


def encode(ps):
    def q(x):
        return urllib.parse.quote_from_bytes(x if isinstance(x, bytes) else x.encode("utf-8", "surrogatepass"), safe="")
    return "&".join(f"{q(k)}={q(v)}" for k, v in ps)


def basic(user, password):
    raw = f"{urllib.parse.quote(user, safe='')}:{urllib.parse.quote(password, safe='')}".encode()
    return b"Basic " + base64.b64encode(raw)


AUTHORIZATION = st.one_of(
    st.none(),
    st.just(basic(CLIENT_ID, CLIENT_SECRET)),
    st.just(basic(CLIENT_ID, "wrong")),
    st.binary(max_size=60).map(lambda b: b"Basic " + base64.b64encode(b)),
    st.binary(max_size=60).map(lambda b: b"Basic " + b.replace(b"\r", b"").replace(b"\n", b"")),
    st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=80).map(lambda t: b"Bearer " + t.encode()),
    st.integers(0, 70_000).map(lambda n: b"Bearer " + b"A" * n),
    st.sampled_from([b"Bearer", b"Basic", b"DPoP x", b"DPoP eyJhbGciOiJub25lIn0.e30.", b"Bearer a b", b"Basic ====", b"bearer eyJhbGciOiJub25lIn0.e30."]),
)
FORM = b"application/x-www-form-urlencoded"
# Half the bodies are declared as forms, so that generation reaches past the content type.
CONTENT_TYPE = st.one_of(st.just(FORM), st.sampled_from([
    None, FORM, b"application/x-www-form-urlencoded; charset=utf-8",
    b"application/x-www-form-urlencoded; charset=utf-16", b"application/json", b"text/plain",
    b"multipart/form-data; boundary=x", b"application/xml", b"\xff\xfe", b"",
]))
HEADERS = st.lists(
    st.sampled_from([
        (b"X-Forwarded-For", b"203.0.113.7"), (b"X-Forwarded-For", b"not an address, ::1"),
        (b"Cookie", b"__Host-portcullis_session=garbage; pc_flow=%ff"), (b"Cookie", b"=" * 200),
        (b"Origin", b"https://evil.example"), (b"Origin", b"null"),
        (b"Accept-Language", b"pt-BR,*;q=0.5"), (b"Accept-Language", b"\xff;q=x"),
        (b"Accept", b"application/jwt"), (b"DPoP", b"eyJhbGciOiJub25lIn0.e30."),
        (b"DPoP", b"eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7fX0.e30.AAAA"),
        (b"X-Forwarded-Proto", b"gopher"), (b"Host", b"evil.example"),
    ]),
    max_size=3,
)
JSON_VALUE = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)),
    lambda kids: st.one_of(st.lists(kids, max_size=4), st.dictionaries(st.text(max_size=10), kids, max_size=4)),
    max_leaves=25,
)
REGISTER_KEYS = [
    "redirect_uris", "client_name", "grant_types", "response_types", "token_endpoint_auth_method",
    "scope", "jwks", "jwks_uri", "post_logout_redirect_uris", "client_id", "software_statement",
    "logo_uri", "contacts",
]
JSON_BODY = st.one_of(
    st.dictionaries(st.sampled_from(REGISTER_KEYS), JSON_VALUE, max_size=6),
    st.fixed_dictionaries({"redirect_uris": st.one_of(
        st.just([REDIRECT_URI]), st.lists(st.text(max_size=30), max_size=3), JSON_VALUE)}),
    JSON_VALUE,
    st.integers(1, 100_000).map(lambda n: "[" * n + "]" * n),
)

# --- sending and judging --------------------------------------------------------------------


def send(method, path, query, headers, body):
    target = path + ("?" + query if query else "")
    conn = http.client.HTTPConnection(HOST, PORT, timeout=30)
    try:
        own_host = any(name.lower() == b"host" for name, _ in headers)
        conn.putrequest(method, target, skip_host=own_host, skip_accept_encoding=True)
        for name, value in headers:
            conn.putheader(name.decode(), value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    except (ConnectionError, http.client.HTTPException, TimeoutError) as e:
        return -1, {}, repr(e).encode()
    finally:
        conn.close()


def describe(method, path, query, headers, body):
    def cut(x, n=300):
        x = x if isinstance(x, (bytes, str)) else repr(x)
        return (x[:n] + (b"..." if isinstance(x, bytes) else "...")) if len(x) > n else x
    return f"{method} {path}?{cut(query)} headers={[(h, cut(v, 80)) for h, v in headers]} body={cut(body or b'')!r}"


def judge(endpoint, method, path, query, headers, body, sent_auth):
    SENT[endpoint] += 1
    status, rh, data = send(method, path, query, headers, body)
    STATUSES[(endpoint, status)] += 1
    where = describe(method, path, query, headers, body)
    head = len(path) + len(query) + sum(len(h) + len(v) + 4 for h, v in headers)
    invalid_field = any(INVALID_FIELD_BYTES.intersection(v) for _, v in headers)
    two_hosts = sum(h.lower() == b"host" for h, _ in headers) > 1
    if invalid_field or two_hosts:
        # The HTTP layer refuses a header value with control characters (RFC 9110 §5.5) and
        # a second Host (RFC 9112 §3.2) before any handler runs.
        assert status in (-1, 400, 431), f"{status} to a malformed request head: {where}"
        return
    if head > HEAD_LIMIT and status in (-1, 400, 431):
        return  # a head the HTTP layer does not buffer
    assert status != -1, f"no answer ({data!r}) to {where}"
    assert status < 500, f"{status} {data[:300]!r} to {where}"
    if status in TRANSPORT_LIMITS:
        return
    ctype = rh.get("content-type", "")
    if endpoint in ERRORS:
        if status < 400:
            return
        assert ctype.startswith("application/json"), f"{status} {ctype!r} {data[:200]!r} to {where}"
        err = json.loads(data)
        code = err.get("error") if isinstance(err, dict) else None
        assert isinstance(code, str) and code in ERRORS[endpoint] | {"rate_limited", "access_denied", "not_found"}, \
            f"{status} {data[:300]!r} to {where}"
        assert isinstance(err.get("error_description", ""), str), f"{data[:300]!r} to {where}"
        assert "no-store" in rh.get("cache-control", ""), f"{status} without no-store to {where}"
        if status == 401:
            assert "www-authenticate" in rh, f"401 without WWW-Authenticate to {where}"
        return
    # Browser endpoints: a page or a redirect that does not go anywhere it should not.
    if status in (301, 302, 303, 307, 308):
        loc = rh.get("location", "")
        if loc.startswith("/") and not loc.startswith("//") or loc.startswith(BASE + "/"):
            return
        target = urllib.parse.urlsplit(loc)
        registered = {REDIRECT_URI: "authorize", POST_LOGOUT_URI: "logout"}
        plain = urllib.parse.urlunsplit((target.scheme, target.netloc, target.path, "", ""))
        assert registered.get(plain) == endpoint, f"redirect to {loc!r} from {where}"
        if endpoint == "authorize":
            params = dict(urllib.parse.parse_qsl(target.query or target.fragment))
            assert "code" in params or params.get("error") in AUTHORIZE_ERRORS, f"{loc!r} from {where}"
            assert params.get("iss") == ISSUER, f"no iss (RFC 9207) in {loc!r} from {where}"
        return
    if status == 200 and endpoint == "authorize" and "form_post" in query:
        return
    assert ctype.startswith("text/html"), f"{status} {ctype!r} {data[:200]!r} to {where}"


def strategy_for(method, keys):
    return st.tuples(
        pairs(keys),  # query
        pairs(keys),  # form body
        st.one_of(st.none(), st.none(), st.none(), st.binary(max_size=400)),  # or a raw body
        AUTHORIZATION,
        CONTENT_TYPE,
        HEADERS,
    )


def request(endpoint, method, path, sample, form_in_body=True):
    query_pairs, body_pairs, raw, auth, ctype, extra = sample
    headers = list(extra)
    if auth is not None:
        headers.append((b"Authorization", auth))
    body = None
    if method == "POST":
        body = raw if raw is not None else encode(body_pairs).encode()
        if ctype is not None:
            headers.append((b"Content-Type", ctype))
    judge(endpoint, method, path, encode(query_pairs), headers, body, auth is not None)


ENDPOINTS = [
    ("authorize", ["GET", "POST"], "/authorize", [
        "response_type", "client_id", "redirect_uri", "scope", "state", "nonce", "code_challenge",
        "code_challenge_method", "response_mode", "prompt", "max_age", "acr_values", "ui_locales",
        "login_hint", "id_token_hint", "request", "request_uri", "claims", "dpop_jkt"]),
    ("token", ["POST"], "/token", [
        "grant_type", "code", "redirect_uri", "code_verifier", "refresh_token", "scope", "client_id",
        "client_secret", "client_assertion_type", "client_assertion", "resource", "audience"]),
    ("par", ["POST"], "/par", [
        "response_type", "client_id", "redirect_uri", "scope", "state", "nonce", "code_challenge",
        "code_challenge_method", "response_mode", "prompt", "max_age", "request", "request_uri",
        "claims", "client_secret", "client_assertion_type", "client_assertion", "dpop_jkt"]),
    ("userinfo", ["GET", "POST"], "/userinfo", ["access_token", "scope"]),
    ("revoke", ["POST"], "/revoke", ["token", "token_type_hint", "client_id", "client_secret"]),
    ("introspect", ["POST"], "/introspect", ["token", "token_type_hint", "client_id", "client_secret"]),
    ("logout", ["GET", "POST"], "/logout", [
        "id_token_hint", "post_logout_redirect_uri", "state", "client_id", "logout_hint", "ui_locales"]),
    ("saml_acs", ["POST"], "/saml/acs", ["SAMLResponse", "RelayState"]),
]

SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=False,
    phases=[Phase.generate, Phase.shrink],
    suppress_health_check=list(HealthCheck),
)


def run_form_endpoints():
    for endpoint, methods, path, keys in ENDPOINTS:
        for method in methods:
            @SETTINGS
            @given(strategy_for(method, keys))
            def case(sample):
                request(endpoint, method, TENANT + path, sample)
            run(f"{method} {path}", case)


def run_register():
    @SETTINGS
    @given(JSON_BODY, st.sampled_from([b"application/json", b"application/json; charset=utf-8", b"text/plain", None]),
           AUTHORIZATION)
    def case(value, ctype, auth):
        body = value.encode() if isinstance(value, str) else json.dumps(value).encode()
        headers = [(b"Content-Type", ctype)] if ctype else []
        if auth is not None:
            headers.append((b"Authorization", auth))
        judge("register", "POST", TENANT + "/register", "", headers, body, auth is not None)

    run("POST /register", case)

    @SETTINGS
    @given(st.sampled_from(["GET", "PUT", "DELETE"]), st.text(min_size=1, max_size=40), AUTHORIZATION, JSON_BODY)
    def manage(method, client_id, auth, value):
        path = TENANT + "/register/" + urllib.parse.quote(client_id, safe="")
        headers = [(b"Authorization", auth)] if auth is not None else []
        body = None
        if method == "PUT":
            headers.append((b"Content-Type", b"application/json"))
            body = json.dumps(value).encode() if not isinstance(value, str) else value.encode()
        judge("register", method, path, "", headers, body, auth is not None)

    run("GET/PUT/DELETE /register/{client_id}", manage)


def run(name, case):
    before = sum(SENT.values())
    try:
        case()
        print(f"  {name}: {sum(SENT.values()) - before} requests, no finding", flush=True)
    except AssertionError as e:
        FINDINGS.append(f"{name}: {e}")
        print(f"  {name}: FINDING {str(e)[:2000]}", flush=True)


def main():
    run_form_endpoints()
    run_register()
    total = sum(SENT.values())
    print(f"requests sent: {total}; by endpoint: {dict(SENT)}")
    worst = collections.Counter()
    for (endpoint, status), n in STATUSES.items():
        worst[status] += n
    print(f"statuses: {dict(sorted(worst.items()))}")
    if FINDINGS:
        print(f"{len(FINDINGS)} finding(s)", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
