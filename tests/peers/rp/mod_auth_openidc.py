#!/usr/bin/env python3
"""Apache httpd with mod_auth_openidc (Debian's `libapache2-mod-auth-openidc`) as a relying party
of the real Portcullis server, for the integration tests.

Start:  RP_DIR=<empty dir> RP_PORT=<free port> ISSUER=… CLIENT_ID=… CLIENT_SECRET=…
        python3 tests/peers/rp/mod_auth_openidc.py
Stdout: one line `LISTENING http://127.0.0.1:<port>` once Apache answers; its error log is
        RP_DIR/error.log. Apache (with its workers) stops when this process dies.
Install: apt-get install apache2 libapache2-mod-auth-openidc   (`.ci/dev deps` does it)

Apache serves RP_DIR/www; /protected/ needs an OpenID Connect sign-in (code flow, PKCE S256,
client_secret_basic, scope `openid email profile offline_access`). Its redirect URI is
http://127.0.0.1:<port>/protected/redirect_uri; the info hook
(`/protected/redirect_uri?info=json`) shows the session (ID token claims, userinfo, tokens);
`/protected/redirect_uri?logout=<url>` is RP-initiated logout. mod_auth_openidc fetches the
discovery document and JWKS itself and validates the ID token its own way.
"""

import os
import signal
import subprocess
import sys
import time
import urllib.request

MODULES = "/usr/lib/apache2/modules"

CONF = """
ServerRoot "{dir}"
ServerName 127.0.0.1
Listen 127.0.0.1:{port}
PidFile "{dir}/httpd.pid"
Mutex file:{dir}
DefaultRuntimeDir "{dir}"
User www-data
Group www-data
LoadModule mpm_event_module {modules}/mod_mpm_event.so
LoadModule authn_core_module {modules}/mod_authn_core.so
LoadModule authz_core_module {modules}/mod_authz_core.so
LoadModule authz_user_module {modules}/mod_authz_user.so
LoadModule mime_module {modules}/mod_mime.so
LoadModule dir_module {modules}/mod_dir.so
LoadModule auth_openidc_module {modules}/mod_auth_openidc.so
TypesConfig /etc/mime.types
ErrorLog "{dir}/error.log"
LogLevel warn auth_openidc:info
DocumentRoot "{dir}/www"
DirectoryIndex index.html
<Directory "{dir}/www">
  Require all granted
</Directory>

OIDCProviderMetadataURL {issuer}/.well-known/openid-configuration
OIDCClientID {client_id}
OIDCClientSecret {client_secret}
OIDCRedirectURI http://127.0.0.1:{port}/protected/redirect_uri
OIDCCryptoPassphrase {passphrase}
OIDCScope "openid email profile offline_access"
OIDCPKCEMethod S256
OIDCProviderTokenEndpointAuth client_secret_basic
OIDCRemoteUserClaim sub
OIDCInfoHook iat access_token access_token_expires id_token userinfo refresh_token session
OIDCSessionType server-cache
OIDCCacheType shm
OIDCHTTPTimeoutLong 10
OIDCHTTPTimeoutShort 5
OIDCDefaultLoggedOutURL http://127.0.0.1:{port}/loggedout.html
<Location /protected/>
  AuthType openid-connect
  Require valid-user
</Location>
"""


def main():
    d = os.environ["RP_DIR"]
    port = int(os.environ["RP_PORT"])
    os.makedirs(os.path.join(d, "www", "protected"), exist_ok=True)
    with open(os.path.join(d, "www", "protected", "index.html"), "w") as f:
        f.write("<h1>protected content</h1>\n")
    with open(os.path.join(d, "www", "loggedout.html"), "w") as f:
        f.write("<h1>signed out</h1>\n")
    for root, dirs, files in os.walk(d):
        os.chmod(root, 0o755)
        for name in files:
            os.chmod(os.path.join(root, name), 0o644)
    conf = CONF.format(dir=d, port=port, modules=MODULES, issuer=os.environ["ISSUER"],
                       client_id=os.environ["CLIENT_ID"], client_secret=os.environ["CLIENT_SECRET"],
                       passphrase=os.urandom(16).hex())
    path = os.path.join(d, "httpd.conf")
    with open(path, "w") as f:
        f.write(conf)

    def die_with_parent():
        # SIGTERM, not SIGKILL: Apache's main process then stops its workers too, which would
        # otherwise outlive the test holding its output open.
        import ctypes
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG

    log = open(os.path.join(d, "error.log"), "ab")
    httpd = subprocess.Popen(["/usr/sbin/apache2", "-f", path, "-DFOREGROUND"],
                             stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                             preexec_fn=die_with_parent)

    def stop(*_):
        httpd.terminate()
        try:
            httpd.wait(timeout=5)
        except subprocess.TimeoutExpired:
            httpd.kill()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{base}/loggedout.html", timeout=2) as r:
                if r.status == 200:
                    break
        except Exception:
            pass
        if httpd.poll() is not None or time.time() > deadline:
            with open(os.path.join(d, "error.log")) as f:
                sys.stderr.write(f.read())
            sys.exit("apache2 did not start")
        time.sleep(0.1)
    print(f"LISTENING {base}", flush=True)
    httpd.wait()


if __name__ == "__main__":
    main()
