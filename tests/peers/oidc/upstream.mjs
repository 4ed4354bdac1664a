// Upstream OpenID Provider test peer for Portcullis integration tests.
// Real third-party implementation: `oidc-provider` (npm, v9), with its built-in devInteractions.
//
// Start:   node tests/peers/oidc/upstream.mjs
// Env:     CLIENT_ID, CLIENT_SECRET, REDIRECT_URI   (required; one confidential client)
//          TOKEN_AUTH_METHOD  (optional, default "client_secret_basic"; "client_secret_post" also works.
//                              oidc-provider accepts ONLY the registered method at /token)
//          PORT               (optional, default 0 = random free port)
// Stdout:  exactly one line `LISTENING http://127.0.0.1:<port>` once ready; everything else
//          (oidc-provider notices, errors) goes to stderr. Runs until killed; stdin is not read.
// Issuer:  http://127.0.0.1:<port>   discovery: /.well-known/openid-configuration
//
// Endpoints: /auth (authorize), /token, /me (userinfo), /jwks, /interaction/:uid ...
// Client: response_type=code only, PKCE S256 REQUIRED (plain is rejected), state + nonce passed
//   through, scopes `openid email profile`, id_token RS256 (fresh RSA-2048 key per run).
//   ID token carries the scope claims too (conformIdTokenClaims=false), so
//   email/email_verified, name/given_name/family_name/preferred_username/picture/locale (given_name
//   is the capitalised local part, family_name "Tester", locale pt-BR) and groups are in both the
//   id_token and the userinfo response.
//
// Interaction (plain HTML, no JS needed), a non-JS client sees exactly:
//   1. GET /auth?...            -> 303 to /interaction/<uid> (sets cookie `_interaction`, path /interaction/<uid>,
//                                  and `_interaction_resume`, path /auth/<uid>; both HttpOnly, SameSite=Lax, not Secure)
//   2. GET /interaction/<uid>   -> 200 HTML with ONE form:
//        <form autocomplete="off" action="http://127.0.0.1:<port>/interaction/<uid>" method="post">
//          <input type="hidden" name="prompt" value="login"/>
//          <input type="text" name="login" ...>       (prefilled value="<login_hint>" when login_hint given)
//          <input type="password" name="password" ...>   (no value attribute; password is ignored)
//          <button type="submit">Sign-in</button>
//        and a cancel link  <a href="http://127.0.0.1:<port>/interaction/<uid>/abort">[ Cancel ]</a>
//      NOTE: form action and abort link are absolute URLs (HTML-escaped; uid is URL-safe base64).
//      NOTE: the type=text/password inputs have no value= unless login_hint is set: a client must
//            add login=<name> and password=<anything> itself.
//   3. POST /interaction/<uid>  (prompt=login&login=<name>&password=x)
//        -> 303 to /auth/<uid> -> 303 to REDIRECT_URI?code=...&state=...&iss=http%3A%2F%2F127.0.0.1%3A<port>
//      No consent page: loadExistingGrant below auto-grants every requested scope.
//   Cancel: GET /interaction/<uid>/abort -> 303 /auth/<uid> ->
//        303 to REDIRECT_URI?error=access_denied&error_description=End-User+aborted+interaction&state=...&iss=...
//   A second /auth while the `_session` cookie is live skips the login form (SSO session).
//   Add prompt=login to force the form again.
//
// Accounts (findAccount): the login string is the account, password ignored.
//   sub = login; email = login if it contains '@' else `<login>@example.com`;
//   email_verified = false iff login starts with "unverified"; name = "Test <login>";
//   groups = ["engineering"] (scope profile).

// oidc-provider prints some notices with console.info (stdout). Keep stdout for the LISTENING line only.
console.info = (...args) => console.error(...args);
console.log = (...args) => console.error(...args);

import * as http from 'node:http';
import * as crypto from 'node:crypto';

const { default: Provider } = await import('oidc-provider');

function required(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`upstream.mjs: missing required env var ${name}`);
    process.exit(2);
  }
  return v;
}

const CLIENT_ID = required('CLIENT_ID');
const CLIENT_SECRET = required('CLIENT_SECRET');
const REDIRECT_URI = required('REDIRECT_URI');
const TOKEN_AUTH_METHOD = process.env.TOKEN_AUTH_METHOD || 'client_secret_basic';
const PORT = Number.parseInt(process.env.PORT || '0', 10);

const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingJwk = {
  ...privateKey.export({ format: 'jwk' }),
  kid: crypto.randomUUID(),
  use: 'sig',
  alg: 'RS256',
};

function claimsFor(login) {
  return {
    sub: login,
    email: login.includes('@') ? login : `${login}@example.com`,
    email_verified: !login.startsWith('unverified'),
    name: `Test ${login}`,
    given_name: login.charAt(0).toUpperCase() + login.split('@')[0].slice(1),
    family_name: 'Tester',
    preferred_username: login.split('@')[0],
    picture: `https://pictures.example/${encodeURIComponent(login)}.png`,
    locale: 'pt-BR',
    groups: ['engineering'],
  };
}

const server = http.createServer();

server.listen(PORT, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;

  const provider = new Provider(issuer, {
    clients: [{
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      redirect_uris: [REDIRECT_URI],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: TOKEN_AUTH_METHOD,
      id_token_signed_response_alg: 'RS256',
    }],
    jwks: { keys: [signingJwk] },
    cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
    responseTypes: ['code'],
    pkce: { required: () => true },
    scopes: ['openid', 'email', 'profile'],
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'given_name', 'family_name', 'preferred_username', 'picture', 'locale', 'groups'],
    },
    conformIdTokenClaims: false,
    features: {
      devInteractions: { enabled: true },
      userinfo: { enabled: true },
      dPoP: { enabled: false },
      pushedAuthorizationRequests: { enabled: false },
      resourceIndicators: { enabled: false },
      rpInitiatedLogout: { enabled: false },
      introspection: { enabled: false },
      revocation: { enabled: false },
      registration: { enabled: false },
      claimsParameter: { enabled: false },
      requestObjects: { enabled: false },
    },
    ttl: {
      AccessToken: 3600,
      AuthorizationCode: 120,
      IdToken: 3600,
      Interaction: 3600,
      Session: 86400,
      Grant: 86400,
    },
    async findAccount(_ctx, id) {
      return {
        accountId: id,
        async claims() { return claimsFor(id); },
      };
    },
    // Auto-consent: always hand back a grant covering every requested OIDC scope,
    // so the consent prompt never shows.
    async loadExistingGrant(ctx) {
      const grant = new ctx.oidc.provider.Grant({
        clientId: ctx.oidc.client.clientId,
        accountId: ctx.oidc.session.accountId,
      });
      grant.addOIDCScope([...ctx.oidc.requestParamScopes].join(' '));
      await grant.save();
      return grant;
    },
    async renderError(ctx, out, _error) {
      ctx.type = 'html';
      const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
      ctx.body = `<!DOCTYPE html><html><body><h1>oops</h1><pre>${
        Object.entries(out).map(([k, v]) => `${esc(k)}: ${esc(v)}`).join('\n')}</pre></body></html>`;
    },
  });

  for (const ev of ['server_error', 'authorization.error', 'grant.error', 'userinfo.error']) {
    provider.on(ev, (_ctx, err) => console.error(`oidc-provider ${ev}: ${err?.message} ${err?.error_description ?? ''}`));
  }

  server.on('request', provider.callback());
  process.stdout.write(`LISTENING ${issuer}\n`);
});

server.on('error', (err) => {
  console.error(`upstream.mjs: ${err.message}`);
  process.exit(1);
});
