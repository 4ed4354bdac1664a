// The admin console in a real browser: Debian's Chromium (/usr/bin/chromium) driven by
// playwright-core, with axe-core (npm) checking every page. Run by tests/api/console_browser.rs
// against the real Portcullis server.
//
// Run:   ISSUER=… EMAIL=… PASSWORD=… TOTP_SECRET=… METADATA_URL=… ROOT=… PLATFORM_EMAIL=…
//        PLATFORM_PASSWORD=… SCREENSHOTS=dir  node tests/peers/spa/console.mjs
//
// What it does, as a tenant administrator would, in English:
//   1. opens {ISSUER}/admin, is sent to the sign-in page, types Email and Password, then the
//      authenticator code of TOTP_SECRET on the second-factor page, and lands on the dashboard;
//   2. creates a client (Name, Redirect URIs), a role (Name, one catalogue permission), a
//      user (E-mail) and a SAML 2.0 connection (Name, Metadata URL of METADATA_URL, a domain)
//      through the forms, pressing their buttons and keyboard-submitting one of them, and
//      presses "Test connection";
//   3. visits every console page, runs axe-core on each (WCAG 2.x A/AA rules and best
//      practices) and takes a screenshot of each into SCREENSHOTS;
//   4. signs in to the platform console at {ROOT}/admin and does the same for its pages.
// Prints one line `OK {json}` (pages visited, violations by page with their impact, created
// ids, script errors) or `FAIL reason`, exits 0 or 1.

import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';

const env = process.env;
const { ISSUER, EMAIL, PASSWORD, TOTP_SECRET, METADATA_URL, ROOT, PLATFORM_EMAIL, PLATFORM_PASSWORD, SCREENSHOTS } = env;

function fail(msg) {
  console.log(`FAIL ${msg}`);
  process.exit(1);
}
const timer = setTimeout(() => fail('timed out after 240 s'), 240000);

const axeSource = fs.readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

// RFC 6238 TOTP (SHA-1, 6 digits, 30 s) of a base32 secret.
function totp(secret) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const ch of secret.replace(/=+$/, '').toUpperCase()) {
    bits += alphabet.indexOf(ch).toString(2).padStart(5, '0');
  }
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 1000 / 30)));
  const mac = crypto.createHmac('sha1', key).update(counter).digest();
  const off = mac[mac.length - 1] & 0xf;
  const n = (mac.readUInt32BE(off) & 0x7fffffff) % 1000000;
  return String(n).padStart(6, '0');
}

fs.mkdirSync(SCREENSHOTS, { recursive: true });
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const errors = [];
const pages = [];
const violations = {};

async function newTab() {
  const context = await browser.newContext({ locale: 'en-US', viewport: { width: 1200, height: 800 } });
  const tab = await context.newPage();
  // The status of the document last shown (after redirects).
  tab.status = 0;
  tab.on('response', (r) => {
    if (r.request().isNavigationRequest() && r.frame() === tab.mainFrame()) tab.status = r.status();
  });
  tab.on('pageerror', (e) => errors.push(`${tab.url()}: ${e.message}`));
  tab.on('console', (m) => {
    if (m.type() === 'error' && !/favicon/.test(m.location()?.url ?? '')) {
      errors.push(`${tab.url()}: ${m.text()}`);
    }
  });
  return tab;
}

// axe on the page as it is, then its screenshot as NAME.png.
async function check(tab, name) {
  // Evaluated through the DevTools protocol: the pages' CSP (rightly) refuses inline scripts.
  await tab.evaluate(axeSource);
  const result = await tab.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, {
      runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice'] },
      resultTypes: ['violations'],
    });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target.join(' ')).slice(0, 5) }));
  });
  if (tab.status >= 400) fail(`${name}: ${tab.url()} answered ${tab.status}`);
  pages.push({ name, url: tab.url(), status: tab.status, title: await tab.title() });
  if (result.length) violations[name] = result;
  await tab.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

async function visit(tab, url, name) {
  const r = await tab.goto(url);
  if (!r || r.status() >= 400) fail(`${name}: ${url} answered ${r && r.status()}`);
  await check(tab, name);
}

// Presses a button and waits for the next document (a new `load` event: the current page's
// has fired already).
async function press(tab, name) {
  await Promise.all([tab.waitForEvent('load'), tab.getByRole('button', { name, exact: true }).click()]);
}

const created = {};
try {
  const tab = await newTab();
  const admin = (p) => `${ISSUER}/admin${p}`;

  // 1. Sign-in with the second factor.
  await tab.goto(admin(''));
  if (!tab.url().includes('/login?request=')) fail(`not sent to sign in: ${tab.url()}`);
  await check(tab, 'sign-in');
  await tab.getByLabel('Email', { exact: true }).fill(EMAIL);
  await tab.getByLabel('Password', { exact: true }).fill(PASSWORD);
  await Promise.all([tab.waitForURL(/\/mfa\?request=/), tab.getByRole('button', { name: 'Sign in', exact: true }).click()]);
  await tab.getByLabel('Authentication code').fill(totp(TOTP_SECRET));
  await Promise.all([tab.waitForURL(admin('')), tab.getByRole('button', { name: 'Verify' }).click()]);
  await check(tab, 'dashboard');

  // 2. A client.
  await visit(tab, admin('/clients/new'), 'client-new');
  await tab.getByLabel('Name', { exact: true }).fill('Browser app');
  await tab.getByLabel('Redirect URIs (one per line)', { exact: true }).fill('https://app.example.com/callback');
  await press(tab, 'Create');
  const clientId = await tab.locator('main code').first().textContent();
  if (!(await tab.getByText('shown only this once', { exact: false }).count())) {
    fail(`no secret page after creating a client: ${await tab.content()}`);
  }
  created.client = clientId;
  await check(tab, 'client-secret');
  await visit(tab, admin('/clients'), 'clients');
  await visit(tab, admin(`/clients/${clientId}`), 'client-edit');

  // A role with one catalogue permission.
  await visit(tab, admin('/roles/new'), 'role-new');
  await tab.getByLabel('Name', { exact: true }).fill('support');
  await tab.getByLabel('users:read', { exact: true }).check();
  await press(tab, 'Create');
  created.role_page = tab.url();
  await check(tab, 'role-created');
  await visit(tab, admin('/roles'), 'roles');

  // A user, submitted from the keyboard (Enter in the e-mail field).
  await visit(tab, admin('/users/new'), 'user-new');
  await tab.getByLabel('E-mail', { exact: true }).fill('new.person@acme.test');
  await Promise.all([tab.waitForEvent('load'), tab.getByLabel('E-mail', { exact: true }).press('Enter')]);
  created.user_page = tab.url();
  await check(tab, 'user');
  await visit(tab, admin('/users'), 'users');

  // A SAML 2.0 connection, then "Test connection".
  await visit(tab, admin('/sso'), 'sso');
  await Promise.all([tab.waitForEvent('load'), tab.getByRole('link', { name: 'New SAML 2.0 connection' }).click()]);
  await check(tab, 'sso-new-saml');
  await tab.getByLabel('Name', { exact: true }).fill('Acme IdP');
  await tab.getByLabel('Metadata URL', { exact: true }).fill(METADATA_URL);
  await tab.getByLabel('E-mail domains (one per line)', { exact: true }).fill('example.com');
  await press(tab, 'Create');
  if (!tab.url().includes('?created=1')) fail(`the SAML connection was not created: ${await tab.content()}`);
  created.connection_page = tab.url().replace('?created=1', '');
  await press(tab, 'Test connection');
  created.test_passed = (await tab.getByText('Every check passed.').count()) === 1;
  await check(tab, 'sso-connection');
  await visit(tab, admin('/sso/new?type=oidc'), 'sso-new-oidc');
  await visit(tab, admin('/sso/new?type=google'), 'sso-new-google');

  // Every other page.
  await visit(tab, admin('/api-keys'), 'api-keys');
  await visit(tab, admin('/keys'), 'keys');
  await visit(tab, admin('/keys/rotate'), 'keys-rotate');
  await visit(tab, admin('/settings'), 'settings');
  await visit(tab, admin('/audit'), 'audit');
  await visit(tab, `${created.connection_page}/delete`, 'sso-delete-confirm');

  // 4. The platform console.
  const root = await newTab();
  await root.goto(`${ROOT}/admin`);
  if (!root.url().endsWith('/admin/login')) fail(`platform console not sent to sign in: ${root.url()}`);
  await check(root, 'platform-sign-in');
  await root.getByLabel('E-mail', { exact: true }).fill(PLATFORM_EMAIL);
  await root.getByLabel('Password', { exact: true }).fill(PLATFORM_PASSWORD);
  await Promise.all([root.waitForURL(`${ROOT}/admin`), root.getByRole('button', { name: 'Sign in' }).click()]);
  await check(root, 'platform-tenants');
  await visit(root, `${ROOT}/admin/bans`, 'platform-bans');
} catch (e) {
  fail(e.stack.split('\n').slice(0, 3).join(' | '));
}
await browser.close();
clearTimeout(timer);
console.log(`OK ${JSON.stringify({ pages, violations, created, errors })}`);
process.exit(0);
