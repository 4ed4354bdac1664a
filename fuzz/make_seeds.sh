#!/usr/bin/env bash
# Regenerates the committed seed corpus under fuzz/corpus/ from the throwaway keys in
# fuzz/keys/ (fuzzing only: they sign and encrypt nothing outside these seeds).
#
#   bash fuzz/make_seeds.sh
#
# Needs openssl, xmlsec1 and python3. The signed seeds are signed with keys/idp-signing.key
# (the certificate the saml_response target's IdP metadata publishes); the encrypted one is
# encrypted to keys/sp-encryption.crt (whose key that target decrypts with). Timestamps are
# fixed, so the signed seeds reach samael's validity checks and stop there.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KEYS="$HERE/keys"
OUT="$HERE/corpus"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

for cmd in openssl xmlsec1 python3; do
    command -v "$cmd" >/dev/null 2>&1 || { echo "make_seeds.sh: $cmd is required" >&2; exit 1; }
done

# Must match fuzz_targets/saml_response.rs.
IDP=https://idp.fuzz.example/metadata
SP=https://sp.fuzz.example/t/fuzz
ACS="$SP/saml/acs"
SP_ENTITY="$SP/saml/metadata"
SLO="$SP/saml/slo"
P='xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol"'
A='xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion"'
D='xmlns:ds="http://www.w3.org/2000/09/xmldsig#"'

sig_template() { # reference id
    cat <<EOF
<ds:Signature $D><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/><ds:Reference URI="#$1"><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/><ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue></ds:DigestValue></ds:Reference></ds:SignedInfo><ds:SignatureValue></ds:SignatureValue><ds:KeyInfo><ds:X509Data><ds:X509Certificate>$(grep -v -- ----- "$KEYS/idp-signing.crt" | tr -d '\n')</ds:X509Certificate></ds:X509Data></ds:KeyInfo></ds:Signature>
EOF
}

assertion() { # id [signature template]
    printf '%s' "<saml:Assertion $A ID=\"$1\" Version=\"2.0\" IssueInstant=\"2026-01-01T00:00:00Z\"><saml:Issuer>$IDP</saml:Issuer>${2:-}<saml:Subject><saml:NameID Format=\"urn:oasis:names:tc:SAML:2.0:nameid-format:persistent\" NameQualifier=\"$IDP\" SPNameQualifier=\"$SP_ENTITY\">_u1</saml:NameID><saml:SubjectConfirmation Method=\"urn:oasis:names:tc:SAML:2.0:cm:bearer\"><saml:SubjectConfirmationData InResponseTo=\"pc1\" Recipient=\"$ACS\" NotOnOrAfter=\"2099-01-01T00:00:00Z\"/></saml:SubjectConfirmation></saml:Subject><saml:Conditions NotBefore=\"2026-01-01T00:00:00Z\" NotOnOrAfter=\"2099-01-01T00:00:00Z\"><saml:AudienceRestriction><saml:Audience>$SP_ENTITY</saml:Audience></saml:AudienceRestriction></saml:Conditions><saml:AuthnStatement AuthnInstant=\"2026-01-01T00:00:00Z\" SessionIndex=\"_s1\"><saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:Password</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement><saml:AttributeStatement><saml:Attribute Name=\"mail\"><saml:AttributeValue>user@fuzz.example</saml:AttributeValue></saml:Attribute></saml:AttributeStatement></saml:Assertion>"
}

response() { # id body [signature template]
    printf '%s' "<samlp:Response $P $A ID=\"$1\" Version=\"2.0\" IssueInstant=\"2026-01-01T00:00:00Z\" Destination=\"$ACS\" InResponseTo=\"pc1\"><saml:Issuer>$IDP</saml:Issuer>${3:-}<samlp:Status><samlp:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:Success\"/></samlp:Status>$2</samlp:Response>"
}

sign() { # file node-name(ns:local) -> signs in place
    xmlsec1 --sign --privkey-pem "$KEYS/idp-signing.key" --id-attr:ID "$2" --output "$1.signed" "$1" 2>"$TMP/xmlsec.err" ||
        { cat "$TMP/xmlsec.err" >&2; exit 1; }
    mv "$1.signed" "$1"
}

strip_decl() { python3 -c 'import sys; t=open(sys.argv[1]).read(); t=t.split("?>",1)[1] if t.startswith("<?xml") else t; open(sys.argv[1],"w").write(t.strip())' "$1"; }

ASSERTION_NS="urn:oasis:names:tc:SAML:2.0:assertion:Assertion"
RESPONSE_NS="urn:oasis:names:tc:SAML:2.0:protocol:Response"

# The signed assertion on its own, then inside a Response that is signed too.
assertion _a1 "$(sig_template _a1)" >"$TMP/assertion.xml"
sign "$TMP/assertion.xml" "$ASSERTION_NS"
strip_decl "$TMP/assertion.xml"
response _r1 "$(cat "$TMP/assertion.xml")" "$(sig_template _r1)" >"$TMP/signed.xml"
sign "$TMP/signed.xml" "$RESPONSE_NS"
strip_decl "$TMP/signed.xml"
# Only the assertion signed (what most IdPs send).
response _r2 "$(cat "$TMP/assertion.xml")" >"$TMP/assertion_signed.xml"

# The signed assertion, encrypted to the SP (RSA-OAEP SHA-256 / MGF1-SHA1, AES-128-CBC),
# in an unsigned Response (ADFS and Entra ID by default).
openssl rand 16 >"$TMP/cek"
openssl rand 16 >"$TMP/iv"
openssl x509 -in "$KEYS/sp-encryption.crt" -pubkey -noout >"$TMP/sp.pub"
openssl pkeyutl -encrypt -pubin -inkey "$TMP/sp.pub" -in "$TMP/cek" -out "$TMP/cek.enc" \
    -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha1
openssl enc -aes-128-cbc -K "$(xxd -p "$TMP/cek" | tr -d '\n')" -iv "$(xxd -p "$TMP/iv" | tr -d '\n')" \
    -in "$TMP/assertion.xml" -out "$TMP/body.enc"
DATA="$(cat "$TMP/iv" "$TMP/body.enc" | base64 -w0)"
KEY="$(base64 -w0 <"$TMP/cek.enc")"
ENC="<saml:EncryptedAssertion><xenc:EncryptedData xmlns:xenc=\"http://www.w3.org/2001/04/xmlenc#\" Type=\"http://www.w3.org/2001/04/xmlenc#Element\"><xenc:EncryptionMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#aes128-cbc\"/><ds:KeyInfo $D><xenc:EncryptedKey><xenc:EncryptionMethod Algorithm=\"http://www.w3.org/2009/xmlenc11#rsa-oaep\"><ds:DigestMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#sha256\"/></xenc:EncryptionMethod><xenc:CipherData><xenc:CipherValue>$KEY</xenc:CipherValue></xenc:CipherData></xenc:EncryptedKey></ds:KeyInfo><xenc:CipherData><xenc:CipherValue>$DATA</xenc:CipherValue></xenc:CipherData></xenc:EncryptedData></saml:EncryptedAssertion>"
response _r3 "$ENC" >"$TMP/encrypted.xml"

response _r4 "$(assertion _a4)" >"$TMP/unsigned.xml"

# Edge cases for the structural pre-check and the parsers behind it.
python3 - "$TMP" "$IDP" <<'EOF'
import sys
tmp, idp = sys.argv[1:3]
P = 'xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol"'
A = 'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion"'
D = 'xmlns:ds="http://www.w3.org/2000/09/xmldsig#"'
def w(name, text):
    open(f"{tmp}/{name}.xml", "w").write(text)
def resp(body, attrs=' ID="_r" InResponseTo="pc1"'):
    return f'<samlp:Response {P} {A}{attrs}><saml:Issuer>{idp}</saml:Issuer>{body}</samlp:Response>'
assertion = lambda i, sub="": f'<saml:Assertion ID="{i}"><saml:Issuer>{idp}</saml:Issuer><saml:Subject>{sub}</saml:Subject></saml:Assertion>'
w("doctype_entities", f'<?xml version="1.0"?><!DOCTYPE samlp:Response [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY x SYSTEM "file:///etc/passwd">]>' + resp(assertion("_a", "<saml:NameID>&c;&x;</saml:NameID>")))
w("deep_nesting", resp("<samlp:Extensions>" + "<e>" * 2000 + "</e>" * 2000 + "</samlp:Extensions>" + assertion("_a")))
# Found while fuzzing: a declaration on every nested level made shape() quadratic (now refused).
w("nested_namespaces", resp("<samlp:Extensions>" + "<e xmlns:p='urn:x'>" * 100 + "</e>" * 100 + "</samlp:Extensions>" + assertion("_a")))
w("comment_in_name_id", resp(assertion("_a", "<saml:NameID>user@fuzz.example<!---->.evil.example</saml:NameID>")))
w("cdata_and_refs", resp(assertion("_a", "<saml:NameID NameQualifier=\"a&amp;b&#x26;&#38;\">&lt;x&gt;<![CDATA[<y>]]>&#x1F600;</saml:NameID>")))
w("two_assertions_xsw", resp(assertion("_evil", "<saml:NameID>admin</saml:NameID>") + f'<samlp:Extensions>{assertion("_a", "<saml:NameID>user</saml:NameID>")}<ds:Signature {D}><ds:SignedInfo><ds:Reference URI="#_a"/></ds:SignedInfo></ds:Signature></samlp:Extensions>'))
w("lifted_signature", resp(f'<ds:Signature {D}><ds:SignedInfo><ds:Reference URI="#_other"/></ds:SignedInfo></ds:Signature>' + assertion("_a")))
w("encrypted_garbage", resp('<saml:EncryptedAssertion><xenc:EncryptedData xmlns:xenc="http://www.w3.org/2001/04/xmlenc#"><xenc:EncryptionMethod Algorithm="http://www.w3.org/2009/xmlenc11#aes256-gcm"/><xenc:CipherData><xenc:CipherValue>AAAA</xenc:CipherValue></xenc:CipherData></xenc:EncryptedData></saml:EncryptedAssertion>'))
w("prefix_rebinding", f'<p:Response xmlns:p="urn:oasis:names:tc:SAML:2.0:protocol" xmlns="urn:oasis:names:tc:SAML:2.0:assertion" ID="_r"><Issuer>{idp}</Issuer><Assertion ID="_a" xmlns:p="urn:other"><p:Subject/><Issuer xmlns="">x</Issuer></Assertion></p:Response>')
w("unclosed", resp(assertion("_a"))[:-20])
w("pi_and_bom", "\ufeff<?xml version=\"1.0\" encoding=\"UTF-16\"?><?pi data?>" + resp(assertion("_a")))
EOF

# LogoutRequest and LogoutResponse (the SLO endpoint's messages), and their redirect-binding
# query strings (DEFLATE, base64, URL-encoded; a dummy signature).
LR="<samlp:LogoutRequest $P $A ID=\"_l1\" Version=\"2.0\" IssueInstant=\"2026-01-01T00:00:00Z\" Destination=\"$SLO\" NotOnOrAfter=\"2099-01-01T00:00:00Z\"><saml:Issuer>$IDP</saml:Issuer><saml:NameID Format=\"urn:oasis:names:tc:SAML:2.0:nameid-format:persistent\" NameQualifier=\"$IDP\" SPNameQualifier=\"$SP_ENTITY\">_u1</saml:NameID><samlp:SessionIndex>_s1</samlp:SessionIndex><samlp:SessionIndex>_s2</samlp:SessionIndex></samlp:LogoutRequest>"
LRESP="<samlp:LogoutResponse $P $A ID=\"_l2\" Version=\"2.0\" IssueInstant=\"2026-01-01T00:00:00Z\" Destination=\"$SLO\" InResponseTo=\"pc1\"><saml:Issuer>$IDP</saml:Issuer><samlp:Status><samlp:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:Responder\"><samlp:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:PartialLogout\"/></samlp:StatusCode></samlp:Status></samlp:LogoutResponse>"
printf '%s' "$LR" >"$TMP/logout_request.xml"
printf '%s' "$LRESP" >"$TMP/logout_response.xml"
printf '%s' "<samlp:LogoutRequest $P $A ID=\"_l3\" Version=\"2.0\" IssueInstant=\"2026-01-01T00:00:00Z\"><saml:Issuer>$IDP</saml:Issuer><saml:EncryptedID><xenc:EncryptedData xmlns:xenc=\"http://www.w3.org/2001/04/xmlenc#\"/></saml:EncryptedID></samlp:LogoutRequest>" >"$TMP/logout_encrypted_id.xml"
printf '%s' "<samlp:LogoutRequest $P $A ID=\"_l4\" Version=\"2.0\" IssueInstant=\"not-a-time\"><saml:Issuer>a<!-- c -->b</saml:Issuer><saml:NameID><![CDATA[_u]]>&amp;1</saml:NameID><saml:Issuer>twice</saml:Issuer></samlp:LogoutRequest>" >"$TMP/logout_odd.xml"
python3 - "$TMP" <<'EOF'
import base64, sys, urllib.parse, zlib
tmp = sys.argv[1]
def deflate(b):
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(b) + c.flush()
def q(s):
    return urllib.parse.quote(s, safe="")
sig = base64.b64encode(b"\x00" * 256).decode()
alg = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
for name, param in (("logout_request", "SAMLRequest"), ("logout_response", "SAMLResponse")):
    msg = base64.b64encode(deflate(open(f"{tmp}/{name}.xml", "rb").read())).decode()
    open(f"{tmp}/{name}.query", "w").write(f"{param}={q(msg)}&RelayState=rs1&SigAlg={q(alg)}&Signature={q(sig)}")
# Unsigned; a bomb that inflates past the 64 KiB limit; a repeated parameter.
msg = base64.b64encode(deflate(open(f"{tmp}/logout_request.xml", "rb").read())).decode()
open(f"{tmp}/unsigned.query", "w").write(f"SAMLRequest={q(msg)}")
bomb = base64.b64encode(deflate(b"<" + b"a" * 200000 + b">")).decode()
open(f"{tmp}/inflate_bomb.query", "w").write(f"SAMLResponse={q(bomb)}")
open(f"{tmp}/repeated.query", "w").write(f"SAMLRequest={q(msg)}&SAMLRequest=x&SigAlg=&Signature=%%zz")
EOF

rm -rf "$OUT"
mkdir -p "$OUT"/{saml_shape,saml_response,saml_logout,saml_slo_query}
for f in signed assertion_signed encrypted unsigned doctype_entities deep_nesting nested_namespaces \
    comment_in_name_id cdata_and_refs two_assertions_xsw lifted_signature encrypted_garbage prefix_rebinding unclosed pi_and_bom; do
    cp "$TMP/$f.xml" "$OUT/saml_shape/$f.xml"
done
for f in signed assertion_signed encrypted unsigned comment_in_name_id two_assertions_xsw lifted_signature \
    encrypted_garbage; do
    cp "$TMP/$f.xml" "$OUT/saml_response/$f.xml"
done
for f in logout_request logout_response logout_encrypted_id logout_odd doctype_entities; do
    cp "$TMP/$f.xml" "$OUT/saml_logout/$f.xml"
done
for f in logout_request logout_response unsigned inflate_bomb repeated; do
    cp "$TMP/$f.query" "$OUT/saml_slo_query/$f.query"
done
du -sh "$OUT"
