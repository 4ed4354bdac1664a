// A relying party built on panva's openid-client 6 (the certified client behind many
// FAPI 2.0 deployments), run by tests/api/fapi_peer.rs against a real Portcullis:
//   1. generates an ES256 key pair and registers itself by dynamic client registration
//      with that public key (token_endpoint_auth_method private_key_jwt),
//   2. client_credentials with a private_key_jwt assertion,
//   3. a pushed authorization request (PAR) with PKCE, the sign-in and consent forms
//      submitted like a browser would, and the code exchange (openid-client checks state,
//      iss in the response (RFC 9207), the ID token's iss/aud/exp/nonce),
//   4. userinfo, a refresh, then introspection and revocation with assertions.
// Every token request and the userinfo call carry DPoP proofs (RFC 9449) of one ES256 key,
// with the server nonces the test server requires (openid-client retries on
// use_dpop_nonce by itself); the PAR request carries one too, which binds the code.
// Prints "OK <json>" on success; any failure throws (non-zero exit).
//
// Environment: ISSUER, REDIRECT_URI, EMAIL, PASSWORD.
import * as client from 'openid-client';

const { ISSUER, REDIRECT_URI, EMAIL, PASSWORD } = process.env;
const insecure = { execute: [client.allowInsecureRequests] }; // the test server is http on 127.0.0.1

const { publicKey, privateKey } = await crypto.subtle.generateKey(
  { name: 'ECDSA', namedCurve: 'P-256' },
  true,
  ['sign', 'verify'],
);
const kid = 'peer-key-1';
const jwk = { ...(await crypto.subtle.exportKey('jwk', publicKey)), kid, alg: 'ES256', use: 'sig' };
delete jwk.key_ops;
delete jwk.ext;

const config = await client.dynamicClientRegistration(
  new URL(ISSUER),
  {
    client_name: 'openid-client peer',
    redirect_uris: [REDIRECT_URI],
    grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
    dpop_bound_access_tokens: true,
    response_types: ['code'],
    token_endpoint_auth_method: 'private_key_jwt',
    token_endpoint_auth_signing_alg: 'ES256',
    jwks: { keys: [jwk] },
    scope: 'openid profile email',
  },
  client.PrivateKeyJwt({ key: privateKey, kid }),
  insecure,
);
const meta = config.serverMetadata();
if (!meta.token_endpoint_auth_methods_supported.includes('private_key_jwt')) {
  throw new Error('discovery does not list private_key_jwt');
}

const DPoP = client.getDPoPHandle(config, await client.randomDPoPKeyPair('ES256'));
if (!meta.dpop_signing_alg_values_supported?.includes('ES256')) {
  throw new Error('discovery does not list DPoP with ES256');
}

// 2. client_credentials
const cc = await client.clientCredentialsGrant(config, {}, { DPoP });

// 3. PAR + code flow
const verifier = client.randomPKCECodeVerifier();
const challenge = await client.calculatePKCECodeChallenge(verifier);
const state = client.randomState();
const nonce = client.randomNonce();
const authorizeUrl = await client.buildAuthorizationUrlWithPAR(config, {
  redirect_uri: REDIRECT_URI,
  scope: 'openid profile email',
  code_challenge: challenge,
  code_challenge_method: 'S256',
  state,
  nonce,
}, { DPoP });
if (!authorizeUrl.searchParams.get('request_uri')?.startsWith('urn:ietf:params:oauth:request_uri:')) {
  throw new Error(`no request_uri in ${authorizeUrl}`);
}
const callback = await browse(authorizeUrl.href);
const tokens = await client.authorizationCodeGrant(config, new URL(callback), {
  pkceCodeVerifier: verifier,
  expectedState: state,
  expectedNonce: nonce,
  idTokenExpected: true,
}, undefined, { DPoP });
const claims = tokens.claims();
const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub, { DPoP });
const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token, {}, { DPoP });

// 4. introspection and revocation, each with a fresh assertion
const introspected = await client.tokenIntrospection(config, tokens.access_token);
await client.tokenRevocation(config, tokens.access_token);
const afterRevocation = await client.tokenIntrospection(config, tokens.access_token);

console.log('OK ' + JSON.stringify({
  client_id: config.clientMetadata().client_id,
  cc_token_type: cc.token_type,
  code_token_type: tokens.token_type,
  refreshed_token_type: refreshed.token_type,
  access_token: tokens.access_token,
  sub: claims.sub,
  email: userinfo.email,
  active: introspected.active,
  active_after_revocation: afterRevocation.active,
}));

// A minimal browser: follows redirects, keeps cookies, fills the sign-in form (Email,
// Password) and the consent form (Allow); returns the URL the server sends to REDIRECT_URI.
async function browse(start) {
  const jar = new Map();
  const cookieHeader = () => [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
  const remember = (res) => {
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const i = pair.indexOf('=');
      jar.set(pair.slice(0, i), pair.slice(i + 1));
    }
  };
  let url = start;
  let method = 'GET';
  let body;
  for (let step = 0; step < 10; step++) {
    const res = await fetch(url, {
      method,
      body,
      redirect: 'manual',
      headers: {
        cookie: cookieHeader(),
        ...(body ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
      },
    });
    remember(res);
    if (res.status >= 300 && res.status < 400) {
      const next = new URL(res.headers.get('location'), url).href;
      if (next.startsWith(REDIRECT_URI)) return next;
      [url, method, body] = [next, 'GET', undefined];
      continue;
    }
    const html = await res.text();
    if (res.status !== 200) throw new Error(`${url} answered ${res.status}: ${html}`);
    const action = decode(/<form[^>]*action="([^"]+)"/.exec(html)?.[1] ?? '');
    const fields = new URLSearchParams();
    for (const m of html.matchAll(/<input[^>]*type="hidden"[^>]*>/g)) {
      const name = /name="([^"]+)"/.exec(m[0])?.[1];
      const value = /value="([^"]*)"/.exec(m[0])?.[1] ?? '';
      if (name) fields.append(name, decode(value));
    }
    if (html.includes('name="password"')) {
      fields.append('email', EMAIL);
      fields.append('password', PASSWORD);
      fields.append('action', 'sign_in');
    } else if (html.includes('value="allow"')) {
      fields.append('decision', 'allow');
    } else {
      throw new Error(`unexpected page at ${url}: ${html}`);
    }
    [url, method, body] = [new URL(action, url).href, 'POST', fields.toString()];
  }
  throw new Error('too many steps');
}

function decode(s) {
  return s.replaceAll('&amp;', '&').replaceAll('&quot;', '"').replaceAll('&#x27;', "'")
    .replaceAll('&#39;', "'").replaceAll('&lt;', '<').replaceAll('&gt;', '>').replaceAll('&#x2F;', '/');
}
