//! Authenticated encryption of small secrets at rest (TOTP secrets now, customer PII later),
//! so a copy of the database without the master key reveals nothing and cannot be altered
//! unnoticed. AES-256-GCM with a random nonce per message.
//!
//! Sealed layout: version byte `1` ‖ 12-byte nonce ‖ ciphertext ‖ 16-byte tag. The version
//! byte leaves room to change algorithm later without guessing what old rows contain.

use std::fmt;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, Nonce, Payload};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Length of a master key in bytes.
pub const KEY_LEN: usize = 32;
const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// Shortest valid sealed value: version, nonce and tag around an empty plaintext.
const MIN_SEALED_LEN: usize = 1 + NONCE_LEN + TAG_LEN;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("the system random source failed: {0}")]
    Random(getrandom::Error),
    #[error("a master key must be exactly 32 bytes, got {0}")]
    KeyLength(usize),
    #[error("a master key must be 64 hex digits")]
    KeyHex,
    #[error("sealed data is truncated")]
    Truncated,
    #[error("sealed data has unknown version {0}")]
    UnknownVersion(u8),
    /// Deliberately one error for wrong key, wrong associated data and tampering: the
    /// distinction is not knowable (GCM only says the tag did not match).
    #[error("sealed data could not be opened (wrong key, wrong associated data or tampered)")]
    Open,
    #[error("data is too large to seal")]
    TooLarge,
}

/// A 256-bit key. Its `Debug` never shows the bytes.
#[derive(Clone)]
pub struct MasterKey([u8; KEY_LEN]);

impl MasterKey {
    /// A fresh key from OS randomness.
    pub fn generate() -> Result<Self, SealError> {
        let mut bytes = [0u8; KEY_LEN];
        getrandom::fill(&mut bytes).map_err(SealError::Random)?;
        Ok(Self(bytes))
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SealError> {
        <[u8; KEY_LEN]>::try_from(bytes)
            .map(Self)
            .map_err(|_| SealError::KeyLength(bytes.len()))
    }

    /// Lowercase hex, the form kept in the data directory.
    #[must_use]
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses [`Self::to_hex`] output; surrounding whitespace (a trailing newline in a key
    /// file) is ignored.
    pub fn from_hex(text: &str) -> Result<Self, SealError> {
        let bytes = hex::decode(text.trim()).map_err(|_| SealError::KeyHex)?;
        Self::from_bytes(&bytes)
    }

    /// An independent sub-key, HMAC-SHA256(master, purpose), so one stored master key yields
    /// separate keys per purpose or per store and a leak of one sub-key exposes no other.
    #[must_use]
    pub fn derive(&self, purpose: &str) -> Self {
        // HMAC zero-pads keys shorter than the hash block (RFC 2104 §2), so padding here gives
        // exactly HMAC(master, ·) while using the constructor that cannot fail.
        let mut key = hmac::digest::Key::<Hmac<Sha256>>::default();
        for (dst, src) in key.iter_mut().zip(self.0) {
            *dst = src;
        }
        let mut mac = <Hmac<Sha256> as KeyInit>::new(&key);
        mac.update(purpose.as_bytes());
        Self(mac.finalize().into_bytes().into())
    }

    /// A keyed blind index: HMAC-SHA256(key, value). Equal values give equal indexes, so a
    /// sealed column can be looked up, yet the index reveals nothing without the key.
    #[must_use]
    pub fn blind_index(&self, value: &[u8]) -> Vec<u8> {
        let mut key = hmac::digest::Key::<Hmac<Sha256>>::default();
        for (dst, src) in key.iter_mut().zip(self.0) {
            *dst = src;
        }
        let mut mac = <Hmac<Sha256> as KeyInit>::new(&key);
        mac.update(value);
        mac.finalize().into_bytes().to_vec()
    }

    /// Encrypts `plaintext` bound to `associated_data` (e.g. `b"totp:usr_…"`), so the result
    /// opens only with the same associated data and cannot be moved to another row.
    pub fn seal(&self, plaintext: &[u8], associated_data: &[u8]) -> Result<Vec<u8>, SealError> {
        // Random 96-bit nonces: collision odds stay negligible far beyond the number of
        // secrets one key will ever seal.
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(SealError::Random)?;
        let ciphertext = self
            .cipher()
            .encrypt(
                &Nonce::<Aes256Gcm>::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: associated_data,
                },
            )
            .map_err(|_| SealError::TooLarge)?;
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        sealed.push(VERSION);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        Ok(sealed)
    }

    /// Reverses [`Self::seal`]; fails unless key, associated data and every byte match.
    pub fn open(&self, sealed: &[u8], associated_data: &[u8]) -> Result<Vec<u8>, SealError> {
        let (&version, rest) = sealed.split_first().ok_or(SealError::Truncated)?;
        if version != VERSION {
            return Err(SealError::UnknownVersion(version));
        }
        if sealed.len() < MIN_SEALED_LEN {
            return Err(SealError::Truncated);
        }
        let (nonce, ciphertext) = rest.split_first_chunk::<NONCE_LEN>().ok_or(SealError::Truncated)?;
        self.cipher()
            .decrypt(
                &Nonce::<Aes256Gcm>::from(*nonce),
                Payload {
                    msg: ciphertext,
                    aad: associated_data,
                },
            )
            .map_err(|_| SealError::Open)
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(&self.0.into())
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AD: &[u8] = b"totp:usr_0192";

    #[test]
    fn round_trip() {
        let key = MasterKey::generate().unwrap();
        for plaintext in [&b""[..], b"x", b"a 20-byte totp secr", &[0xAB; 1000]] {
            let sealed = key.seal(plaintext, AD).unwrap();
            assert_eq!(sealed.len(), MIN_SEALED_LEN + plaintext.len());
            assert_eq!(sealed.first(), Some(&VERSION));
            assert_eq!(key.open(&sealed, AD).unwrap(), plaintext);
        }
    }

    #[test]
    fn wrong_key_or_associated_data_fails() {
        let key = MasterKey::generate().unwrap();
        let other = MasterKey::generate().unwrap();
        let sealed = key.seal(b"secret", AD).unwrap();
        assert_eq!(other.open(&sealed, AD), Err(SealError::Open));
        assert_eq!(key.open(&sealed, b"totp:usr_0193"), Err(SealError::Open));
        assert_eq!(key.open(&sealed, b""), Err(SealError::Open));
    }

    #[test]
    fn any_flipped_bit_fails() {
        let key = MasterKey::generate().unwrap();
        let sealed = key.seal(b"secret", AD).unwrap();
        for index in 1..sealed.len() {
            for bit in 0..8 {
                let mut tampered = sealed.clone();
                tampered[index] ^= 1 << bit;
                assert_eq!(key.open(&tampered, AD), Err(SealError::Open), "byte {index} bit {bit}");
            }
        }
    }

    #[test]
    fn truncated_input_fails() {
        let key = MasterKey::generate().unwrap();
        let sealed = key.seal(b"secret", AD).unwrap();
        assert_eq!(key.open(&[], AD), Err(SealError::Truncated));
        for len in 1..MIN_SEALED_LEN {
            assert_eq!(key.open(&sealed[..len], AD), Err(SealError::Truncated), "len {len}");
        }
        for len in MIN_SEALED_LEN..sealed.len() {
            assert_eq!(key.open(&sealed[..len], AD), Err(SealError::Open), "len {len}");
        }
    }

    #[test]
    fn unknown_version_fails() {
        let key = MasterKey::generate().unwrap();
        let mut sealed = key.seal(b"secret", AD).unwrap();
        for version in [0, 2, 0xFF] {
            sealed[0] = version;
            assert_eq!(key.open(&sealed, AD), Err(SealError::UnknownVersion(version)));
        }
    }

    #[test]
    fn sealing_twice_differs() {
        let key = MasterKey::generate().unwrap();
        let a = key.seal(b"same", AD).unwrap();
        let b = key.seal(b"same", AD).unwrap();
        assert_ne!(a, b);
        assert_ne!(a.get(1..1 + NONCE_LEN), b.get(1..1 + NONCE_LEN));
    }

    #[test]
    fn derive_is_deterministic_purpose_separated_and_real_hmac() {
        let master = MasterKey::from_hex(&"42".repeat(KEY_LEN)).unwrap();
        let totp = master.derive("totp");
        assert_eq!(totp.to_hex(), master.derive("totp").to_hex());
        assert_ne!(totp.to_hex(), master.derive("pii").to_hex());
        assert_ne!(totp.to_hex(), master.to_hex());
        assert_ne!(totp.to_hex(), MasterKey::generate().unwrap().derive("totp").to_hex());

        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&[0x42; KEY_LEN]).unwrap();
        mac.update(b"totp");
        assert_eq!(totp.to_hex(), hex::encode(mac.finalize().into_bytes()));

        // Sub-keys cannot open each other's data.
        let sealed = totp.seal(b"secret", AD).unwrap();
        assert_eq!(master.derive("pii").open(&sealed, AD), Err(SealError::Open));
        assert_eq!(master.open(&sealed, AD), Err(SealError::Open));
        assert_eq!(master.derive("totp").open(&sealed, AD).unwrap(), b"secret");
    }

    #[test]
    fn key_encoding_and_redaction() {
        let key = MasterKey::generate().unwrap();
        let hex = key.to_hex();
        assert_eq!(hex.len(), 2 * KEY_LEN);
        assert_eq!(MasterKey::from_hex(&format!("{hex}\n")).unwrap().to_hex(), hex);
        assert_eq!(MasterKey::from_bytes(&[0; 31]).unwrap_err(), SealError::KeyLength(31));
        assert_eq!(MasterKey::from_bytes(&[0; 33]).unwrap_err(), SealError::KeyLength(33));
        assert_eq!(MasterKey::from_hex("zz").unwrap_err(), SealError::KeyHex);
        assert_eq!(
            MasterKey::from_hex(&"ab".repeat(31)).unwrap_err(),
            SealError::KeyLength(31)
        );
        assert_eq!(format!("{key:?}"), "MasterKey(<redacted>)");
        assert!(!format!("{key:?}").contains(&hex));
    }
}
