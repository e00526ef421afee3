//! The last line of defence for log output. Code is meant to keep secrets and personal
//! data out of log events (redacting types, no bodies or headers in logs); this writer
//! catches what slips through anyway, in every formatted line: token values (`scs_…`,
//! `sc_…`, cart secrets `cs_…`, `whsec_…`), `Bearer …` and `Authorization` values, email addresses and
//! card-like numbers (13–19 digits, Luhn-valid). One precompiled regex, one pass per line;
//! lines without a match are written unchanged, without a copy.

use std::borrow::Cow;
use std::io::{self, Write};
use std::sync::LazyLock;

use regex::{Captures, Regex};
use tracing_subscriber::fmt::MakeWriter;

/// ASCII classes and ASCII word boundaries keep the regex on its fast DFA engines.
const PATTERN: &str = r#"(?x)
    (?P<auth>(?i:authorization)[\\"']*\s*[:=]\s*[\\"']*)[^"'\\\r\n,}]+
  | (?P<bearer>(?i:bearer)[\x20\t]+)[A-Za-z0-9._~+/=-]+
  | (?P<token>(?-u:\b)(?:scs|sc|cs|whsec)_)[A-Za-z0-9_-]{8,}
  | [A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}
  | (?P<digits>(?-u:\b)[0-9](?:[\x20-]?[0-9]){12,18}(?-u:\b))
"#;

static MASK: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(PATTERN).ok());

/// The text with every match masked. A line is withheld entirely if the pattern could
/// not be compiled (it is a constant, tested below): fail closed.
#[must_use]
pub fn redact(text: &str) -> Cow<'_, str> {
    let Some(mask) = MASK.as_ref() else {
        return Cow::Borrowed("[log line withheld: redaction unavailable]\n");
    };
    mask.replace_all(text, |c: &Captures<'_>| {
        let whole = c.get(0).map_or("", |m| m.as_str());
        if let Some(prefix) = c.name("auth").or_else(|| c.name("bearer")).or_else(|| c.name("token")) {
            format!("{}[redacted]", prefix.as_str())
        } else if c.name("digits").is_some() {
            if luhn_valid(whole) {
                "[card]".to_owned()
            } else {
                whole.to_owned()
            }
        } else {
            "[email]".to_owned()
        }
    })
}

/// The Luhn checksum of the digits in `text` (separators ignored).
fn luhn_valid(text: &str) -> bool {
    let mut sum = 0;
    for (i, digit) in text
        .bytes()
        .rev()
        .filter(u8::is_ascii_digit)
        .map(|b| u32::from(b - b'0'))
        .enumerate()
    {
        sum += if i % 2 == 1 {
            let doubled = digit * 2;
            if doubled > 9 { doubled - 9 } else { doubled }
        } else {
            digit
        };
    }
    sum % 10 == 0
}

/// Wraps a [`MakeWriter`] so each formatted event is redacted before it is written.
#[derive(Debug, Clone, Default)]
pub struct Redacting<M>(pub M);

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for Redacting<M> {
    type Writer = RedactingWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter::new(self.0.make_writer())
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        RedactingWriter::new(self.0.make_writer_for(meta))
    }
}

/// Collects one event (the formatter writes an event, then drops its writer) and
/// writes it, redacted, when flushed or dropped.
pub struct RedactingWriter<W: Write> {
    inner: W,
    pending: Vec<u8>,
}

impl<W: Write> RedactingWriter<W> {
    const fn new(inner: W) -> Self {
        Self {
            inner,
            pending: Vec::new(),
        }
    }

    fn emit(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&self.pending);
        let result = self.inner.write_all(redact(&text).as_bytes());
        self.pending.clear();
        result
    }
}

impl<W: Write> Write for RedactingWriter<W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.emit()?;
        self.inner.flush()
    }
}

impl<W: Write> Drop for RedactingWriter<W> {
    fn drop(&mut self) {
        // Nowhere to report a failed log write.
        let _ = self.emit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pattern_compiles() {
        assert!(MASK.is_some());
    }

    #[test]
    fn masks_tokens_keeping_their_prefix() {
        let session = format!("scs_{}", "ab12".repeat(16));
        let api = format!("sc_{}", "0f".repeat(52));
        let line = format!(
            r#"{{"msg":"token {session} and {api} and whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw and cs_{}"}}"#,
            "0f".repeat(32)
        );
        let out = redact(&line);
        assert_eq!(
            out,
            r#"{"msg":"token scs_[redacted] and sc_[redacted] and whsec_[redacted] and cs_[redacted]"}"#
        );
        // Words that merely contain the prefix are left alone.
        assert_eq!(redact("misc_settings_value_here"), "misc_settings_value_here");
    }

    #[test]
    fn masks_bearer_and_authorization_values() {
        assert_eq!(
            redact("sent Bearer eyJhbGciOi.payload.sig to upstream"),
            "sent Bearer [redacted] to upstream"
        );
        assert_eq!(
            redact(r#"headers: {"authorization": "Basic dXNlcjpwYXNz", "accept": "*/*"}"#),
            r#"headers: {"authorization": "[redacted]", "accept": "*/*"}"#
        );
        // Inside a JSON string value, quotes arrive escaped.
        assert_eq!(
            redact(r#"{"message":"{\"Authorization\":\"token abc\"}"}"#),
            r#"{"message":"{\"Authorization\":\"[redacted]\"}"}"#
        );
        assert_eq!(redact("AUTHORIZATION=Digest xyz\n"), "AUTHORIZATION=[redacted]\n");
    }

    #[test]
    fn masks_emails() {
        assert_eq!(
            redact(r#"{"email":"Ann.Canary+shop@mail.example.co.uk","n":1}"#),
            r#"{"email":"[email]","n":1}"#
        );
    }

    #[test]
    fn masks_luhn_valid_card_numbers_only() {
        assert_eq!(redact("card 4111 1111 1111 1111 ok"), "card [card] ok");
        assert_eq!(redact("card 4111-1111-1111-1111"), "card [card]");
        assert_eq!(redact("pan=5500000000000004;"), "pan=[card];");
        assert_eq!(redact("amex 378282246310005."), "amex [card].");
        // Luhn-invalid runs and short numbers are data, not cards.
        assert_eq!(redact("order 4111111111111112"), "order 4111111111111112");
        assert_eq!(
            redact(r#"{"latency_us":1234,"status":200}"#),
            r#"{"latency_us":1234,"status":200}"#
        );
        // Digits inside an identifier are not a separate number.
        let id = "0192f0a1b2c34111111111111111d5e6";
        assert_eq!(redact(id), id);
    }

    #[test]
    fn clean_lines_are_not_copied() {
        let line = r#"{"level":"INFO","route":"/v1/stores/{store_id}/products","status":200}"#;
        assert!(matches!(redact(line), Cow::Borrowed(_)));
    }

    #[test]
    fn the_writer_redacts_what_it_is_given() {
        let mut sink = Vec::new();
        {
            let mut writer = RedactingWriter::new(&mut sink);
            writer.write_all(b"login by ann@example.com ").unwrap_or_default();
            writer
                .write_all(b"with Bearer scs_0123456789abcdef\n")
                .unwrap_or_default();
        }
        assert_eq!(
            String::from_utf8_lossy(&sink),
            "login by [email] with Bearer [redacted]\n"
        );
    }
}
