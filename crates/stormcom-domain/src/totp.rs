//! RFC 6238 one-time codes for staff MFA. The totp-rs crate does the HMAC arithmetic; this
//! module fixes StormCom's parameters (SHA-1, 6 digits, 30 s, the form every authenticator
//! app supports) and adds what the crate leaves to callers: replay refusal and recovery codes.

use std::fmt;

use sha2::{Digest, Sha256};
use totp_rs::{Algorithm, Builder, Totp};

/// Issuer shown in authenticator apps next to the account.
pub const ISSUER: &str = "StormCom";
/// Length of a code.
pub const DIGITS: usize = 6;
/// Seconds per time step.
pub const STEP_SECONDS: u64 = 30;
/// Size of a generated secret: 160 bits, the size RFC 4226 §4 recommends.
pub const SECRET_LEN: usize = 20;
/// RFC 4226 §4 forbids secrets under 128 bits.
const MIN_SECRET_LEN: usize = 16;
/// Anything longer is not a secret we issued.
const MAX_SECRET_LEN: usize = 64;
/// How many recovery codes a user receives at once.
pub const RECOVERY_CODE_COUNT: usize = 10;
/// Crockford's base32 alphabet (no i, l, o, u): 32 symbols, so 12 of them carry exactly
/// 60 random bits, and the letters people misread are absent (see [`recovery_code_digest`]).
const RECOVERY_ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
const RECOVERY_GROUPS: usize = 3;
const RECOVERY_GROUP_LEN: usize = 4;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TotpError {
    #[error("the system random source failed: {0}")]
    Random(getrandom::Error),
    #[error("a TOTP secret must be 16 to 64 bytes long, got {0}")]
    SecretLength(usize),
}

/// The shared secret of one staff member's authenticator. Its `Debug` never shows the bytes.
#[derive(Clone)]
pub struct TotpSecret(Vec<u8>);

impl TotpSecret {
    /// A fresh 160-bit secret from OS randomness.
    pub fn generate() -> Result<Self, TotpError> {
        let mut bytes = vec![0u8; SECRET_LEN];
        getrandom::fill(&mut bytes).map_err(TotpError::Random)?;
        Ok(Self(bytes))
    }

    /// A secret loaded back from storage (after unsealing).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, TotpError> {
        if (MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&bytes.len()) {
            Ok(Self(bytes))
        } else {
            Err(TotpError::SecretLength(bytes.len()))
        }
    }

    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Unpadded RFC 4648 base32, for users who type the secret instead of scanning a QR code.
    #[must_use]
    pub fn base32(&self) -> String {
        self.totp().secret().to_base32()
    }

    /// The `otpauth://` Key URI that enrolment QR codes encode.
    ///
    /// Built here rather than with `Totp::to_url` because that refuses an account name
    /// containing `:`; percent-encoding the label keeps this infallible for any email.
    #[must_use]
    pub fn otpauth_uri(&self, account_email: &str) -> String {
        let issuer = percent_encode(ISSUER);
        format!(
            "otpauth://totp/{issuer}:{account}?secret={secret}&issuer={issuer}\
             &algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
            account = percent_encode(account_email),
            secret = self.base32(),
        )
    }

    fn totp(&self) -> Totp {
        // Skew 0: `verify` walks the ±1 window itself so it can see every matching step.
        // The parameters are constants within totp-rs's limits, so the unchecked build is safe.
        Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(6)
            .with_skew(0)
            .with_step_duration(STEP_SECONDS)
            .with_secret(self.0.as_slice())
            .build_noncompliant()
    }
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret(<redacted>)")
    }
}

/// The code for the time step containing `now_unix`.
#[must_use]
pub fn generate_at(secret: &TotpSecret, now_unix: u64) -> String {
    secret.totp().generate(now_unix).to_string()
}

/// Checks `code` against the current step and one step either side (clock skew).
///
/// Returns the matched step (`unix / 30`) only when it is later than `last_used_step`, so the
/// caller can store it and each code is accepted at most once (RFC 6238 §5.2). Comparison is
/// constant-time (totp-rs compares tokens with `constant_time_eq`).
#[must_use]
pub fn verify(secret: &TotpSecret, code: &str, now_unix: u64, last_used_step: i64) -> Option<i64> {
    let code = code.trim();
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let totp = secret.totp();
    let current = now_unix / STEP_SECONDS;
    // Every candidate is checked (no early exit) and the latest match wins: if one code were
    // valid for two steps, recording the earlier one would let it be replayed for the later.
    let mut matched = None;
    for step in current.saturating_sub(1)..=current.saturating_add(1) {
        if let Some(time) = step.checked_mul(STEP_SECONDS)
            && totp.check(code, time).is_some()
        {
            matched = Some(step);
        }
    }
    let step = i64::try_from(matched?).ok()?;
    (step > last_used_step).then_some(step)
}

/// Ten fresh single-use recovery codes like `7h2k-x9qm-3fcd` (60 random bits each).
pub fn generate_recovery_codes() -> Result<Vec<String>, TotpError> {
    let mut codes = Vec::with_capacity(RECOVERY_CODE_COUNT);
    while codes.len() < RECOVERY_CODE_COUNT {
        let code = random_recovery_code()?;
        // A repeat is astronomically unlikely, but a duplicate would silently be one code fewer.
        if !codes.contains(&code) {
            codes.push(code);
        }
    }
    Ok(codes)
}

fn random_recovery_code() -> Result<String, TotpError> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(TotpError::Random)?;
    let mut bits = u64::from_le_bytes(bytes);
    let mut code = String::with_capacity(RECOVERY_GROUPS * (RECOVERY_GROUP_LEN + 1));
    for i in 0..RECOVERY_GROUPS * RECOVERY_GROUP_LEN {
        if i > 0 && i % RECOVERY_GROUP_LEN == 0 {
            code.push('-');
        }
        // Five bits index the 32-symbol alphabet exactly, so every symbol is equally likely.
        code.push(char::from(RECOVERY_ALPHABET[(bits & 0x1f) as usize]));
        bits >>= 5;
    }
    Ok(code)
}

/// SHA-256 of a recovery code, the only form stored.
///
/// The code is normalised first so users may type it with or without dashes, spaces or capitals;
/// `o`, `i` and `l` (absent from the alphabet) are read as the `0` and `1` they were mistaken for.
#[must_use]
pub fn recovery_code_digest(code: &str) -> Vec<u8> {
    let normalised: String = code
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| match c.to_ascii_lowercase() {
            'o' => '0',
            'i' | 'l' => '1',
            other => other,
        })
        .collect();
    Sha256::digest(normalised.as_bytes()).to_vec()
}

/// Percent-encodes everything but RFC 3986 unreserved characters, as the Key URI format expects.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc_secret() -> TotpSecret {
        TotpSecret::from_bytes(b"12345678901234567890".to_vec()).unwrap()
    }

    #[test]
    fn rfc6238_sha1_vectors_truncated_to_six_digits() {
        let secret = rfc_secret();
        for (time, code) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_111_111_111, "050471"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
        ] {
            assert_eq!(generate_at(&secret, time), code, "T={time}");
            let step = i64::try_from(time / STEP_SECONDS).unwrap();
            assert_eq!(verify(&secret, code, time, -1), Some(step), "T={time}");
        }
    }

    #[test]
    fn accepts_one_step_of_skew_either_way_but_not_two() {
        let secret = TotpSecret::generate().unwrap();
        let now = 1_700_000_015;
        let step = i64::try_from(now / STEP_SECONDS).unwrap();
        assert_eq!(verify(&secret, &generate_at(&secret, now), now, 0), Some(step));
        assert_eq!(verify(&secret, &generate_at(&secret, now - 30), now, 0), Some(step - 1));
        assert_eq!(verify(&secret, &generate_at(&secret, now + 30), now, 0), Some(step + 1));
        assert_eq!(verify(&secret, &generate_at(&secret, now - 60), now, 0), None);
        assert_eq!(verify(&secret, &generate_at(&secret, now + 60), now, 0), None);
    }

    #[test]
    fn each_step_is_accepted_once() {
        let secret = TotpSecret::generate().unwrap();
        let now = 1_700_000_000;
        let code = generate_at(&secret, now);
        let step = verify(&secret, &code, now, 0).unwrap();
        assert_eq!(verify(&secret, &code, now, step), None);
        assert_eq!(verify(&secret, &code, now + 20, step), None);
        // An older code is refused once a later step has been used.
        let older = generate_at(&secret, now - 30);
        assert_eq!(verify(&secret, &older, now, step), None);
        // The next step's code still works.
        let next = generate_at(&secret, now + 30);
        assert_eq!(verify(&secret, &next, now + 30, step), Some(step + 1));
    }

    #[test]
    fn input_is_trimmed_and_malformed_codes_refused() {
        let secret = rfc_secret();
        assert_eq!(verify(&secret, " 287082\n", 59, -1), Some(1));
        for bad in ["", "28708", "2870820", "28708a", "+87082", "287 082", "２８７０８２"] {
            assert_eq!(verify(&secret, bad, 59, -1), None, "{bad:?}");
        }
    }

    #[test]
    fn early_times_do_not_underflow() {
        let secret = rfc_secret();
        let code = generate_at(&secret, 0);
        assert_eq!(verify(&secret, &code, 0, -1), Some(0));
        assert_eq!(verify(&secret, &code, 0, 0), None);
    }

    #[test]
    fn secrets_are_random_redacted_and_length_checked() {
        let a = TotpSecret::generate().unwrap();
        let b = TotpSecret::generate().unwrap();
        assert_eq!(a.as_bytes().len(), SECRET_LEN);
        assert_ne!(a.as_bytes(), b.as_bytes());
        assert_eq!(format!("{a:?}"), "TotpSecret(<redacted>)");
        assert_eq!(
            TotpSecret::from_bytes(vec![0; 15]).unwrap_err(),
            TotpError::SecretLength(15)
        );
        assert_eq!(
            TotpSecret::from_bytes(vec![0; 65]).unwrap_err(),
            TotpError::SecretLength(65)
        );
        assert!(TotpSecret::from_bytes(a.as_bytes().to_vec()).is_ok());
    }

    #[test]
    fn base32_and_otpauth_uri_are_what_authenticator_apps_read() {
        let secret = rfc_secret();
        assert_eq!(secret.base32(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        let uri = secret.otpauth_uri("ana+mfa@example.com");
        assert_eq!(
            uri,
            "otpauth://totp/StormCom:ana%2Bmfa%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=StormCom&algorithm=SHA1&digits=6&period=30"
        );
        let parsed = Totp::from_url(&uri).unwrap();
        assert_eq!(parsed.issuer(), Some(ISSUER));
        assert_eq!(parsed.account_name(), "ana+mfa@example.com");
        assert_eq!(parsed.secret().as_bytes(), secret.as_bytes());
        assert_eq!(parsed.algorithm(), Algorithm::SHA1);
        assert_eq!((parsed.digits(), parsed.step()), (6, 30));
        assert_eq!(parsed.generate(59).to_string(), "287082");
    }

    #[test]
    fn recovery_codes_are_unique_well_formed_and_strong() {
        let codes = generate_recovery_codes().unwrap();
        assert_eq!(codes.len(), RECOVERY_CODE_COUNT);
        let mut unique = codes.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), codes.len());
        for code in &codes {
            assert_eq!(code.len(), 14, "{code}");
            let groups: Vec<&str> = code.split('-').collect();
            assert_eq!(groups.len(), 3, "{code}");
            assert!(groups.iter().all(|g| g.len() == 4), "{code}");
            assert!(
                code.bytes()
                    .filter(|b| *b != b'-')
                    .all(|b| RECOVERY_ALPHABET.contains(&b)),
                "{code}"
            );
        }
        let fresh = generate_recovery_codes().unwrap();
        assert!(fresh.iter().all(|c| !codes.contains(c)));
    }

    #[test]
    fn recovery_digest_ignores_dashes_spaces_case_and_confusables() {
        let digest = recovery_code_digest("7h2k-x9qm-3fc1");
        assert_eq!(digest.len(), 32);
        for typed in [
            "7h2kx9qm3fc1",
            " 7H2K-X9QM-3FC1 ",
            "7h2k x9qm 3fc1",
            "7h2k-x9qm-3fcl",
            "7H2K-X9QM-3FCI",
        ] {
            assert_eq!(recovery_code_digest(typed), digest, "{typed:?}");
        }
        assert_eq!(
            recovery_code_digest("0000-0000-0000"),
            recovery_code_digest("oooo-OOOO-0000")
        );
        assert_ne!(recovery_code_digest("7h2k-x9qm-3fc2"), digest);
    }
}
