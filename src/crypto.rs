//! Small cryptographic primitives shared by the domain modules: random tokens, digests,
//! constant-time comparison, and authenticated encryption of secrets at rest with the
//! master key. Everything here delegates to OpenSSL (already linked for josekit); nothing
//! here knows about HTTP or the database.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use openssl::hash::{hash, MessageDigest};
use openssl::pkey::PKey;
use openssl::sign::Signer;
use openssl::symm::{decrypt_aead, encrypt_aead, Cipher};

/// Version byte of the at-rest ciphertext format: `v1 || nonce(12) || tag(16) || ciphertext`.
const SEALED_V1: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("ciphertext is malformed or was not sealed with this master key")]
    Unseal,
    #[error(transparent)]
    OpenSsl(#[from] openssl::error::ErrorStack),
}

/// `n` bytes from the operating system's CSPRNG.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    // OpenSSL's RAND_bytes only fails when the CSPRNG cannot be seeded, in which case no
    // secret we could produce is safe; fall back to the OS generator of uuid (getrandom).
    if openssl::rand::rand_bytes(&mut buf).is_err() {
        for chunk in buf.chunks_mut(16) {
            let r = uuid::Uuid::new_v4().into_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
    }
    buf
}

/// A URL-safe random token carrying `bytes * 8` bits of entropy.
pub fn random_token(bytes: usize) -> String {
    URL_SAFE_NO_PAD.encode(random_bytes(bytes))
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    if let Ok(d) = hash(MessageDigest::sha256(), data) {
        out.copy_from_slice(&d);
    }
    out
}

/// The digest under which high-entropy secrets (client secrets, refresh tokens, codes,
/// session ids) are stored: hex SHA-256. Their entropy (≥ 256 bits) makes a slow hash
/// pointless, and a fast one keeps the token endpoint fast.
pub fn token_digest(token: &str) -> String {
    hex(&sha256(token.as_bytes()))
}

pub fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 0xf) as usize] as char);
    }
    s
}

/// HMAC-SHA256 of `data` under `key`.
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let result = PKey::hmac(key).and_then(|k| {
        let mut signer = Signer::new(MessageDigest::sha256(), &k)?;
        signer.update(data)?;
        signer.sign_to_vec()
    });
    result.unwrap_or_default()
}

/// Constant-time equality of two byte strings (length is not secret).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && openssl::memcmp::eq(a, b)
}

pub fn b64url(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

pub fn b64url_decode(data: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(data).ok()
}

pub fn b64_decode(data: &str) -> Option<Vec<u8>> {
    STANDARD.decode(data.trim()).ok()
}

pub fn b64(data: &[u8]) -> String {
    STANDARD.encode(data)
}

/// The 32-byte key that seals secrets at rest (AES-256-GCM). `aad` binds a ciphertext to
/// the row it belongs to, so a sealed value copied to another row does not open.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

impl MasterKey {
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(bytes).ok().map(Self)
    }

    pub fn generate() -> Self {
        let mut k = [0u8; 32];
        k.copy_from_slice(&random_bytes(32));
        Self(k)
    }

    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// A key for another purpose (CSRF, cookies), derived so that it never equals the
    /// encryption key itself.
    pub fn derive(&self, purpose: &str) -> Vec<u8> {
        hmac_sha256(&self.0, purpose.as_bytes())
    }

    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let nonce = random_bytes(12);
        let mut tag = [0u8; 16];
        let ct = encrypt_aead(
            Cipher::aes_256_gcm(),
            &self.0,
            Some(&nonce),
            aad,
            plaintext,
            &mut tag,
        )?;
        let mut out = Vec::with_capacity(1 + 12 + 16 + ct.len());
        out.push(SEALED_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&tag);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < 29 || sealed[0] != SEALED_V1 {
            return Err(CryptoError::Unseal);
        }
        let (nonce, rest) = sealed[1..].split_at(12);
        let (tag, ct) = rest.split_at(16);
        decrypt_aead(Cipher::aes_256_gcm(), &self.0, Some(nonce), aad, ct, tag)
            .map_err(|_| CryptoError::Unseal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_the_same_key_and_row() {
        let key = MasterKey::generate();
        let sealed = key.seal(b"private key", b"kid-1").unwrap();
        assert_eq!(key.open(&sealed, b"kid-1").unwrap(), b"private key");
        assert!(key.open(&sealed, b"kid-2").is_err());
        assert!(MasterKey::generate().open(&sealed, b"kid-1").is_err());
    }

    #[test]
    fn random_tokens_carry_the_requested_entropy() {
        let t = random_token(32);
        assert_eq!(t.len(), 43);
        assert_ne!(t, random_token(32));
    }

    #[test]
    fn constant_time_eq_rejects_different_lengths() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"abc", b"abd"));
    }
}
