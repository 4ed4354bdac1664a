// Passkeys in a real browser: Debian's Chromium (/usr/bin/chromium) driven by playwright-core,
// with Chrome's virtual authenticator (DevTools Protocol WebAuthn.addVirtualAuthenticator:
// CTAP2, internal, resident keys, user verification). Run by tests/api/passkeys.rs against
// the real Portcullis server, whose public URL is http://localhost:PORT (a WebAuthn RP id
// must be a host name, not an IP address).
//
// Run:   ISSUER=… CLIENT_ID=… REDIRECT_URI=… EMAIL=… PASSWORD=… node tests/peers/spa/passkey.mjs
//
// What it does, as a person would:
//   1. opens the account page, signs in with Email and Password, types a name into "Name of
//      the new passkey" and presses "Add a passkey" (the authenticator creates a discoverable
//      credential);
//   2. forgets every cookie, starts an authorization request of CLIENT_ID and presses "Sign in
//      with a passkey" on the sign-in page; reports the code the redirect carries;
//   3. signs in through the JSON API from the page (POST /api/v1/auth/passkey/options,
//      navigator.credentials.get, POST /api/v1/auth/passkey/verify); reports the token;
//   4. replaces the credential in the authenticator by a copy whose signature counter went
//      back (a clone) and signs in through the API again; reports the refusal.
// Prints one line `OK {json}` or `FAIL reason`, exits 0 or 1.

import crypto from 'node:crypto';
import http from 'node:http';
import { chromium } from 'playwright-core';

const { ISSUER, CLIENT_ID, REDIRECT_URI, EMAIL, PASSWORD } = process.env;

function fail(msg) {
  console.log(`FAIL ${msg}`);
  process.exit(1);
}

const timer = setTimeout(() => fail('timed out after 90 s'), 90000);
const b64u = (b) => Buffer.from(b).toString('base64url');
const servers = [];

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const context = await browser.newContext();
  const tab = await context.newPage();
  const errors = [];
  // Script errors (a failed fetch is logged as "Failed to load resource": the favicon, and
  // the clone's refusal, are expected).
  tab.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) errors.push(m.text());
  });
  tab.on('pageerror', (e) => errors.push(String(e)));
  const navigations = [];
  tab.on('request', (r) => { if (r.isNavigationRequest()) navigations.push(`${r.method()} ${r.url()}`); });
  tab.on('requestfailed', (r) => errors.push(`${r.url()} ${r.failure()?.errorText}`));
  // The relying party's redirect URI, served here (a route cannot catch the target of a
  // redirect): it keeps the URL it was called with.
  let callback = null;
  const rp = new URL(REDIRECT_URI);
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, rp.origin);
    if (url.pathname === rp.pathname) callback = url.href;
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('callback');
  });
  await new Promise((resolve) => server.listen(Number(rp.port), rp.hostname, resolve));
  servers.push(server);
  const cdp = await context.newCDPSession(tab);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2', transport: 'internal', hasResidentKey: true,
      hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true,
    },
  });

  // 1. Register a passkey on the account page.
  await tab.goto(`${ISSUER}/account`);
  await tab.getByLabel('Email').fill(EMAIL);
  await tab.getByLabel('Password').fill(PASSWORD);
  await tab.getByRole('button', { name: 'Sign in', exact: true }).click();
  await tab.getByRole('heading', { name: 'Passkeys' }).waitFor({ timeout: 15000 });
  await tab.getByLabel('Name of the new passkey').fill('Laptop');
  await tab.getByRole('button', { name: 'Add a passkey' }).click();
  await tab.getByText('The passkey was added.').waitFor({ timeout: 15000 })
    .catch(async () => {
      await tab.waitForLoadState('load').catch(() => {});
      fail(`registration: ${tab.url()} ${(await tab.textContent('main').catch(() => '')) ?? ''} ${errors.join(' | ')}`);
    });
  const listed = await tab.locator('ul.sessions li').first().textContent();
  const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
  if (credentials.length !== 1 || !credentials[0].isResidentCredential) fail(`credentials: ${JSON.stringify(credentials)}`);

  // 2. A new browser session signs in with the passkey at the authorization endpoint.
  await context.clearCookies();
  const verifier = b64u(crypto.randomBytes(32));
  const challenge = b64u(crypto.createHash('sha256').update(verifier).digest());
  const authorize = new URL(`${ISSUER}/authorize`);
  for (const [k, v] of Object.entries({
    response_type: 'code', client_id: CLIENT_ID, redirect_uri: REDIRECT_URI, scope: 'openid',
    state: 'pk-state', nonce: 'pk-nonce', code_challenge: challenge, code_challenge_method: 'S256',
  })) authorize.searchParams.set(k, v);
  await tab.goto(authorize.href);
  await tab.getByRole('button', { name: 'Sign in with a passkey' }).click();
  await tab.waitForURL((u) => u.href.startsWith(REDIRECT_URI), { timeout: 15000 })
    .catch(async (err) => {
      errors.push(String(err));
      await tab.waitForTimeout(2000);
      const html = await tab.content().catch((e) => String(e));
      fail(`passkey sign-in: ${tab.url()} ${navigations.join(' -> ')} ${errors.join(' | ')}`);
    });
  const code = new URL(callback).searchParams.get('code');

  // 3. The first-party JSON API, from a page of the same origin.
  await tab.goto(`${ISSUER}/.well-known/openid-configuration`);
  const apiSignIn = () => tab.evaluate(async (issuer) => {
    const dec = (s) => Uint8Array.from(atob(s.replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0));
    const enc = (b) => btoa(String.fromCharCode(...new Uint8Array(b))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
    const post = (path, body) => fetch(issuer + path, {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body ?? {}),
    });
    const options = (await (await post('/api/v1/auth/passkey/options')).json()).data;
    const o = options.publicKey;
    o.challenge = dec(o.challenge);
    const a = await navigator.credentials.get({ publicKey: o });
    const credential = {
      id: a.id, rawId: enc(a.rawId), type: a.type,
      response: {
        authenticatorData: enc(a.response.authenticatorData), clientDataJSON: enc(a.response.clientDataJSON),
        signature: enc(a.response.signature), userHandle: a.response.userHandle ? enc(a.response.userHandle) : null,
      },
      clientExtensionResults: a.getClientExtensionResults(),
    };
    const r = await post('/api/v1/auth/passkey/verify', { ceremony: options.ceremony, credential });
    return { status: r.status, body: await r.json() };
  }, ISSUER);
  const api = await apiSignIn();
  if (api.status !== 200) fail(`API sign-in: ${JSON.stringify(api)}`);

  // 4. A clone: the same key with a counter that went back.
  const [cred] = (await cdp.send('WebAuthn.getCredentials', { authenticatorId })).credentials;
  await cdp.send('WebAuthn.removeCredential', { authenticatorId, credentialId: cred.credentialId });
  await cdp.send('WebAuthn.addCredential', { authenticatorId, credential: { ...cred, signCount: 0 } });
  const cloned = await apiSignIn();

  console.log('OK ' + JSON.stringify({
    listed, code, verifier, sign_count: cred.signCount,
    api_token: api.body.data.access_token, cloned_status: cloned.status, cloned_body: cloned.body,
    errors,
  }));
} catch (e) {
  fail(String(e));
} finally {
  clearTimeout(timer);
  await browser.close();
  servers.forEach((s) => s.close());
}
