// Passkeys in a real browser: Debian's Chromium (/usr/bin/chromium) driven by playwright-core,
// with Chrome's virtual authenticator (DevTools Protocol WebAuthn.addVirtualAuthenticator:
// CTAP2, internal, resident keys, user verification). Run by tests/api/passkeys.rs against
// the real Portcullis server, whose public URL is http://localhost:PORT (a WebAuthn RP id
// must be a host name, not an IP address).
//
// Run:   ISSUER=… CLIENT_ID=… MFA_CLIENT_ID=… REDIRECT_URI=… EMAIL=… EMAIL2=… PASSWORD=…
//        node tests/peers/spa/passkey.mjs
//
// What it does, as a person would (CLIENT_ID asks for no second factor, MFA_CLIENT_ID
// requires one; every code is reported with the PKCE verifier they share):
//   1. opens the account page, signs in with Email and Password, types a name into "Name of
//      the new passkey" and presses "Add a passkey" (the authenticator creates a discoverable
//      credential);
//   2. forgets every cookie and starts an authorization request of CLIENT_ID: the sign-in
//      page's conditional request (passkey autofill) is answered by the authenticator, which
//      picks the passkey the way a person picks it from the e-mail field's suggestions; no
//      click (code "autofill");
//   3. with the authenticator not answering, opens the sign-in page again and presses "Sign in
//      with a passkey": the autofill request must give way to the browser's prompt without an
//      error (reports the status line and how many ceremonies the page started);
//   4. in a browser without conditional mediation (a second context whose
//      PublicKeyCredential lacks isConditionalMediationAvailable, holding a copy of the
//      credential), presses "Sign in with a passkey" (code "button");
//   5. signs in through the JSON API from a page (POST /api/v1/auth/passkey/options,
//      navigator.credentials.get, POST /api/v1/auth/passkey/verify); reports the token;
//   6. replaces the credential by a copy whose signature counter went back (a clone) and signs
//      in through the API again; reports the refusal;
//   7. EMAIL2 (no second factor yet) signs in with the password at MFA_CLIENT_ID, is sent to
//      the enrolment page, and adds a passkey there instead of TOTP (code "enrol");
//   8. forgets every cookie; EMAIL2 signs in with the password again and presses "Use a
//      passkey" on the second-factor page (code "mfa").
// Prints one line `OK {json}` or `FAIL reason`, exits 0 or 1.

import crypto from 'node:crypto';
import http from 'node:http';
import { chromium } from 'playwright-core';

const { ISSUER, CLIENT_ID, MFA_CLIENT_ID, REDIRECT_URI, EMAIL, EMAIL2, PASSWORD } = process.env;

function fail(msg) {
  console.log(`FAIL ${msg}`);
  process.exit(1);
}

const timer = setTimeout(() => fail('timed out after 120 s'), 120000);
const b64u = (b) => Buffer.from(b).toString('base64url');
const servers = [];
const errors = [];
const verifier = b64u(crypto.randomBytes(32));
const challenge = b64u(crypto.createHash('sha256').update(verifier).digest());

// The relying party's redirect URI, served here (a route cannot catch the target of a
// redirect): it keeps the URL it was last called with.
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

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});

// A tab with a virtual authenticator; `init` runs in every page before its scripts.
async function openTab(init) {
  const context = await browser.newContext();
  if (init) await context.addInitScript(init);
  const tab = await context.newPage();
  // Script errors (a failed fetch is logged as "Failed to load resource": the favicon, and
  // the clone's refusal, are expected).
  tab.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) errors.push(m.text());
  });
  tab.on('pageerror', (e) => errors.push(String(e)));
  const cdp = await context.newCDPSession(tab);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2', transport: 'internal', hasResidentKey: true,
      hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true,
    },
  });
  return { context, tab, cdp, authenticatorId };
}

function authorizeUrl(clientId) {
  const authorize = new URL(`${ISSUER}/authorize`);
  for (const [k, v] of Object.entries({
    response_type: 'code', client_id: clientId, redirect_uri: REDIRECT_URI, scope: 'openid',
    state: 'pk-state', nonce: 'pk-nonce', code_challenge: challenge, code_challenge_method: 'S256',
  })) authorize.searchParams.set(k, v);
  return authorize.href;
}

// Waits for the redirect to the relying party; the code it carries.
async function codeAfter(tab, what) {
  await tab.waitForURL((u) => u.href.startsWith(REDIRECT_URI), { timeout: 15000 })
    .catch(async () => {
      await tab.waitForLoadState('load').catch(() => {});
      const text = await tab.textContent('body').catch(() => '');
      fail(`${what}: ${tab.url()} ${text} ${errors.join(' | ')}`);
    });
  const code = new URL(callback).searchParams.get('code');
  callback = null;
  return code;
}

async function signInWithPassword(tab, email) {
  await tab.getByLabel('Email').fill(email);
  await tab.getByLabel('Password').fill(PASSWORD);
  await tab.getByRole('button', { name: 'Sign in', exact: true }).click();
}

try {
  const a = await openTab();
  const codes = {};

  // 1. Register a passkey on the account page.
  await a.tab.goto(`${ISSUER}/account`);
  await signInWithPassword(a.tab, EMAIL);
  await a.tab.getByRole('heading', { name: 'Passkeys' }).waitFor({ timeout: 15000 });
  await a.tab.getByLabel('Name of the new passkey').fill('Laptop');
  await a.tab.getByRole('button', { name: 'Add a passkey' }).click();
  await a.tab.getByText('The passkey was added.').waitFor({ timeout: 15000 })
    .catch(async () => {
      await a.tab.waitForLoadState('load').catch(() => {});
      fail(`registration: ${a.tab.url()} ${(await a.tab.textContent('main').catch(() => '')) ?? ''} ${errors.join(' | ')}`);
    });
  const listed = await a.tab.locator('ul.sessions li').first().textContent();
  const { credentials } = await a.cdp.send('WebAuthn.getCredentials', { authenticatorId: a.authenticatorId });
  if (credentials.length !== 1 || !credentials[0].isResidentCredential) fail(`credentials: ${JSON.stringify(credentials)}`);

  // 2. Autofill: the conditional request of the sign-in page, answered without a click.
  await a.context.clearCookies();
  await a.tab.goto(authorizeUrl(CLIENT_ID));
  codes.autofill = await codeAfter(a.tab, 'passkey autofill');

  // 3. The button while the autofill request waits (the authenticator does not answer now).
  await a.context.clearCookies();
  await a.cdp.send('WebAuthn.setAutomaticPresenceSimulation', { authenticatorId: a.authenticatorId, enabled: false });
  let ceremonies = 0;
  a.tab.on('request', (r) => { if (r.url().endsWith('/login/passkey/options')) ceremonies += 1; });
  const optionsAnswered = a.tab.waitForResponse((r) => r.url().endsWith('/login/passkey/options'));
  await a.tab.goto(authorizeUrl(CLIENT_ID));
  await optionsAnswered;
  await a.tab.waitForTimeout(300);
  await a.tab.getByRole('button', { name: 'Sign in with a passkey' }).click();
  await a.tab.waitForTimeout(1500);
  const abort = {
    ceremonies,
    status: await a.tab.locator('[data-passkey-status]').textContent(),
    url: a.tab.url(),
  };
  // The credential as it is now (its counter moved with the autofill sign-in).
  const [current] = (await a.cdp.send('WebAuthn.getCredentials', { authenticatorId: a.authenticatorId })).credentials;
  await a.context.close();

  // 4. A browser without conditional mediation: the button.
  const b = await openTab(() => { if (window.PublicKeyCredential) PublicKeyCredential.isConditionalMediationAvailable = undefined; });
  await b.cdp.send('WebAuthn.addCredential', { authenticatorId: b.authenticatorId, credential: current });
  await b.tab.goto(authorizeUrl(CLIENT_ID));
  await b.tab.getByRole('button', { name: 'Sign in with a passkey' }).click();
  codes.button = await codeAfter(b.tab, 'passkey button');

  // 5. The first-party JSON API, from a page of the same origin.
  await b.tab.goto(`${ISSUER}/.well-known/openid-configuration`);
  const apiSignIn = () => b.tab.evaluate(async (issuer) => {
    const dec = (s) => Uint8Array.from(atob(s.replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0));
    const enc = (x) => btoa(String.fromCharCode(...new Uint8Array(x))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
    const post = (path, body) => fetch(issuer + path, {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body ?? {}),
    });
    const options = (await (await post('/api/v1/auth/passkey/options')).json()).data;
    const o = options.publicKey;
    o.challenge = dec(o.challenge);
    const got = await navigator.credentials.get({ publicKey: o });
    const credential = {
      id: got.id, rawId: enc(got.rawId), type: got.type,
      response: {
        authenticatorData: enc(got.response.authenticatorData), clientDataJSON: enc(got.response.clientDataJSON),
        signature: enc(got.response.signature), userHandle: got.response.userHandle ? enc(got.response.userHandle) : null,
      },
      clientExtensionResults: got.getClientExtensionResults(),
    };
    const r = await post('/api/v1/auth/passkey/verify', { ceremony: options.ceremony, credential });
    return { status: r.status, body: await r.json() };
  }, ISSUER);
  const api = await apiSignIn();
  if (api.status !== 200) fail(`API sign-in: ${JSON.stringify(api)}`);

  // 6. A clone: the same key with a counter that went back.
  const [cred] = (await b.cdp.send('WebAuthn.getCredentials', { authenticatorId: b.authenticatorId })).credentials;
  await b.cdp.send('WebAuthn.removeCredential', { authenticatorId: b.authenticatorId, credentialId: cred.credentialId });
  await b.cdp.send('WebAuthn.addCredential', { authenticatorId: b.authenticatorId, credential: { ...cred, signCount: 0 } });
  const cloned = await apiSignIn();

  // 7. A passkey as the second factor, enrolled when the client requires one.
  await b.context.clearCookies();
  await b.tab.goto(authorizeUrl(MFA_CLIENT_ID));
  await signInWithPassword(b.tab, EMAIL2);
  await b.tab.getByRole('heading', { name: 'Set up two-step verification' }).waitFor({ timeout: 15000 })
    .catch(async () => fail(`enrolment page: ${b.tab.url()} ${await b.tab.textContent('body').catch(() => '')}`));
  await b.tab.getByLabel('Name of the new passkey').fill('Phone');
  await b.tab.getByRole('button', { name: 'Add a passkey' }).click();
  codes.enrol = await codeAfter(b.tab, 'passkey enrolment');

  // 8. …and given after the password at the next sign-in.
  await b.context.clearCookies();
  await b.tab.goto(authorizeUrl(MFA_CLIENT_ID));
  await signInWithPassword(b.tab, EMAIL2);
  await b.tab.getByRole('heading', { name: 'Two-step verification', exact: true }).waitFor({ timeout: 15000 })
    .catch(async () => fail(`second-factor page: ${b.tab.url()} ${await b.tab.textContent('body').catch(() => '')}`));
  const codeForm = await b.tab.getByLabel('Authentication code').count();
  await b.tab.getByRole('button', { name: 'Use a passkey' }).click();
  codes.mfa = await codeAfter(b.tab, 'passkey second factor');

  console.log('OK ' + JSON.stringify({
    listed, codes, verifier, sign_count: cred.signCount, abort, code_form: codeForm,
    api_token: api.body.data.access_token, cloned_status: cloned.status, cloned_body: cloned.body,
    errors,
  }));
} catch (e) {
  fail(`${e} ${errors.join(' | ')}`);
} finally {
  clearTimeout(timer);
  await browser.close();
  servers.forEach((s) => s.close());
}
