#!/usr/bin/env python3
"""SAML 2.0 identity provider test peer for Portcullis integration tests (pysaml2 + stdlib http.server).

Start:    python3 tests/peers/saml/idp.py --port 0        (0 = random free port)
Stdout:   exactly one line `LISTENING http://127.0.0.1:<port>` once ready; logs go to stderr.
Install:  pip install -r tests/peers/saml/requirements.txt  (+ Debian's `xmlsec1`, which pysaml2 calls)

Entity id: http://127.0.0.1:<port>/metadata
Keys: three fresh RSA-2048 keys + self-signed certs per run (temp dir):
  A and B are published as signing keys in the metadata, R ("rogue") never is.

Endpoints
  GET /metadata            IdP EntityDescriptor (application/samlmetadata+xml): IDPSSODescriptor
                           WantAuthnRequestsSigned="true", two <KeyDescriptor use="signing"> (A then B),
                           NameIDFormat emailAddress, SingleSignOnService HTTP-Redirect -> /sso.
  GET /metadata?certs=A    same, publishing only key A (also certs=B).
  GET /cert?key=A|B|R      PEM certificate of that key (text/plain), for tests that configure a cert directly.
  GET /sso?SAMLRequest=..&RelayState=..&SigAlg=..&Signature=..[&user=..][&mode=..]
                           HTTP-Redirect binding (DEFLATE+base64). The SP metadata is fetched from the
                           AuthnRequest's <Issuer> (the SP entity id must be its metadata URL, on a
                           loopback host) on every request. Checks, each answering 400 text/plain:
                             no SigAlg/Signature              -> "AuthnRequest must be signed"
                             signature not valid for any signing cert in the SP metadata
                                                              -> "bad AuthnRequest signature"
                             ACS URL not among the SP metadata's HTTP-POST ACS locations -> "ACS URL ... not in SP metadata"
                             Destination (if present) != this /sso URL, bad XML, etc. -> "invalid AuthnRequest: ..."
                           The redirect signature is accepted if EITHER form verifies:
                             * pysaml2's own check: it re-encodes the DECODED values with
                               urllib.parse.urlencode (quote_plus: space -> '+', upper-case %XX, only
                               A-Za-z0-9 and _.-~ left bare) and verifies
                               "SAMLRequest=..&RelayState=..&SigAlg=.." (RelayState only if present);
                             * the SAML-bindings §3.4.4.1 form: the exact raw octets of those three
                               parameters as they appear in the query string, same order.
                           Which one matched is logged and sent back as header X-Peer-Redirect-Sig.
                           user (default alice@example.com) and mode (default ok) are not signed.
                           Answer: 200 HTML page with
                             <form method="post" action="{ACS URL}">
                               <input type="hidden" name="SAMLResponse" value="{base64 Response XML}"/>
                               <input type="hidden" name="RelayState" value="{echoed}"/>  (only if sent)
                               <input type="submit" value="Continue"/>
  GET /idp-initiated?sp=<SP entity id URL>[&user=..][&mode=..]
                           same form, unsolicited Response (no InResponseTo anywhere), no RelayState,
                           ACS = the SP metadata's first HTTP-POST ACS (isDefault preferred).

  GET /slo?SAMLRequest=..&RelayState=..&SigAlg=..&Signature=..
                           SP-initiated Single Logout (HTTP-Redirect). 400 text/plain unless the
                           LogoutRequest is signed by a signing cert of the SP metadata ("LogoutRequest
                           must be signed" / "bad LogoutRequest signature"), its Destination is this
                           /slo URL, and its NameID + SessionIndex name a session this IdP issued to
                           that SP ("unknown session: .."). Then the session is forgotten and the
                           answer is 303 to the SP metadata's HTTP-Redirect SingleLogoutService with a
                           LogoutResponse (Status Success, InResponseTo) signed by pysaml2's
                           http_redirect_message (key A, rsa-sha256), RelayState echoed.
  GET /slo?SAMLResponse=..  the SP's answer to /logout-initiated: 200 text/plain "logged out: <status
                           code>" when signed by the SP and answering the pending request, else 400.
  GET /logout-initiated?sp=<SP entity id URL>[&user=..][&mode=ok|unsigned|rogue]
                           IdP-initiated Single Logout of `user`'s latest session at that SP: 303 to
                           the SP's SingleLogoutService with a LogoutRequest (NameID + SessionIndex as
                           issued) built by pysaml2's create_logout_request, signed with key A (mode
                           ok), not signed (unsigned) or signed with the unpublished key R (rogue).
  GET /sessions?sp=..      the sessions this IdP holds for that SP, one "<NameID> <SessionIndex>" per
                           line (text/plain).

Response (built by pysaml2's Server.create_authn_response, then adjusted and signed with pysaml2's
pre_signature_part + SecurityContext.sign_statement, i.e. the xmlsec1 CLI; rsa-sha256, sha256 digest,
exclusive c14n, enveloped signature, Reference URI="#<ID>", signer's cert in KeyInfo/X509Data):
  Response: Issuer = IdP entity id, Destination = ACS, InResponseTo = request ID, Status Success.
  One Assertion: Issuer; Subject NameID (Format emailAddress) = user; SubjectConfirmation bearer with
  SubjectConfirmationData Recipient = ACS, InResponseTo = request ID, NotOnOrAfter = now+5min;
  Conditions NotBefore = now-1min, NotOnOrAfter = now+5min, AudienceRestriction/Audience = SP entity id;
  AuthnStatement (AuthnContextClassRef PasswordProtectedTransport, SessionIndex);
  AttributeStatement, NameFormat basic: email = user, displayName = derived from user
  ("alice@example.com" -> "Alice Example"), groups = ["engineering", "admins"].

Modes (query param mode):
  ok                    Response AND Assertion signed with key A.
  assertion_only        only the Assertion signed (A).
  response_only         only the Response signed (A).
  rollover              like ok, signed with key B (second published cert).
  unsigned              no signature at all.
  rogue                 like ok, signed with key R (unpublished; R's cert is in KeyInfo).
  expired               like ok; Conditions NotBefore now-2h, NotOnOrAfter now-1h;
                        SubjectConfirmationData NotOnOrAfter now-1h.
  wrong_audience        like ok; Audience https://evil.example/sp.
  wrong_destination     like ok; Response Destination and SubjectConfirmationData Recipient
                        https://evil.example/acs (the form still posts to the real ACS).
  wrong_in_response_to  like ok; InResponseTo "_bogus" on Response and SubjectConfirmationData.
  xsw                   XSW "sibling" variant (SAML Raider's XSW3):
                        assertion_only response, then an UNSIGNED evil Assertion (new ID, NameID and
                        email mallory@evil.example, displayName "Mallory Evil") is inserted as the
                        first Assertion, before the original signed one, which still verifies by ID.
  encrypted             the signed Assertion (key A) encrypted to the SP metadata's encryption
                        certificate (xmlsec1: AES-256-CBC content, RSA-OAEP-MGF1P key transport);
                        the Response itself is not signed (what ADFS and Entra ID send by default).
  encrypted_unsigned    encrypted like that, with no signature anywhere.
  xsw2                  "Extensions" variant: the evil Assertion takes the original's place as the
                        Response's only direct Assertion child; the original signed Assertion is moved
                        into a <samlp:Extensions> element of the Response (after Issuer, before
                        Status), where its signature still verifies by ID. Response not signed.
"""

import argparse
import base64
import copy
import datetime
import html
import ipaddress
import logging
import os
import re
import signal
import sys
import tempfile
import threading
import urllib.parse
import urllib.request
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

warnings.filterwarnings("ignore", message=".*has been moved to cryptography.hazmat.decrepit.*")

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, class_name
from saml2.authn_context import PASSWORDPROTECTEDTRANSPORT
from saml2.config import IdPConfig
from saml2.mdstore import InMemoryMetaData
from saml2.metadata import entity_descriptor, metadata_tostring_fix
from saml2.request import AuthnRequest
from saml2.s_utils import sid
from saml2.saml import NAME_FORMAT_BASIC, NAMEID_FORMAT_EMAILADDRESS, NameID
from saml2.samlp import authn_request_from_string, logout_request_from_string, logout_response_from_string
from saml2.server import Server
from saml2.sigver import (
    ASSERT_XPATH,
    REQ_ORDER,
    RESP_ORDER,
    extract_rsa_key_from_x509_cert,
    get_xmlsec_binary,
    pem_format,
    RSA_OAEP_MGF1P,
    pre_encryption_part,
    pre_signature_part,
    verify_redirect_signature,
)
from saml2.validate import valid_instance
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

log = logging.getLogger("saml-idp-peer")

MODES = {
    # mode: (key, sign_assertion, sign_response)
    "ok": ("A", True, True),
    "assertion_only": ("A", True, False),
    "response_only": ("A", False, True),
    "rollover": ("B", True, True),
    "unsigned": (None, False, False),
    "rogue": ("R", True, True),
    "expired": ("A", True, True),
    "wrong_audience": ("A", True, True),
    "wrong_destination": ("A", True, True),
    "wrong_in_response_to": ("A", True, True),
    "xsw": ("A", True, False),
    "xsw2": ("A", True, False),
    "encrypted": ("A", True, False),
    "encrypted_unsigned": (None, False, False),
}
EVIL_AUDIENCE = "https://evil.example/sp"
EVIL_ACS = "https://evil.example/acs"
EVIL_USER = "mallory@evil.example"
PROTOCOL_NS = "urn:oasis:names:tc:SAML:2.0:protocol"
AES256_CBC = "http://www.w3.org/2001/04/xmlenc#aes256-cbc"

ATTRIBUTE_MAP = '''\
# Written by idp.py: pass the attribute names through unchanged, NameFormat basic.
MAP = {
    "identifier": "urn:oasis:names:tc:SAML:2.0:attrname-format:basic",
    "fro": {"email": "email", "displayName": "displayName", "groups": "groups"},
    "to": {"email": "email", "displayName": "displayName", "groups": "groups"},
}
'''


class PeerError(Exception):
    """An error answered to the client as 400 text/plain."""


def make_keypair(dirpath, label):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Portcullis test peer"),
        x509.NameAttribute(NameOID.COMMON_NAME, f"SAML IdP signing key {label}"),
    ])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    key_path = os.path.join(dirpath, f"key_{label}.pem")
    cert_path = os.path.join(dirpath, f"cert_{label}.pem")
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ))
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    with open(cert_path, "wb") as f:
        f.write(cert_pem)
    return {
        "key": key_path,
        "cert": cert_path,
        "cert_pem": cert_pem.decode(),
        "cert_b64": base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode(),
    }


def ts(delta_seconds):
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=delta_seconds)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def display_name(user):
    local, _, domain = user.partition("@")
    words = [w.capitalize() for w in re.split(r"[._+-]+", local) if w]
    if domain:
        words.append(domain.split(".")[0].capitalize())
    return " ".join(words) or user


def find_element(xml, local_name):
    """(start, end) of the first element `local_name` (any prefix) in xml; no nesting of the same name."""
    m = re.search(r"<(?:([A-Za-z_][\w.-]*):)?%s[\s/>]" % local_name, xml)
    if not m:
        raise ValueError(f"no {local_name} element")
    prefix = m.group(1)
    close = f"</{prefix}:{local_name}>" if prefix else f"</{local_name}>"
    end = xml.index(close, m.start()) + len(close)
    return m.start(), end


def is_loopback_url(url):
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    if parts.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


class Idp:
    def __init__(self, base, keydir):
        self.base = base
        self.entity_id = f"{base}/metadata"
        self.sso_url = f"{base}/sso"
        self.slo_url = f"{base}/slo"
        # Sessions issued: SP entity id -> [(NameID, SessionIndex)], newest last.
        self.sessions = {}
        # IdP-initiated LogoutRequest id -> (SP, session) awaiting the SP's LogoutResponse.
        self.pending_logouts = {}
        self.keys = {label: make_keypair(keydir, label) for label in ("A", "B", "R")}
        mapdir = os.path.join(keydir, "attributemaps")
        os.makedirs(mapdir)
        with open(os.path.join(mapdir, "portcullis_peer_attrmap.py"), "w") as f:
            f.write(ATTRIBUTE_MAP)
        self.lock = threading.Lock()

        conf = self._config(mapdir, extra_certs=[self.keys["B"]["cert"]])
        conf.metadata = conf.load_metadata({})  # empty store; SP metadata is fetched per request
        self.server = Server(config=conf)
        self.metadata_xml = {
            "AB": self._metadata(conf),
            "A": self._metadata(self._config(mapdir, cert="A")),
            "B": self._metadata(self._config(mapdir, cert="B")),
        }

    def _config(self, mapdir, cert="A", extra_certs=None):
        conf = IdPConfig()
        conf.load({
            "entityid": self.entity_id,
            "service": {
                "idp": {
                    "name": "Portcullis test SAML IdP",
                    "endpoints": {
                        "single_sign_on_service": [(self.sso_url, BINDING_HTTP_REDIRECT)],
                        "single_logout_service": [(self.slo_url, BINDING_HTTP_REDIRECT)],
                    },
                    "want_authn_requests_signed": True,
                    "name_id_format": [NAMEID_FORMAT_EMAILADDRESS],
                    "policy": {
                        "default": {
                            "lifetime": {"minutes": 5},
                            "name_form": NAME_FORMAT_BASIC,
                            "attribute_restrictions": None,
                            "fail_on_missing_requested": False,
                        },
                    },
                },
            },
            "key_file": self.keys[cert]["key"],
            "cert_file": self.keys[cert]["cert"],
            "additional_cert_files": extra_certs,
            "metadata_key_usage": "signing",
            "xmlsec_binary": get_xmlsec_binary(),
            "attribute_map_dir": mapdir,
            "allow_unknown_attributes": True,
            "accepted_time_diff": 60,
        })
        return conf

    @staticmethod
    def _metadata(conf):
        ed = entity_descriptor(conf)
        ed.extensions = None  # pysaml2 adds an algsupport list (md5, dsa-sha1, ...): keep the metadata minimal
        valid_instance(ed)
        xml = metadata_tostring_fix(ed, {"xs": "http://www.w3.org/2001/XMLSchema"})
        return xml if isinstance(xml, bytes) else xml.encode()

    # ---------------------------------------------------------------- SP metadata

    def load_sp_metadata(self, entity_id):
        if not is_loopback_url(entity_id):
            raise PeerError(f"SP entity id {entity_id!r} is not a loopback http(s) URL; cannot fetch its metadata")
        try:
            with urllib.request.urlopen(entity_id, timeout=10) as r:
                xml = r.read().decode("utf-8")
        except Exception as e:  # noqa: BLE001
            raise PeerError(f"cannot fetch SP metadata from {entity_id}: {e}") from e
        md = InMemoryMetaData(self.server.metadata.attrc, xml)
        try:
            md.load()
        except Exception as e:  # noqa: BLE001
            raise PeerError(f"cannot parse SP metadata from {entity_id}: {e}") from e
        if entity_id not in md:
            raise PeerError(f"SP metadata at {entity_id} has entityID(s) {list(md.keys())}, not {entity_id}")
        # Replace whatever was known for this entity id (SPs restart with new keys between tests).
        self.server.metadata.metadata[entity_id] = md
        certs = [c for _, c in self.server.metadata.certs(entity_id, "any", "signing")]
        acs = self.server.metadata.assertion_consumer_service(entity_id, BINDING_HTTP_POST)
        return certs, acs

    # ---------------------------------------------------------------- AuthnRequest

    def verify_redirect_signature(self, raw_pairs, q, certs, typ="SAMLRequest"):
        sigalg, signature = q["SigAlg"], q["Signature"]
        msg = {typ: q[typ], "SigAlg": sigalg, "Signature": signature}
        if "RelayState" in q:
            msg["RelayState"] = q["RelayState"]
        for cert in certs:
            try:
                if verify_redirect_signature(msg, self.server.sec.sec_backend, cert):
                    return "pysaml2"
            except Exception as e:  # noqa: BLE001
                log.info("pysaml2 redirect signature check raised: %r", e)
        # SAML bindings 3.4.4.1: the signature covers the query parameters exactly as sent.
        order = REQ_ORDER if typ == "SAMLRequest" else RESP_ORDER
        signed = "&".join(f"{k}={raw_pairs[k]}" for k in order if k in raw_pairs).encode("ascii", "replace")
        try:
            signer = self.server.sec.sec_backend.get_signer(sigalg)
            sig = base64.b64decode(signature)
        except Exception as e:  # noqa: BLE001
            log.info("cannot verify with SigAlg %r: %r", sigalg, e)
            return None
        for cert in certs:
            try:
                if signer.verify(signed, sig, extract_rsa_key_from_x509_cert(pem_format(cert))):
                    return "raw"
            except Exception as e:  # noqa: BLE001
                log.info("raw redirect signature check raised: %r", e)
        return None

    def handle_sso(self, raw_pairs, q):
        if not q.get("SAMLRequest"):
            raise PeerError("missing SAMLRequest")
        try:
            xml = self.server.unravel(q["SAMLRequest"], BINDING_HTTP_REDIRECT, AuthnRequest.msgtype)
            unverified = authn_request_from_string(xml)
            issuer = unverified.issuer.text.strip()
        except Exception as e:  # noqa: BLE001
            raise PeerError(f"invalid AuthnRequest: cannot decode: {e}") from e
        if not q.get("SigAlg") or not q.get("Signature"):
            raise PeerError("AuthnRequest must be signed")
        certs, acs_list = self.load_sp_metadata(issuer)
        if not certs:
            raise PeerError(f"SP metadata of {issuer} has no signing certificate")
        how = self.verify_redirect_signature(raw_pairs, q, certs)
        if not how:
            raise PeerError("bad AuthnRequest signature")
        log.info("AuthnRequest redirect signature verified (%s form)", how)

        # Signature checked above; let pysaml2 parse and validate the rest (version, Destination, instant).
        req = AuthnRequest(
            self.server.sec,
            self.server.config.endpoint("single_sign_on_service", BINDING_HTTP_REDIRECT, "idp"),
            self.server.config.attribute_converters,
            timeslack=60,
        )
        try:
            req = req.loads(xml, BINDING_HTTP_REDIRECT, origdoc=q["SAMLRequest"], must=False)
            if not req.verify():
                raise ValueError("IssueInstant out of range")
        except Exception as e:  # noqa: BLE001
            raise PeerError(f"invalid AuthnRequest: {e!r}") from e
        msg = req.message

        if msg.protocol_binding and msg.protocol_binding != BINDING_HTTP_POST:
            raise PeerError(f"invalid AuthnRequest: unsupported ProtocolBinding {msg.protocol_binding}")
        locations = [a["location"] for a in acs_list]
        if msg.assertion_consumer_service_url:
            acs = msg.assertion_consumer_service_url
            if acs not in locations:
                raise PeerError(f"ACS URL {acs} not in SP metadata (HTTP-POST ACS: {locations})")
        elif msg.assertion_consumer_service_index is not None:
            match = [a["location"] for a in acs_list if a.get("index") == msg.assertion_consumer_service_index]
            if not match:
                raise PeerError(f"ACS index {msg.assertion_consumer_service_index} not in SP metadata")
            acs = match[0]
        else:
            acs = self.default_acs(issuer, acs_list)
        return issuer, acs, msg.id, how

    @staticmethod
    def default_acs(issuer, acs_list):
        if not acs_list:
            raise PeerError(f"SP metadata of {issuer} has no HTTP-POST AssertionConsumerService")
        defaults = [a for a in acs_list if str(a.get("is_default", "")).lower() == "true"]
        return (defaults or acs_list)[0]["location"]

    # ---------------------------------------------------------------- Response

    def build_response(self, sp_entity_id, acs, in_response_to, user, mode):
        if mode not in MODES:
            raise PeerError(f"unknown mode {mode!r}; known: {', '.join(MODES)}")
        key, sign_assertion, sign_response = MODES[mode]

        def identity_for(u):
            return {"email": [u], "displayName": [display_name(u)], "groups": ["engineering", "admins"]}

        resp = self.server.create_authn_response(
            identity_for(user),
            in_response_to,
            acs,
            sp_entity_id,
            name_id=NameID(format=NAMEID_FORMAT_EMAILADDRESS, text=user),
            authn={"class_ref": PASSWORDPROTECTEDTRANSPORT},
            sign_response=False,
            sign_assertion=False,
        )
        if isinstance(resp, (str, bytes, list)):
            raise PeerError(f"pysaml2 did not build a Response: {resp!r}")
        assertion = resp.assertion[0] if isinstance(resp.assertion, list) else resp.assertion
        cond = assertion.conditions
        scd = assertion.subject.subject_confirmation[0].subject_confirmation_data

        cond.not_before, cond.not_on_or_after, scd.not_on_or_after = ts(-60), ts(300), ts(300)
        if mode == "expired":
            cond.not_before, cond.not_on_or_after, scd.not_on_or_after = ts(-7200), ts(-3600), ts(-3600)
        elif mode == "wrong_audience":
            cond.audience_restriction[0].audience[0].text = EVIL_AUDIENCE
        elif mode == "wrong_destination":
            resp.destination = EVIL_ACS
            scd.recipient = EVIL_ACS
        elif mode == "wrong_in_response_to":
            resp.in_response_to = "_bogus"
            scd.in_response_to = "_bogus"

        evil_xml = None
        if mode in ("xsw", "xsw2"):
            evil = copy.deepcopy(assertion)
            evil.id = sid()
            evil.subject.name_id.text = EVIL_USER
            for stmt in evil.attribute_statement:
                for attr in stmt.attribute:
                    if attr.name == "email":
                        attr.attribute_value[0].text = EVIL_USER
                    elif attr.name == "displayName":
                        attr.attribute_value[0].text = display_name(EVIL_USER)
            # Serialize it inside a Response so that it uses the same namespace prefixes as the real one.
            holder = copy.deepcopy(resp)
            holder.assertion = evil
            holder_xml = holder.to_string().decode("utf-8")
            start, end = find_element(holder_xml, "Assertion")
            evil_xml = holder_xml[start:end]

        authn = assertion.authn_statement[0] if assertion.authn_statement else None
        if authn is not None and authn.session_index:
            self.sessions.setdefault(sp_entity_id, []).append((user, authn.session_index))

        xml = self.sign(resp, assertion, key, sign_assertion, sign_response)

        if mode in ("encrypted", "encrypted_unsigned"):
            xml = self.encrypt(xml, sp_entity_id)

        if evil_xml is not None:
            start, end = find_element(xml, "Assertion")
            signed = xml[start:end]
            if mode == "xsw":
                xml = xml[:start] + evil_xml + xml[start:]
            else:
                xml = xml[:start] + evil_xml + xml[end:]
                _, issuer_end = find_element(xml, "Issuer")  # the Response's own Issuer comes first
                ext = f'<xswp:Extensions xmlns:xswp="{PROTOCOL_NS}">{signed}</xswp:Extensions>'
                xml = xml[:issuer_end] + ext + xml[issuer_end:]
        return xml

    def sign(self, resp, assertion, key, sign_assertion, sign_response):
        to_sign = []
        if key is not None:
            k = self.keys[key]
            if sign_assertion:
                assertion.signature = pre_signature_part(
                    assertion.id, k["cert_b64"], 2, sign_alg=SIG_RSA_SHA256, digest_alg=DIGEST_SHA256)
                to_sign.append((class_name(assertion), assertion.id))
            if sign_response:  # after the assertion: the response digest covers the signed assertion
                resp.signature = pre_signature_part(
                    resp.id, k["cert_b64"], 1, sign_alg=SIG_RSA_SHA256, digest_alg=DIGEST_SHA256)
                to_sign.append((class_name(resp), resp.id))
        xml = resp.to_string().decode("utf-8")
        for node_name, node_id in to_sign:
            xml = self.server.sec.sign_statement(xml, node_name, key_file=self.keys[key]["key"], node_id=node_id)
        return xml


    def encrypt(self, xml, sp_entity_id):
        certs = [c for _, c in self.server.metadata.certs(sp_entity_id, "any", "encryption")]
        if not certs:
            raise PeerError(f"SP metadata of {sp_entity_id} has no encryption certificate")
        # pysaml2's own path (pre_encrypt_assertion + xmlsec1 --encrypt), with AES-256-CBC
        # instead of its 3DES default.
        start, end = find_element(xml, "Assertion")
        prefix = re.match(r"<([A-Za-z0-9_]+:)?Assertion", xml[start:end]).group(1) or ""
        wrapped = (xml[:start] + f'<{prefix}EncryptedAssertion>' + xml[start:end]
                   + f'</{prefix}EncryptedAssertion>' + xml[end:])
        cert_pem = pem_format(certs[0])
        if isinstance(cert_pem, bytes):
            cert_pem = cert_pem.decode("ascii")
        with tempfile.NamedTemporaryFile("w", suffix=".pem", delete=False) as f:
            f.write(cert_pem)
            cert_file = f.name
        try:
            template = pre_encryption_part(
                msg_enc=AES256_CBC, key_enc=RSA_OAEP_MGF1P, encrypt_cert=certs[0])
            return self.server.sec.encrypt_assertion(
                wrapped, cert_file, template, key_type="aes-256", node_xpath=ASSERT_XPATH)
        finally:
            os.unlink(cert_file)

    # ---------------------------------------------------------------- Single Logout

    def sp_slo_url(self, sp):
        slo = self.server.metadata.single_logout_service(sp, BINDING_HTTP_REDIRECT, "spsso")
        if not slo:
            raise PeerError(f"SP metadata of {sp} has no HTTP-Redirect SingleLogoutService")
        return slo[0]["location"]

    def redirect(self, message, destination, relay_state, response, key="A"):
        info = self.server.apply_binding(
            BINDING_HTTP_REDIRECT, str(message), destination, relay_state or "",
            response=response, sign=key is not None, sigalg=SIG_RSA_SHA256)
        return dict(info["headers"])["Location"]

    def handle_slo_request(self, raw_pairs, q):
        try:
            xml = self.server.unravel(q["SAMLRequest"], BINDING_HTTP_REDIRECT, "logout_request")
            req = logout_request_from_string(xml)
            sp = req.issuer.text.strip()
        except Exception as e:  # noqa: BLE001
            raise PeerError(f"invalid LogoutRequest: cannot decode: {e}") from e
        if not q.get("SigAlg") or not q.get("Signature"):
            raise PeerError("LogoutRequest must be signed")
        certs, _ = self.load_sp_metadata(sp)
        if not self.verify_redirect_signature(raw_pairs, q, certs):
            raise PeerError("bad LogoutRequest signature")
        if req.destination != self.slo_url:
            raise PeerError(f"invalid LogoutRequest: Destination {req.destination!r}")
        name_id = req.name_id.text.strip() if req.name_id is not None else ""
        indexes = [i.text.strip() for i in (req.session_index or [])]
        held = self.sessions.get(sp, [])
        match = [s for s in held if s[0] == name_id and (not indexes or s[1] in indexes)]
        if not match:
            raise PeerError(f"unknown session: {name_id} {indexes}")
        self.sessions[sp] = [s for s in held if s not in match]
        resp = self.server.create_logout_response(req, [BINDING_HTTP_REDIRECT], sign=False)
        return self.redirect(resp, self.sp_slo_url(sp), q.get("RelayState"), response=True)

    def handle_slo_response(self, raw_pairs, q):
        try:
            xml = self.server.unravel(q["SAMLResponse"], BINDING_HTTP_REDIRECT, "logout_response")
            resp = logout_response_from_string(xml)
            sp = resp.issuer.text.strip()
        except Exception as e:  # noqa: BLE001
            raise PeerError(f"invalid LogoutResponse: cannot decode: {e}") from e
        if not q.get("SigAlg") or not q.get("Signature"):
            raise PeerError("LogoutResponse must be signed")
        certs, _ = self.load_sp_metadata(sp)
        if not self.verify_redirect_signature(raw_pairs, q, certs, typ="SAMLResponse"):
            raise PeerError("bad LogoutResponse signature")
        if resp.in_response_to not in self.pending_logouts:
            raise PeerError(f"LogoutResponse answers no pending request: {resp.in_response_to!r}")
        if resp.destination != self.slo_url:
            raise PeerError(f"invalid LogoutResponse: Destination {resp.destination!r}")
        sp_of, session = self.pending_logouts.pop(resp.in_response_to)
        status = resp.status.status_code.value
        if status == "urn:oasis:names:tc:SAML:2.0:status:Success":
            self.sessions[sp_of] = [s for s in self.sessions.get(sp_of, []) if s != session]
        return status

    def logout_initiated(self, sp, user, mode):
        self.load_sp_metadata(sp)
        held = [s for s in self.sessions.get(sp, []) if s[0] == user]
        if not held:
            raise PeerError(f"no session of {user} at {sp}")
        name_id, index = held[-1]
        destination = self.sp_slo_url(sp)
        req_id, req = self.server.create_logout_request(
            destination, sp, name_id=NameID(format=NAMEID_FORMAT_EMAILADDRESS, text=name_id),
            session_indexes=[index], sign=False)
        # The session is forgotten once the SP confirms (so a refused attempt can be retried).
        self.pending_logouts[req_id] = (sp, held[-1])
        key = {"ok": "A", "unsigned": None, "rogue": "R"}.get(mode)
        if mode not in ("ok", "unsigned", "rogue"):
            raise PeerError(f"unknown logout mode {mode!r}")
        if key == "R":
            backend = self.server.sec.sec_backend  # pysaml2's RSACrypto: signs with .key
            with open(self.keys["R"]["key"], "rb") as f:
                rogue = serialization.load_pem_private_key(f.read(), password=None)
            saved = backend.key
            backend.key = rogue
            try:
                return self.redirect(req, destination, "peer-relay", response=False)
            finally:
                backend.key = saved
        return self.redirect(req, destination, "peer-relay", response=False, key=key)


def post_form(acs, response_xml, relay_state):
    b64 = base64.b64encode(response_xml.encode("utf-8")).decode("ascii")
    rs = ""
    if relay_state is not None:
        rs = f'\n<input type="hidden" name="RelayState" value="{html.escape(relay_state, quote=True)}"/>'
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>SAML POST</title></head><body>\n'
        f'<form method="post" action="{html.escape(acs, quote=True)}">\n'
        f'<input type="hidden" name="SAMLResponse" value="{b64}"/>{rs}\n'
        '<input type="submit" value="Continue"/>\n'
        "</form>\n</body></html>\n"
    )


class Handler(BaseHTTPRequestHandler):
    server_version = "PortcullisSamlIdpPeer/1"
    idp: Idp = None  # set in main

    def log_message(self, fmt, *args):
        sys.stderr.write("saml-idp %s\n" % (fmt % args))

    def _send(self, status, body, ctype, headers=None):
        data = body if isinstance(body, bytes) else body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802
        parts = urllib.parse.urlsplit(self.path)
        raw_pairs = {}
        for piece in parts.query.split("&"):
            if piece:
                k, _, v = piece.partition("=")
                raw_pairs.setdefault(urllib.parse.unquote_plus(k), v)
        q = {k: v[0] for k, v in urllib.parse.parse_qs(parts.query, keep_blank_values=True).items()}
        idp = self.idp
        try:
            if parts.path == "/metadata":
                which = q.get("certs", "AB").upper()
                if which not in idp.metadata_xml:
                    raise PeerError("certs must be A, B or AB")
                return self._send(200, idp.metadata_xml[which], "application/samlmetadata+xml")
            if parts.path == "/cert":
                key = q.get("key", "A").upper()
                if key not in idp.keys:
                    raise PeerError("key must be A, B or R")
                return self._send(200, idp.keys[key]["cert_pem"], "text/plain; charset=utf-8")
            if parts.path == "/sso":
                with idp.lock:
                    issuer, acs, req_id, how = idp.handle_sso(raw_pairs, q)
                    xml = idp.build_response(
                        issuer, acs, req_id, q.get("user") or "alice@example.com", q.get("mode") or "ok")
                return self._send(200, post_form(acs, xml, q.get("RelayState")), "text/html; charset=utf-8",
                                  {"X-Peer-Redirect-Sig": how})
            if parts.path == "/idp-initiated":
                sp = q.get("sp")
                if not sp:
                    raise PeerError("missing sp (SP entity id URL)")
                with idp.lock:
                    _, acs_list = idp.load_sp_metadata(sp)
                    acs = idp.default_acs(sp, acs_list)
                    xml = idp.build_response(
                        sp, acs, None, q.get("user") or "alice@example.com", q.get("mode") or "ok")
                return self._send(200, post_form(acs, xml, None), "text/html; charset=utf-8")
            if parts.path == "/slo":
                with idp.lock:
                    if q.get("SAMLRequest"):
                        to = idp.handle_slo_request(raw_pairs, q)
                        return self._send(303, "", "text/plain", {"Location": to})
                    if q.get("SAMLResponse"):
                        status = idp.handle_slo_response(raw_pairs, q)
                        return self._send(200, f"logged out: {status}\n", "text/plain; charset=utf-8")
                raise PeerError("missing SAMLRequest or SAMLResponse")
            if parts.path == "/logout-initiated":
                sp = q.get("sp")
                if not sp:
                    raise PeerError("missing sp (SP entity id URL)")
                with idp.lock:
                    to = idp.logout_initiated(sp, q.get("user") or "alice@example.com", q.get("mode") or "ok")
                return self._send(303, "", "text/plain", {"Location": to})
            if parts.path == "/sessions":
                held = idp.sessions.get(q.get("sp", ""), [])
                return self._send(200, "".join(f"{n} {i}\n" for n, i in held), "text/plain; charset=utf-8")
            return self._send(404, "not found\n", "text/plain; charset=utf-8")
        except PeerError as e:
            log.warning("400 %s: %s", parts.path, e)
            return self._send(400, f"{e}\n", "text/plain; charset=utf-8")
        except Exception as e:  # noqa: BLE001
            log.exception("500 %s", parts.path)
            return self._send(500, f"internal error: {e!r}\n", "text/plain; charset=utf-8")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0 = random free port)")
    args = ap.parse_args()
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING,
                        format="saml-idp %(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.INFO)

    httpd = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    httpd.daemon_threads = True
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with tempfile.TemporaryDirectory(prefix="saml-idp-peer-") as keydir:
        Handler.idp = Idp(base, keydir)
        sys.stdout.write(f"LISTENING {base}\n")
        sys.stdout.flush()
        try:
            httpd.serve_forever()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
