#!/usr/bin/env python3
"""Self-check for the SAML IdP test peer (idp.py).

Run:  python3 tests/peers/saml/selfcheck.py        (exit 0 and "N passed, 0 failed" when all is well)

Starts idp.py, plays a pysaml2 SP (Saml2Client) whose entity id is the URL of its metadata, served by
a tiny local http.server, and checks:
  * /metadata (two signing KeyDescriptors), /metadata?certs=A (one), /cert;
  * /sso refuses unsigned, wrongly signed and wrong-ACS AuthnRequests, and accepts both redirect
    signature forms (pysaml2's re-encoded one and the raw query octets one);
  * every mode's Response: structure, times, audience, destination, InResponseTo, attributes,
    which elements are signed, `xmlsec1 --verify` against cert A / B (and failing for rogue);
  * pysaml2's own SP accepts the good modes and rejects the bad ones;
  * /idp-initiated gives an unsolicited Response without RelayState.
"""

import base64
import datetime
import html
import os
import re
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
import warnings
import xml.etree.ElementTree as ET
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

warnings.filterwarnings("ignore", message=".*has been moved to cryptography.hazmat.decrepit.*")

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import padding, rsa  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT  # noqa: E402
from saml2.client import Saml2Client  # noqa: E402
from saml2.config import SPConfig  # noqa: E402
from saml2.metadata import entity_descriptor  # noqa: E402
from saml2.saml import NAMEID_FORMAT_EMAILADDRESS  # noqa: E402
from saml2.sigver import get_xmlsec_binary  # noqa: E402
from saml2.xmldsig import SIG_RSA_SHA256  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
NS = {
    "samlp": "urn:oasis:names:tc:SAML:2.0:protocol",
    "saml": "urn:oasis:names:tc:SAML:2.0:assertion",
    "ds": "http://www.w3.org/2000/09/xmldsig#",
    "md": "urn:oasis:names:tc:SAML:2.0:metadata",
}
ASSERTION_TAG = "{%s}Assertion" % NS["saml"]
SIG_TAG = "{%s}Signature" % NS["ds"]
XMLSEC = get_xmlsec_binary()

PASSED = 0
FAILED = 0


def check(cond, what):
    global PASSED, FAILED
    if cond:
        PASSED += 1
    else:
        FAILED += 1
        print(f"FAIL: {what}", flush=True)


def http_get(url):
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, dict(r.headers), r.read().decode("utf-8")
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode("utf-8")


def parse_time(s):
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)


def seconds_from_now(s):
    return (parse_time(s) - datetime.datetime.now(datetime.timezone.utc)).total_seconds()


def make_keypair(dirpath):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "selfcheck SP")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30)).sign(key, hashes.SHA256()))
    kp, cp = os.path.join(dirpath, "sp_key.pem"), os.path.join(dirpath, "sp_cert.pem")
    with open(kp, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                  serialization.NoEncryption()))
    with open(cp, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    return key, kp, cp


def xmlsec_verify(xml, cert_path, node_xpath=None):
    """True iff xmlsec1 verifies the (first / selected) signature of xml with cert_path's key only."""
    with tempfile.NamedTemporaryFile("w", suffix=".xml", delete=False) as f:
        f.write(xml)
        path = f.name
    cmd = [XMLSEC, "--verify", "--enabled-reference-uris", "empty,same-doc", "--enabled-key-data", "raw-x509-cert",
           "--pubkey-cert-pem", cert_path,
           "--id-attr:ID", "urn:oasis:names:tc:SAML:2.0:assertion:Assertion",
           "--id-attr:ID", "urn:oasis:names:tc:SAML:2.0:protocol:Response"]
    if node_xpath:
        cmd += ["--node-xpath", node_xpath]
    try:
        return subprocess.run(cmd + [path], capture_output=True).returncode == 0
    finally:
        os.unlink(path)


RESPONSE_SIG_XPATH = "/*[local-name()='Response']/*[local-name()='Signature']"
ASSERTION_SIG_XPATH = "//*[local-name()='Assertion']/*[local-name()='Signature']"


def parse_form(page):
    form = re.search(r'<form method="post" action="([^"]*)">', page)
    inputs = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"/>', page))
    return (html.unescape(form.group(1)) if form else None,
            {k: html.unescape(v) for k, v in inputs.items()},
            '<input type="submit"' in page)


class SpMetadataHandler(BaseHTTPRequestHandler):
    metadata = b""

    def do_GET(self):  # noqa: N802
        if self.path.endswith("/sp/metadata"):
            self.send_response(200)
            self.send_header("Content-Type", "application/samlmetadata+xml")
            self.send_header("Content-Length", str(len(self.metadata)))
            self.end_headers()
            self.wfile.write(self.metadata)
        else:
            self.send_response(404)
            self.end_headers()

    def log_message(self, *a):
        pass


def main():
    tmp = tempfile.mkdtemp(prefix="saml-selfcheck-")
    idp_proc = subprocess.Popen([sys.executable, os.path.join(HERE, "idp.py"), "--port", "0"],
                                stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        line = idp_proc.stdout.readline().strip()
        check(re.fullmatch(r"LISTENING http://127\.0\.0\.1:\d+", line) is not None, f"LISTENING line: {line!r}")
        idp_base = line.split()[1]
        run(idp_base, tmp)
    finally:
        idp_proc.terminate()
        idp_proc.wait(timeout=10)
        rest = idp_proc.stdout.read()
        check(rest == "", f"idp.py printed more on stdout: {rest!r}")
        for f in os.listdir(tmp):
            os.unlink(os.path.join(tmp, f))
        os.rmdir(tmp)
    print(f"{PASSED} passed, {FAILED} failed")
    sys.exit(1 if FAILED else 0)


def run(idp_base, tmp):
    idp_eid = f"{idp_base}/metadata"

    # ------------------------------------------------------------ IdP metadata and certs
    st, hdrs, md_xml = http_get(idp_eid)
    check(st == 200 and hdrs.get("Content-Type") == "application/samlmetadata+xml", "metadata content type")
    md = ET.fromstring(md_xml)
    check(md.get("entityID") == idp_eid, "metadata entityID")
    idpsso = md.find("md:IDPSSODescriptor", NS)
    check(idpsso is not None and idpsso.get("WantAuthnRequestsSigned") == "true", "WantAuthnRequestsSigned")
    kds = idpsso.findall("md:KeyDescriptor", NS)
    check(len(kds) == 2 and all(k.get("use") == "signing" for k in kds), "two signing KeyDescriptors")
    sso = idpsso.findall("md:SingleSignOnService", NS)
    check([(s.get("Binding"), s.get("Location")) for s in sso] == [(BINDING_HTTP_REDIRECT, f"{idp_base}/sso")],
          "SingleSignOnService")
    check([n.text for n in idpsso.findall("md:NameIDFormat", NS)] == [NAMEID_FORMAT_EMAILADDRESS], "NameIDFormat")
    md_certs = [k.find(".//ds:X509Certificate", NS).text.strip() for k in kds]
    certs = {}
    for label in "ABR":
        st, _, pem = http_get(f"{idp_base}/cert?key={label}")
        check(st == 200 and "BEGIN CERTIFICATE" in pem, f"/cert?key={label}")
        path = os.path.join(tmp, f"idp_{label}.pem")
        with open(path, "w") as f:
            f.write(pem)
        certs[label] = path
        b64 = "".join(pem.strip().splitlines()[1:-1])
        check((b64 in md_certs) == (label != "R"), f"cert {label} published iff not rogue")
    check(md_certs == ["".join(open(certs[x]).read().strip().splitlines()[1:-1]) for x in "AB"], "cert order A, B")
    st, _, md_a = http_get(f"{idp_eid}?certs=A")
    kds_a = ET.fromstring(md_a).findall("md:IDPSSODescriptor/md:KeyDescriptor", NS)
    check(len(kds_a) == 1 and kds_a[0].find(".//ds:X509Certificate", NS).text.strip() == md_certs[0],
          "metadata?certs=A has only cert A")

    # ------------------------------------------------------------ the SP
    sp_key, sp_key_path, sp_cert_path = make_keypair(tmp)
    sp_http = ThreadingHTTPServer(("127.0.0.1", 0), SpMetadataHandler)
    sp_base = f"http://127.0.0.1:{sp_http.server_address[1]}"
    sp_eid, acs_url = f"{sp_base}/sp/metadata", f"{sp_base}/sp/acs"
    sp_conf = SPConfig()
    sp_conf.load({
        "entityid": sp_eid,
        "service": {"sp": {
            "endpoints": {"assertion_consumer_service": [(acs_url, BINDING_HTTP_POST)]},
            "authn_requests_signed": True,
            "want_assertions_signed": False,
            "want_response_signed": False,
            "want_assertions_or_response_signed": True,
            "allow_unsolicited": True,
            "name_id_format": [NAMEID_FORMAT_EMAILADDRESS],
        }},
        "key_file": sp_key_path,
        "cert_file": sp_cert_path,
        "metadata": {"inline": [md_xml]},
        "xmlsec_binary": XMLSEC,
        "allow_unknown_attributes": True,
        "accepted_time_diff": 0,
    })
    SpMetadataHandler.metadata = str(entity_descriptor(sp_conf)).encode()
    threading.Thread(target=sp_http.serve_forever, daemon=True).start()
    client = Saml2Client(config=sp_conf)
    client.allow_unsolicited = False  # so that InResponseTo is checked for SP-initiated flows

    def authn_url(relay_state="rs-1"):
        req_id, info = client.prepare_for_authenticate(
            entityid=idp_eid, relay_state=relay_state, binding=BINDING_HTTP_REDIRECT, sigalg=SIG_RSA_SHA256)
        return req_id, dict(info["headers"])["Location"]

    # ------------------------------------------------------------ AuthnRequest checks
    _, url = authn_url()
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    check(set(q) == {"SAMLRequest", "RelayState", "SigAlg", "Signature"}, f"pysaml2 SP url params {set(q)}")
    unsigned = re.sub(r"&(SigAlg|Signature)=[^&]*", "", url)
    st, _, body = http_get(unsigned)
    check(st == 400 and "AuthnRequest must be signed" in body, f"unsigned request -> 400 ({st} {body!r})")
    tampered = re.sub(r"RelayState=[^&]*", "RelayState=other", url)
    st, _, body = http_get(tampered)
    check(st == 400 and "bad AuthnRequest signature" in body, f"tampered RelayState -> 400 ({st} {body!r})")

    # Hand-built request: raw (spec) signature form with %20 in RelayState, and a wrong ACS.
    def hand_built(acs, relay_state, sign_key, quote=urllib.parse.quote):
        req_id, req = client.create_authn_request(f"{idp_base}/sso", assertion_consumer_service_url=acs,
                                                  sign=False)
        deflated = zlib.compress(str(req).encode())[2:-4]
        parts = [("SAMLRequest", base64.b64encode(deflated).decode()), ("RelayState", relay_state),
                 ("SigAlg", SIG_RSA_SHA256)]
        signed = "&".join(f"{k}={quote(v, safe='')}" for k, v in parts)
        sig = sign_key.sign(signed.encode(), padding.PKCS1v15(), hashes.SHA256())
        return req_id, (f"{idp_base}/sso?{signed}&Signature={urllib.parse.quote(base64.b64encode(sig).decode(), safe='')}"
                        "&user=bob%40example.com")

    _, url = hand_built(acs_url, "a b~c*", sp_key)
    st, hdrs, body = http_get(url)
    check(st == 200 and hdrs.get("X-Peer-Redirect-Sig") == "raw", f"raw-form signature accepted ({st} {body[:200]!r})")
    _, rs_form, _ = parse_form(body)
    check(rs_form.get("RelayState") == "a b~c*", f"RelayState echoed: {rs_form.get('RelayState')!r}")
    _, url = hand_built(acs_url, "x", rsa.generate_private_key(public_exponent=65537, key_size=2048))
    st, _, body = http_get(url)
    check(st == 400 and "bad AuthnRequest signature" in body, f"foreign key -> 400 ({st} {body!r})")
    _, url = hand_built(f"{sp_base}/elsewhere", "x", sp_key)
    st, _, body = http_get(url)
    check(st == 400 and "not in SP metadata" in body, f"wrong ACS -> 400 ({st} {body!r})")

    # ------------------------------------------------------------ modes
    expect = {
        # mode: (signer, response signed, assertion signed)
        "ok": ("A", True, True),
        "assertion_only": ("A", False, True),
        "response_only": ("A", True, False),
        "rollover": ("B", True, True),
        "unsigned": (None, False, False),
        "rogue": ("R", True, True),
        "expired": ("A", True, True),
        "wrong_audience": ("A", True, True),
        "wrong_destination": ("A", True, True),
        "wrong_in_response_to": ("A", True, True),
        "xsw": ("A", False, True),
        "xsw2": ("A", False, True),
    }
    sp_accepts = {"ok", "assertion_only", "response_only", "rollover"}
    for mode, (signer, resp_signed, ass_signed) in expect.items():
        req_id, url = authn_url(relay_state=f"rs-{mode}")
        user = "carol.jones@example.org"
        st, hdrs, page = http_get(f"{url}&user={urllib.parse.quote(user)}&mode={mode}")
        check(st == 200, f"[{mode}] /sso status {st}: {page[:300]!r}")
        if st != 200:
            continue
        check(hdrs.get("X-Peer-Redirect-Sig") == "pysaml2", f"[{mode}] pysaml2-form signature")
        action, inputs, submit = parse_form(page)
        check(action == acs_url and submit, f"[{mode}] form action {action!r}")
        check(inputs.get("RelayState") == f"rs-{mode}", f"[{mode}] RelayState echoed")
        xml = base64.b64decode(inputs["SAMLResponse"]).decode()
        check_response(mode, xml, req_id, user, sp_eid, acs_url, idp_eid, signer, resp_signed, ass_signed, certs)

        try:
            res = client.parse_authn_request_response(inputs["SAMLResponse"], BINDING_HTTP_POST, {req_id: "/"})
            ok = res is not None
            got = (res.get_subject().text, res.get_identity()) if ok else None
        except Exception as e:  # noqa: BLE001
            ok, got = False, repr(e)[:160]
        if mode in sp_accepts:
            check(ok and got[0] == user and got[1].get("email") == [user]
                  and got[1].get("groups") == ["engineering", "admins"]
                  and got[1].get("displayName") == ["Carol Jones Example"],
                  f"[{mode}] pysaml2 SP should accept: {got}")
        else:
            check(not ok, f"[{mode}] pysaml2 SP should reject, got {got}")
        print(f"  mode {mode:22} pysaml2 SP: {'accepted' if ok else 'rejected: ' + str(got)}", flush=True)

    st, _, body = http_get(authn_url()[1] + "&mode=nope")
    check(st == 400 and "unknown mode" in body, "unknown mode -> 400")

    # ------------------------------------------------------------ IdP-initiated
    st, _, page = http_get(f"{idp_base}/idp-initiated?sp={urllib.parse.quote(sp_eid, safe='')}")
    check(st == 200, f"idp-initiated status {st} {page[:200]!r}")
    action, inputs, _ = parse_form(page)
    check(action == acs_url and "RelayState" not in inputs, "idp-initiated form")
    xml = base64.b64decode(inputs["SAMLResponse"]).decode()
    check_response("idp-initiated", xml, None, "alice@example.com", sp_eid, acs_url, idp_eid, "A", True, True, certs)
    client.allow_unsolicited = True
    try:
        res = client.parse_authn_request_response(inputs["SAMLResponse"], BINDING_HTTP_POST, {})
        check(res is not None and res.get_subject().text == "alice@example.com"
              and res.get_identity().get("displayName") == ["Alice Example"], "pysaml2 SP accepts unsolicited")
    except Exception as e:  # noqa: BLE001
        check(False, f"pysaml2 SP accepts unsolicited: {e!r}")
    sp_http.shutdown()


def check_response(mode, xml, req_id, user, sp_eid, acs_url, idp_eid, signer, resp_signed, ass_signed, certs):
    root = ET.fromstring(xml)
    tag = f"[{mode}]"
    check(root.tag == "{%s}Response" % NS["samlp"], f"{tag} root is Response")
    check(root.find("saml:Issuer", NS).text == idp_eid, f"{tag} Response Issuer")
    check(root.find("samlp:Status/samlp:StatusCode", NS).get("Value") == "urn:oasis:names:tc:SAML:2.0:status:Success",
          f"{tag} status Success")
    evil_dest = mode == "wrong_destination"
    bogus_irt = mode == "wrong_in_response_to"
    want_dest = "https://evil.example/acs" if evil_dest else acs_url
    want_irt = "_bogus" if bogus_irt else req_id
    check(root.get("Destination") == want_dest, f"{tag} Destination {root.get('Destination')}")
    check(root.get("InResponseTo") == want_irt, f"{tag} InResponseTo {root.get('InResponseTo')}")

    direct = root.findall("saml:Assertion", NS)
    all_assertions = root.findall(".//saml:Assertion", NS)
    if mode == "xsw":
        check(len(direct) == 2, f"{tag} two sibling assertions")
        evil, real = direct
        check(evil.find("ds:Signature", NS) is None and real.find("ds:Signature", NS) is not None,
              f"{tag} evil first and unsigned, real second and signed")
    elif mode == "xsw2":
        check(len(direct) == 1 and len(all_assertions) == 2, f"{tag} one direct assertion + one in Extensions")
        evil = direct[0]
        real = root.find("samlp:Extensions/saml:Assertion", NS)
        check(real is not None and real.find("ds:Signature", NS) is not None and evil.find("ds:Signature", NS) is None,
              f"{tag} signed original inside samlp:Extensions, evil unsigned")
        children = [c.tag.split("}")[1] for c in root]
        check(children == ["Issuer", "Extensions", "Status", "Assertion"], f"{tag} child order {children}")
    else:
        check(len(all_assertions) == 1, f"{tag} exactly one assertion")
        real, evil = direct[0], None
    if evil is not None:
        check(evil.get("ID") != real.get("ID"), f"{tag} evil has its own ID")
        check(evil.find("saml:Subject/saml:NameID", NS).text == "mallory@evil.example", f"{tag} evil NameID")
        ev_attrs = {a.get("Name"): [v.text for v in a.findall("saml:AttributeValue", NS)]
                    for a in evil.findall("saml:AttributeStatement/saml:Attribute", NS)}
        check(ev_attrs.get("email") == ["mallory@evil.example"], f"{tag} evil email")

    a = real
    check(a.find("saml:Issuer", NS).text == idp_eid, f"{tag} Assertion Issuer")
    nid = a.find("saml:Subject/saml:NameID", NS)
    check(nid.text == user and nid.get("Format") == NAMEID_FORMAT_EMAILADDRESS, f"{tag} NameID")
    sc = a.find("saml:Subject/saml:SubjectConfirmation", NS)
    check(sc.get("Method") == "urn:oasis:names:tc:SAML:2.0:cm:bearer", f"{tag} bearer")
    scd = sc.find("saml:SubjectConfirmationData", NS)
    check(scd.get("Recipient") == want_dest, f"{tag} Recipient {scd.get('Recipient')}")
    check(scd.get("InResponseTo") == want_irt, f"{tag} SCD InResponseTo {scd.get('InResponseTo')}")
    cond = a.find("saml:Conditions", NS)
    nb, noa, scd_noa = (seconds_from_now(cond.get("NotBefore")), seconds_from_now(cond.get("NotOnOrAfter")),
                        seconds_from_now(scd.get("NotOnOrAfter")))
    if mode == "expired":
        check(-7215 < nb < -7185 and -3615 < noa < -3585 and -3615 < scd_noa < -3585, f"{tag} times {nb} {noa} {scd_noa}")
    else:
        check(-75 < nb < -45 and 285 < noa < 315 and 285 < scd_noa < 315, f"{tag} times {nb} {noa} {scd_noa}")
    aud = [x.text for x in cond.findall("saml:AudienceRestriction/saml:Audience", NS)]
    check(aud == (["https://evil.example/sp"] if mode == "wrong_audience" else [sp_eid]), f"{tag} Audience {aud}")
    ctx = a.find("saml:AuthnStatement/saml:AuthnContext/saml:AuthnContextClassRef", NS)
    check(ctx is not None and ctx.text == "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport",
          f"{tag} AuthnContextClassRef")
    attrs = {x.get("Name"): (x.get("NameFormat"), [v.text for v in x.findall("saml:AttributeValue", NS)])
             for x in a.findall("saml:AttributeStatement/saml:Attribute", NS)}
    basic = "urn:oasis:names:tc:SAML:2.0:attrname-format:basic"
    check(attrs.get("email") == (basic, [user]) and attrs.get("groups") == (basic, ["engineering", "admins"])
          and attrs.get("displayName", (None, [None]))[0] == basic and attrs.get("displayName")[1][0],
          f"{tag} attributes {attrs}")

    # Signatures: where they are, and whom they verify with.
    check((root.find("ds:Signature", NS) is not None) == resp_signed, f"{tag} Response signed={resp_signed}")
    check((real.find("ds:Signature", NS) is not None) == ass_signed, f"{tag} Assertion signed={ass_signed}")
    for sig in root.iter(SIG_TAG):
        check(sig.find("ds:SignedInfo/ds:SignatureMethod", NS).get("Algorithm")
              == "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256", f"{tag} rsa-sha256")
        check(sig.find("ds:SignedInfo/ds:CanonicalizationMethod", NS).get("Algorithm")
              == "http://www.w3.org/2001/10/xml-exc-c14n#", f"{tag} exc-c14n")
        check(sig.find("ds:KeyInfo/ds:X509Data/ds:X509Certificate", NS) is not None, f"{tag} cert in KeyInfo")
    if resp_signed:
        ref = root.find("ds:Signature/ds:SignedInfo/ds:Reference", NS).get("URI")
        check(ref == "#" + root.get("ID"), f"{tag} Response Reference URI")
    if ass_signed:
        ref = real.find("ds:Signature/ds:SignedInfo/ds:Reference", NS).get("URI")
        check(ref == "#" + real.get("ID"), f"{tag} Assertion Reference URI")
    for what, signed, xpath in (("Response", resp_signed, RESPONSE_SIG_XPATH),
                                ("Assertion", ass_signed, ASSERTION_SIG_XPATH)):
        if not signed:
            continue
        for label in "ABR":
            ok = xmlsec_verify(xml, certs[label], xpath)
            check(ok == (label == signer), f"{tag} {what} signature verifies with {label}: {ok}")


if __name__ == "__main__":
    main()
