// A single-page application built on oidc-client-ts (npm), served from a loopback origin and
// driven in Debian's Chromium (/usr/bin/chromium) by playwright-core — never a downloaded
// browser. Run by the integration suite against the real Portcullis server.
//
// Run:   ISSUER=… CLIENT_ID=… SPA_PORT=… EMAIL=… PASSWORD=… node tests/peers/spa/spa.mjs
// Install: npm ci in tests/peers/spa (`.ci/dev deps` does it), apt-get install chromium
//
// What it does, as a person would: opens the app, which calls signinRedirect() (code flow,
// PKCE S256, state, nonce — oidc-client-ts's own); fills "Email" and "Password" on the sign-in
// page and presses "Sign in"; the callback page completes signinRedirectCallback() (the token
// request is a cross-origin fetch, so CORS must allow the app's origin; the ID token is checked
// by oidc-client-ts); then signinSilent() renews in a hidden iframe with prompt=none (the public
// client has no refresh token). Prints one line `OK {json}` or `FAIL reason`, exits 0 or 1.

import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const { ISSUER, CLIENT_ID, SPA_PORT, EMAIL, PASSWORD } = process.env;
const origin = `http://127.0.0.1:${SPA_PORT}`;
const bundle = fs.readFileSync(path.join(here, 'node_modules/oidc-client-ts/dist/browser/oidc-client-ts.min.js'));

// One page for the app and its callbacks; settings come from the query of the first load.
const page = `<!doctype html><meta charset="utf-8"><title>SPA</title>
<script src="/oidc-client-ts.min.js"></script>
<pre id="out">loading</pre>
<script>
const settings = {
  authority: ${JSON.stringify(ISSUER)},
  client_id: ${JSON.stringify(CLIENT_ID)},
  redirect_uri: ${JSON.stringify(origin + '/callback')},
  silent_redirect_uri: ${JSON.stringify(origin + '/callback')},
  response_type: 'code',
  scope: 'openid profile email',
  automaticSilentRenew: false,
  loadUserInfo: true,
  userStore: new oidc.WebStorageStateStore({ store: window.sessionStorage }),
};
const mgr = new oidc.UserManager(settings);
const out = (v) => { document.getElementById('out').textContent = JSON.stringify(v); };
window.portcullis = { mgr, out };
if (location.pathname === '/callback') {
  if (window.parent !== window) {
    mgr.signinSilentCallback().catch((e) => console.error('silent callback', e));
  } else {
    mgr.signinRedirectCallback().then(
      (u) => out({ signedIn: true, sub: u.profile.sub, email: u.profile.email, access_token: u.access_token }),
      (e) => out({ error: String(e) }));
  }
} else {
  mgr.signinRedirect().catch((e) => out({ error: String(e) }));
}
</script>`;

const server = http.createServer((req, res) => {
  const url = new URL(req.url, origin);
  if (url.pathname === '/oidc-client-ts.min.js') {
    res.writeHead(200, { 'content-type': 'text/javascript' });
    res.end(bundle);
  } else if (url.pathname === '/' || url.pathname === '/callback') {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(page);
  } else {
    res.writeHead(404);
    res.end();
  }
});

function fail(msg) {
  console.log(`FAIL ${msg}`);
  process.exit(1);
}

const timer = setTimeout(() => fail('timed out after 60 s'), 60000);

server.listen(Number(SPA_PORT), '127.0.0.1', async () => {
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const tab = await browser.newPage();
    const errors = [];
    tab.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
    await tab.goto(`${origin}/`);
    // Our sign-in page, in the real browser.
    await tab.waitForURL((u) => u.href.startsWith(ISSUER), { timeout: 15000 });
    await tab.getByLabel('Email').fill(EMAIL);
    await tab.getByLabel('Password').fill(PASSWORD);
    await tab.getByRole('button', { name: 'Sign in', exact: true }).click();
    await tab.waitForURL((u) => u.href.startsWith(`${origin}/callback`), { timeout: 15000 });
    await tab.waitForFunction(() => document.getElementById('out').textContent.startsWith('{'), null, { timeout: 15000 });
    const first = JSON.parse(await tab.textContent('#out'));
    if (!first.signedIn) fail(`sign-in: ${JSON.stringify(first)} ${errors.join(' | ')}`);
    // Silent renew in a hidden iframe (prompt=none), on the session the sign-in made.
    const renewed = await tab.evaluate(async () => {
      try {
        const u = await window.portcullis.mgr.signinSilent();
        return { sub: u.profile.sub, access_token: u.access_token, email: u.profile.email };
      } catch (e) {
        return { error: String(e) };
      }
    });
    if (renewed.error) fail(`silent renew: ${renewed.error} ${errors.join(' | ')}`);
    if (renewed.access_token === first.access_token) fail('silent renew returned the same token');
    console.log('OK ' + JSON.stringify({ sub: first.sub, email: first.email, renewed_sub: renewed.sub, renewed: true }));
  } catch (e) {
    fail(String(e));
  } finally {
    clearTimeout(timer);
    await browser.close();
    server.close();
  }
});
