#!/usr/bin/env python3
"""SimpleSAMLphp 1.19 (Debian's `simplesamlphp` package) as a SAML 2.0 identity provider for the
integration tests: an independent IdP that enforces what Portcullis's SP metadata declares.

Start:    SSP_PEER_DIR=<empty dir> python3 tests/peers/simplesamlphp/idp.py
Stdout:   one line `LISTENING http://127.0.0.1:<port>` once the IdP answers; PHP's log goes to stderr.
Install:  apt-get install simplesamlphp php-cli php-xml php-mbstring   (`.ci/dev deps` does it)

It writes a SimpleSAMLphp configuration into SSP_PEER_DIR (config/, metadata/, cert/) and runs
`php -S` on a free loopback port with the package's www/ as document root. The server dies with
this process.

IdP entity id: http://127.0.0.1:<port>/saml2/idp/metadata.php (its metadata document, too).
Users (exampleauth:UserPass, password "password"): alice (alice@example.com, groups admins) and
bob (bob@example.com). NameID formats offered: persistent (saml:PersistentNameID on uid) and
emailAddress (saml:AttributeNameID on email).

The SP is read, on every request, from the metadata URL in SSP_PEER_DIR/sp-url (one line), through
SimpleSAMLphp's own SAML metadata parser (the "xml" metadata source: what its metadata converter
does). So `AuthnRequestsSigned="true"` there makes the IdP refuse unsigned AuthnRequests, and an
encryption KeyDescriptor is what it encrypts to.

SSP_PEER_DIR/options.json, also read on every request (all optional):
  {"encrypt": false,     encrypt assertions to the SP's encryption certificate (assertion.encryption)
   "key": "A",           the key that signs: "A" or "B" (both are published when "publish" says so)
   "publish": ["A"],     the signing certificates in the IdP metadata (A and B for a rollover)
   "sign_response": true, "sign_assertion": true,
   "sign_logout": true}  sign LogoutRequests/LogoutResponses (the SP's are always validated)

Single Logout: the IdP's HTTP-Redirect SingleLogoutService is
/saml2/idp/SingleLogoutService.php; `?ReturnTo=<url on this host>` starts an IdP-initiated
logout of every SP of the browser's session.
"""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

SSP = "/usr/share/simplesamlphp"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keypair(certdir, label):
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
         "-subj", f"/CN=simplesamlphp-peer-{label}",
         "-keyout", os.path.join(certdir, f"{label}.key"),
         "-out", os.path.join(certdir, f"{label}.crt")],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


CONFIG = r"""<?php
$peer = %(dir)r;
$urls = @file($peer . '/sp-url', FILE_IGNORE_NEW_LINES | FILE_SKIP_EMPTY_LINES) ?: [];
$sources = [['type' => 'flatfile']];
foreach ($urls as $u) { $sources[] = ['type' => 'xml', 'url' => trim($u)]; }
$config = [
    'baseurlpath' => %(base)r . '/',
    'certdir' => $peer . '/cert/',
    'loggingdir' => $peer . '/log/',
    'datadir' => $peer . '/data/',
    'tempdir' => $peer . '/tmp/',
    'metadatadir' => $peer . '/metadata/',
    'technicalcontact_name' => 'Portcullis tests',
    'technicalcontact_email' => 'tests@example.org',
    'timezone' => 'UTC',
    'secretsalt' => %(salt)r,
    'auth.adminpassword' => %(salt)r,
    'admin.protectindexpage' => false,
    'admin.protectmetadata' => false,
    'logging.level' => SimpleSAML\Logger::INFO,
    'logging.handler' => 'errorlog',
    'enable.saml20-idp' => true,
    'module.enable' => ['exampleauth' => true, 'core' => true, 'saml' => true, 'admin' => true],
    'store.type' => 'phpsession',
    'session.cookie.secure' => false,
    'session.phpsession.cookiename' => 'SSPPEER',
    'metadata.sources' => $sources,
    'language.default' => 'en',
    'showerrors' => true,
    'errorreporting' => false,
];
"""

AUTHSOURCES = r"""<?php
$config = [
    'admin' => ['core:AdminPassword'],
    'example-userpass' => [
        'exampleauth:UserPass',
        'alice:password' => ['uid' => ['alice'], 'email' => ['alice@example.com'],
                             'displayName' => ['Alice Example'], 'groups' => ['admins']],
        'bob:password' => ['uid' => ['bob'], 'email' => ['bob@example.com'],
                           'displayName' => ['Bob Example'], 'groups' => ['staff']],
    ],
];
"""

IDP_HOSTED = r"""<?php
$peer = %(dir)r;
$o = json_decode(@file_get_contents($peer . '/options.json') ?: '{}', true) ?: [];
$key = $o['key'] ?? 'A';
$publish = $o['publish'] ?? [$key];
$other = null;
foreach ($publish as $p) { if ($p !== $key) { $other = $p; } }
$metadata['__DYNAMIC:1__'] = [
    'host' => '__DEFAULT__',
    'privatekey' => $key . '.key',
    'certificate' => $key . '.crt',
    'auth' => 'example-userpass',
    'signature.algorithm' => 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',
    'saml20.sign.response' => $o['sign_response'] ?? true,
    'saml20.sign.assertion' => $o['sign_assertion'] ?? true,
    'assertion.encryption' => $o['encrypt'] ?? false,
    // Single Logout: the IdP signs its LogoutRequests and LogoutResponses, and refuses the
    // SP's unless they are signed (SAML Profiles §4.4.4 over HTTP-Redirect).
    'sign.logout' => $o['sign_logout'] ?? true,
    'validate.logout' => true,
    'NameIDFormat' => [
        'urn:oasis:names:tc:SAML:2.0:nameid-format:persistent',
        'urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress',
    ],
    'attributes.NameFormat' => 'urn:oasis:names:tc:SAML:2.0:attrname-format:basic',
    'authproc' => [
        10 => ['class' => 'saml:AttributeNameID', 'attribute' => 'email',
               'Format' => 'urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress'],
        11 => ['class' => 'saml:PersistentNameID', 'attribute' => 'uid'],
    ],
];
if ($other !== null) {
    $metadata['__DYNAMIC:1__']['new_certificate'] = $other . '.crt';
}
"""


def main():
    peer = os.environ.get("SSP_PEER_DIR")
    if not peer or not os.path.isdir(peer):
        sys.exit("SSP_PEER_DIR must name an existing directory")
    if not os.path.isdir(os.path.join(SSP, "www")):
        sys.exit("SimpleSAMLphp is not installed (apt-get install simplesamlphp php-cli php-xml)")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    for d in ("config", "metadata", "cert", "log", "data", "tmp"):
        os.makedirs(os.path.join(peer, d), exist_ok=True)
    for label in ("A", "B"):
        keypair(os.path.join(peer, "cert"), label)
    values = {"dir": peer, "base": base, "salt": os.urandom(16).hex()}
    files = {
        "config/config.php": CONFIG % values,
        "config/authsources.php": AUTHSOURCES,
        "metadata/saml20-idp-hosted.php": IDP_HOSTED % values,
    }
    for name, text in files.items():
        with open(os.path.join(peer, name), "w") as f:
            f.write(text)

    env = dict(os.environ, SIMPLESAMLPHP_CONFIG_DIR=os.path.join(peer, "config"))

    def die_with_parent():
        import ctypes
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG

    php = subprocess.Popen(
        ["php", "-d", "display_errors=stderr", "-d", "log_errors=On",
         "-S", f"127.0.0.1:{port}", "-t", os.path.join(SSP, "www")],
        env=env, stdin=subprocess.DEVNULL, stdout=sys.stderr, stderr=sys.stderr,
        preexec_fn=die_with_parent)
    signal.signal(signal.SIGTERM, lambda *_: (php.kill(), sys.exit(0)))
    deadline = time.time() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{base}/saml2/idp/metadata.php", timeout=2) as r:
                if r.status == 200:
                    break
        except Exception:
            pass
        if php.poll() is not None or time.time() > deadline:
            sys.exit("php -S did not start")
        time.sleep(0.1)
    print(f"LISTENING {base}", flush=True)
    php.wait()


if __name__ == "__main__":
    main()
