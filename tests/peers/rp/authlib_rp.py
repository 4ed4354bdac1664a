#!/usr/bin/env python3
"""A relying party built on authlib (PyPI), run against the real Portcullis server by the suite.

Run:  ISSUER=… CLIENT_ID=… CLIENT_SECRET=… REDIRECT_URI=… POST_LOGOUT_URI=… EMAIL=… PASSWORD=…
      python3 tests/peers/rp/authlib_rp.py
Install: pip install -r tests/peers/rp/requirements.txt

authlib does what a Python web app does: discovery, an authorization URL with state, nonce and
PKCE S256, the code exchange (client_secret_basic), ID token validation with authlib's own
CodeIDToken rules (signature against the JWKS, iss, aud, exp, iat, nonce, at_hash), userinfo,
refresh (rotation: the old refresh token must then fail with invalid_grant), and RP-initiated
logout to the registered post-logout URI with its state. The browser part (sign-in form,
consent, sign-out confirmation) is plain HTTP with a cookie jar, as a person without JavaScript
would see it. Prints one line `OK {json}` with what it checked, or exits 1 with the reason.
"""

import html
import json
import os
import re
import sys
import urllib.parse

import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.jose import JsonWebKey, jwt
from authlib.oidc.core import CodeIDToken


def fail(msg):
    print(f"FAIL {msg}", flush=True)
    sys.exit(1)


def form_of(page, action_suffix):
    """The form whose action ends with `action_suffix`: its action and hidden fields."""
    for m in re.finditer(r'<form method="post" action="([^"]+)"[^>]*>(.*?)</form>', page, re.S):
        action = html.unescape(m.group(1))
        if action.endswith(action_suffix):
            hidden = dict(
                (html.unescape(n), html.unescape(v))
                for n, v in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', m.group(2)))
            return action, hidden
    fail(f"no form posting to {action_suffix}: {page[:500]}")


def main():
    env = os.environ
    issuer, redirect_uri = env["ISSUER"], env["REDIRECT_URI"]
    meta = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=10).json()
    if meta["issuer"] != issuer:
        fail(f"discovery issuer {meta['issuer']} != {issuer}")
    jwks = JsonWebKey.import_key_set(requests.get(meta["jwks_uri"], timeout=10).json())

    rp = OAuth2Session(
        env["CLIENT_ID"], env["CLIENT_SECRET"], scope="openid profile email offline_access",
        redirect_uri=redirect_uri, code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic")
    verifier = os.urandom(32).hex()
    nonce = os.urandom(12).hex()
    url, state = rp.create_authorization_url(
        meta["authorization_endpoint"], nonce=nonce, code_verifier=verifier)

    # The browser: authorize -> sign-in page -> (consent) -> back to the RP with the code.
    browser = requests.Session()
    r = browser.get(url, allow_redirects=False, timeout=10)
    callback = None
    for _ in range(8):
        loc = r.headers.get("location")
        if loc:
            loc = urllib.parse.urljoin(r.url, loc)
            if loc.startswith(redirect_uri):
                callback = loc
                break
            r = browser.get(loc, allow_redirects=False, timeout=10)
            continue
        page = r.text
        if 'name="password"' in page:
            action, fields = form_of(page, "/login")
            fields.update(email=env["EMAIL"], password=env["PASSWORD"])
        elif 'name="decision"' in page:
            action, fields = form_of(page, "/consent")
            fields["decision"] = "allow"
        else:
            fail(f"unexpected page HTTP {r.status_code}: {page[:500]}")
        r = browser.post(action, data=fields, allow_redirects=False, timeout=10)
    if not callback:
        fail("never redirected back to the RP")
    q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(callback).query))
    if q.get("state") != state:
        fail("state not returned")
    if q.get("iss") != issuer:
        fail("RFC 9207 iss missing or wrong")

    token = rp.fetch_token(meta["token_endpoint"], authorization_response=callback,
                           code_verifier=verifier)
    claims = jwt.decode(token["id_token"], jwks, claims_cls=CodeIDToken,
                        claims_options={"iss": {"values": [issuer]}, "aud": {"values": [env["CLIENT_ID"]]}},
                        claims_params={"nonce": nonce, "access_token": token["access_token"]})
    claims.validate()  # exp, iat, nonce, at_hash, azp…
    info = rp.get(meta["userinfo_endpoint"], timeout=10).json()
    if info.get("sub") != claims["sub"] or info.get("email") != env["EMAIL"]:
        fail(f"userinfo {info} does not match the ID token {dict(claims)}")

    # Refresh with rotation: the new pair works, the old refresh token is refused.
    old_refresh = token["refresh_token"]
    new = rp.refresh_token(meta["token_endpoint"], refresh_token=old_refresh)
    if new["refresh_token"] == old_refresh or "access_token" not in new:
        fail("refresh did not rotate")
    reuse = requests.post(meta["token_endpoint"], data={"grant_type": "refresh_token", "refresh_token": old_refresh},
                          auth=(env["CLIENT_ID"], env["CLIENT_SECRET"]), timeout=10)
    if reuse.status_code != 400 or reuse.json().get("error") != "invalid_grant":
        fail(f"reused refresh token answered {reuse.status_code} {reuse.text}")

    # RP-initiated logout: confirmation, then the registered post-logout URI with the state.
    logout_state = os.urandom(8).hex()
    url = meta["end_session_endpoint"] + "?" + urllib.parse.urlencode({
        "id_token_hint": token["id_token"], "post_logout_redirect_uri": env["POST_LOGOUT_URI"],
        "state": logout_state})
    r = browser.get(url, allow_redirects=False, timeout=10)
    if r.status_code == 200 and 'name="confirm"' in r.text:
        action, fields = form_of(r.text, "/logout")
        fields["confirm"] = "yes"
        r = browser.post(action, data=fields, allow_redirects=False, timeout=10)
    loc = r.headers.get("location", "")
    if not loc.startswith(env["POST_LOGOUT_URI"]) or f"state={logout_state}" not in loc:
        fail(f"logout answered {r.status_code} {loc or r.text[:300]}")
    # The session is gone: prompt=none now answers login_required.
    url, _ = rp.create_authorization_url(meta["authorization_endpoint"], nonce=nonce,
                                         code_verifier=verifier, prompt="none")
    r = browser.get(url, allow_redirects=False, timeout=10)
    if "error=login_required" not in r.headers.get("location", ""):
        fail(f"after logout prompt=none answered {r.status_code} {r.headers.get('location')}")

    print("OK " + json.dumps({"sub": claims["sub"], "amr": claims.get("amr"),
                              "userinfo_email": info["email"], "refreshed": True,
                              "logged_out": True}), flush=True)


if __name__ == "__main__":
    main()
