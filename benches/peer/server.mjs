// Reference OpenID Provider for benches/bench.sh: `oidc-provider` (npm, v9) configured to
// answer the same scenarios as Portcullis, so both can be measured on the same machine.
//
// Start:   node benches/peer/server.mjs            (after `npm ci` in benches/peer)
// Stdout:  exactly one line `LISTENING http://127.0.0.1:<port>` once every process is ready;
//          everything else goes to stderr. Runs until killed (SIGTERM/SIGINT stop the cluster).
// Issuer:  http://127.0.0.1:<port>  (discovery /.well-known/openid-configuration, /jwks, /auth,
//          /token, /token/introspection, /interaction/<uid>)
//
// Env:
//   PORT              port on 127.0.0.1 (default 0 = a free one; required > 0 with PEER_WORKERS > 1)
//   PEER_WORKERS      1 (default) = one process; N > 1 = node:cluster primary + N workers that
//                     share the port. The in-memory adapter is per process, so in cluster mode
//                     only stateless requests are meaningful: discovery, JWKS, client_credentials
//                     with JWT access tokens. Sessions, interactions, codes and opaque tokens live
//                     in the worker that created them (the bench runs the flow and introspection
//                     against the single-process peer only).
//   PEER_SECRET       client secret of every client (default "bench-peer-secret")
//   PEER_EMAIL, PEER_PASSWORD   the one account (default bench@example.com / bench-password-1)
//   PEER_ARGON2_M, PEER_ARGON2_T, PEER_ARGON2_P   Argon2id cost of the account's password hash
//                     (KiB, passes, lanes; default 65536, 3, 4, the Portcullis defaults). The hash
//                     is made once at start-up; every sign-in verifies against it.
//   PEER_REDIRECT_URI redirect URI of the flow client (default http://127.0.0.1:9/cb)
//
// Clients (client_secret_basic):
//   cc-RS256, cc-ES256, cc-EdDSA  client_credentials, scope `api`; each has its own default
//                     resource, whose access tokens are JWTs signed with that alg.
//   cc-opaque         client_credentials, scope `api`, opaque access tokens (oidc-provider
//                     refuses to introspect JWT access tokens: "Structured JWT Tokens cannot be
//                     introspected"), so this is the introspection scenario's token.
//   flow              authorization_code, PKCE S256 required, redirect PEER_REDIRECT_URI, scope openid.
//
// Sign-in (custom interactions, devInteractions off), a non-JS client sees:
//   GET /auth?...               -> 303 /interaction/<uid>  (cookies _interaction, _interaction_resume)
//   GET /interaction/<uid>      -> 200 HTML, one form:
//        <form method="post" action="http://127.0.0.1:<port>/interaction/<uid>">
//          <input type="hidden" name="prompt" value="login">
//          <input type="email" name="email"> <input type="password" name="password">
//          <button type="submit" name="action" value="sign_in">
//   POST /interaction/<uid>     email, password (Argon2id verify) -> 303 /auth/<uid>
//                               -> 303 REDIRECT_URI?code=...&state=...&iss=...
//   (consent is granted automatically for the requested scopes: loadExistingGrant below)
//   A wrong e-mail or password re-renders the form with 401.

console.info = (...args) => console.error(...args);
console.log = (...args) => console.error(...args);

import cluster from 'node:cluster';
import * as crypto from 'node:crypto';
import * as http from 'node:http';

const WORKERS = Math.max(1, Number.parseInt(process.env.PEER_WORKERS || '1', 10) || 1);
const PORT = Number.parseInt(process.env.PORT || '0', 10);
const SECRET = process.env.PEER_SECRET || 'bench-peer-secret';
const EMAIL = process.env.PEER_EMAIL || 'bench@example.com';
const PASSWORD = process.env.PEER_PASSWORD || 'bench-password-1';
const REDIRECT_URI = process.env.PEER_REDIRECT_URI || 'http://127.0.0.1:9/cb';
const ARGON2 = {
  memoryCost: Number.parseInt(process.env.PEER_ARGON2_M || '65536', 10),
  timeCost: Number.parseInt(process.env.PEER_ARGON2_T || '3', 10),
  parallelism: Number.parseInt(process.env.PEER_ARGON2_P || '4', 10),
};
const ALGS = ['RS256', 'ES256', 'EdDSA'];

function fail(msg) {
  console.error(`peer/server.mjs: ${msg}`);
  process.exit(1);
}

// Shared state made once (in the primary, or the only process): signing keys, cookie keys and
// the password hash. Workers receive it through the environment so they all look the same.
async function makeShared() {
  const { hash, Algorithm } = await import('@node-rs/argon2');
  const jwk = (privateKey, alg) => ({
    ...privateKey.export({ format: 'jwk' }),
    kid: `${alg}-${crypto.randomUUID()}`,
    use: 'sig',
    alg,
  });
  const keys = [
    jwk(crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey, 'RS256'),
    jwk(crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, 'ES256'),
    jwk(crypto.generateKeyPairSync('ed25519').privateKey, 'EdDSA'),
  ];
  const passwordHash = await hash(PASSWORD, { ...ARGON2, algorithm: Algorithm.Argon2id });
  return { keys, cookieKey: crypto.randomBytes(32).toString('hex'), passwordHash };
}

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function loginPage(action, error) {
  return `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Sign in</title></head><body>
<h1>Sign in</h1>${error ? `<p role="alert">${esc(error)}</p>` : ''}
<form method="post" action="${esc(action)}">
<input type="hidden" name="prompt" value="login">
<label>E-mail <input type="email" name="email" autocomplete="username" required></label>
<label>Password <input type="password" name="password" autocomplete="current-password" required></label>
<button type="submit" name="action" value="sign_in">Sign in</button>
</form></body></html>`;
}

function readBody(req, limit = 64 * 1024) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > limit) {
        reject(new Error('body too large'));
        req.destroy();
      } else {
        chunks.push(c);
      }
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

async function serve(shared) {
  const { default: Provider } = await import('oidc-provider');
  const { verify } = await import('@node-rs/argon2');

  const server = http.createServer();
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(PORT, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const resourceAlg = Object.fromEntries(ALGS.map((alg) => [`urn:bench:${alg.toLowerCase()}`, alg]));

  const ccClient = (id, resource) => ({
    client_id: id,
    client_secret: SECRET,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
    scope: 'api',
    'urn:bench:resource': resource,
  });

  const provider = new Provider(issuer, {
    clients: [
      ...ALGS.map((alg) => ccClient(`cc-${alg}`, `urn:bench:${alg.toLowerCase()}`)),
      ccClient('cc-opaque', 'urn:bench:opaque'),
      {
        client_id: 'flow',
        client_secret: SECRET,
        redirect_uris: [REDIRECT_URI],
        grant_types: ['authorization_code'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
        id_token_signed_response_alg: 'RS256',
      },
    ],
    extraClientMetadata: { properties: ['urn:bench:resource'] },
    jwks: { keys: shared.keys },
    cookies: { keys: [shared.cookieKey] },
    responseTypes: ['code'],
    pkce: { required: () => true },
    scopes: ['openid', 'api'],
    claims: { openid: ['sub'] },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: false },
      userinfo: { enabled: true },
      rpInitiatedLogout: { enabled: false },
      registration: { enabled: false },
      resourceIndicators: {
        enabled: true,
        // client_credentials requests carry no `resource`: each client has its own.
        defaultResource: async (_ctx, client) => client['urn:bench:resource'] ?? undefined,
        useGrantedResource: async () => false,
        getResourceServerInfo: async (_ctx, resourceIndicator) => {
          const alg = resourceAlg[resourceIndicator];
          if (alg) {
            return { scope: 'api', accessTokenFormat: 'jwt', accessTokenTTL: 3600, jwt: { sign: { alg } } };
          }
          if (resourceIndicator === 'urn:bench:opaque') {
            return { scope: 'api', accessTokenFormat: 'opaque', accessTokenTTL: 3600 };
          }
          throw new Error(`unknown resource ${resourceIndicator}`);
        },
      },
    },
    ttl: {
      AccessToken: 3600,
      ClientCredentials: 3600,
      AuthorizationCode: 60,
      IdToken: 3600,
      Interaction: 1800,
      Session: 43200,
      Grant: 43200,
    },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    async findAccount(_ctx, id) {
      return { accountId: id, async claims() { return { sub: id }; } };
    },
    // Auto-consent, like a Portcullis client created with --skip-consent.
    async loadExistingGrant(ctx) {
      const grant = new ctx.oidc.provider.Grant({
        clientId: ctx.oidc.client.clientId,
        accountId: ctx.oidc.session.accountId,
      });
      grant.addOIDCScope([...ctx.oidc.requestParamScopes].join(' '));
      await grant.save();
      return grant;
    },
    async renderError(ctx, out) {
      ctx.type = 'html';
      ctx.body = `<!DOCTYPE html><html><body><h1>error</h1><pre>${
        Object.entries(out).map(([k, v]) => `${esc(k)}: ${esc(v)}`).join('\n')}</pre></body></html>`;
    },
  });
  provider.proxy = false;
  for (const ev of ['server_error', 'authorization.error', 'grant.error', 'introspection.error']) {
    provider.on(ev, (_ctx, err) => console.error(`oidc-provider ${ev}: ${err?.message} ${err?.error_description ?? ''}`));
  }

  const callback = provider.callback();
  const send = (res, status, headers, body) => {
    res.writeHead(status, { 'cache-control': 'no-store', ...headers });
    res.end(body);
  };

  async function interaction(req, res, uid) {
    let details;
    try {
      details = await provider.interactionDetails(req, res);
    } catch (err) {
      send(res, 400, { 'content-type': 'text/plain' }, `interaction: ${err.message}\n`);
      return;
    }
    if (details.uid !== uid) {
      send(res, 400, { 'content-type': 'text/plain' }, 'interaction: uid mismatch\n');
      return;
    }
    const action = `${issuer}/interaction/${uid}`;
    const html = { 'content-type': 'text/html; charset=utf-8' };
    if (details.prompt.name !== 'login') {
      // Consent is auto-granted through loadExistingGrant; anything else is unexpected here.
      send(res, 400, { 'content-type': 'text/plain' }, `interaction: unexpected prompt ${details.prompt.name}\n`);
      return;
    }
    if (req.method === 'GET') {
      send(res, 200, html, loginPage(action));
      return;
    }
    if (req.method !== 'POST') {
      send(res, 405, { allow: 'GET, POST' }, '');
      return;
    }
    const form = new URLSearchParams(await readBody(req));
    const email = form.get('email') || '';
    const password = form.get('password') || '';
    // Always verify (also for an unknown e-mail), so both cost one Argon2id verification.
    const ok = await verify(shared.passwordHash, password).catch(() => false);
    if (!ok || email.toLowerCase() !== EMAIL.toLowerCase()) {
      send(res, 401, html, loginPage(action, 'Wrong e-mail or password.'));
      return;
    }
    const returnTo = await provider.interactionResult(req, res, { login: { accountId: EMAIL } }, {
      mergeWithLastSubmission: false,
    });
    send(res, 303, { location: returnTo }, '');
  }

  server.on('request', (req, res) => {
    const m = /^\/interaction\/([A-Za-z0-9_-]+)$/.exec(req.url.split('?')[0]);
    if (m) {
      interaction(req, res, m[1]).catch((err) => {
        console.error(`interaction error: ${err.stack || err}`);
        if (!res.headersSent) send(res, 500, { 'content-type': 'text/plain' }, 'internal error\n');
        else res.destroy();
      });
      return;
    }
    callback(req, res);
  });
  return issuer;
}

if (WORKERS > 1 && cluster.isPrimary) {
  if (!(PORT > 0)) fail('PEER_WORKERS > 1 needs PORT > 0 (the issuer must be known to every worker)');
  const shared = await makeShared();
  let listening = 0;
  let stopping = false;
  const env = { PEER_SHARED: JSON.stringify(shared) };
  for (let i = 0; i < WORKERS; i++) cluster.fork(env);
  cluster.on('message', (_worker, msg) => {
    if (msg?.type === 'listening' && ++listening === WORKERS) {
      process.stdout.write(`LISTENING http://127.0.0.1:${PORT}\n`);
    }
  });
  cluster.on('exit', (worker, code, signal) => {
    if (!stopping) fail(`worker ${worker.process.pid} exited (${signal || code})`);
  });
  const stop = () => {
    stopping = true;
    for (const w of Object.values(cluster.workers)) w?.process.kill('SIGTERM');
    setTimeout(() => process.exit(0), 200).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
} else {
  const shared = process.env.PEER_SHARED ? JSON.parse(process.env.PEER_SHARED) : await makeShared();
  const issuer = await serve(shared).catch((err) => fail(err.stack || String(err)));
  if (cluster.isWorker) {
    process.send({ type: 'listening' });
  } else {
    process.stdout.write(`LISTENING ${issuer}\n`);
  }
  process.on('SIGTERM', () => process.exit(0));
  process.on('SIGINT', () => process.exit(0));
}
