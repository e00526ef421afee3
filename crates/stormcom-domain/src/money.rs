//! Money is an integer amount of minor units beside an ISO 4217 currency. Decimal text
//! from the outside world ("42.99") is converted digit by digit, never through floats.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The largest amount accepted anywhere: 10^13 minor units (a hundred billion dollars).
/// Far beyond any real price, far below i64 overflow when amounts are summed.
pub const MAX_AMOUNT: i64 = 10_000_000_000_000;

/// Active ISO 4217 codes with their minor-unit exponent. A static table (rather than a
/// crate) because it is tiny, changes a few times a decade, and is product policy: a
/// store's currency must be one we can price in exactly.
const CURRENCIES: &[(&str, u8)] = &[
    ("AED", 2),
    ("AFN", 2),
    ("ALL", 2),
    ("AMD", 2),
    ("AOA", 2),
    ("ARS", 2),
    ("AUD", 2),
    ("AWG", 2),
    ("AZN", 2),
    ("BAM", 2),
    ("BBD", 2),
    ("BDT", 2),
    ("BGN", 2),
    ("BHD", 3),
    ("BIF", 0),
    ("BMD", 2),
    ("BND", 2),
    ("BOB", 2),
    ("BRL", 2),
    ("BSD", 2),
    ("BTN", 2),
    ("BWP", 2),
    ("BYN", 2),
    ("BZD", 2),
    ("CAD", 2),
    ("CDF", 2),
    ("CHF", 2),
    ("CLP", 0),
    ("CNY", 2),
    ("COP", 2),
    ("CRC", 2),
    ("CUP", 2),
    ("CVE", 2),
    ("CZK", 2),
    ("DJF", 0),
    ("DKK", 2),
    ("DOP", 2),
    ("DZD", 2),
    ("EGP", 2),
    ("ERN", 2),
    ("ETB", 2),
    ("EUR", 2),
    ("FJD", 2),
    ("FKP", 2),
    ("GBP", 2),
    ("GEL", 2),
    ("GHS", 2),
    ("GIP", 2),
    ("GMD", 2),
    ("GNF", 0),
    ("GTQ", 2),
    ("GYD", 2),
    ("HKD", 2),
    ("HNL", 2),
    ("HTG", 2),
    ("HUF", 2),
    ("IDR", 2),
    ("ILS", 2),
    ("INR", 2),
    ("IQD", 3),
    ("IRR", 2),
    ("ISK", 0),
    ("JMD", 2),
    ("JOD", 3),
    ("JPY", 0),
    ("KES", 2),
    ("KGS", 2),
    ("KHR", 2),
    ("KMF", 0),
    ("KPW", 2),
    ("KRW", 0),
    ("KWD", 3),
    ("KYD", 2),
    ("KZT", 2),
    ("LAK", 2),
    ("LBP", 2),
    ("LKR", 2),
    ("LRD", 2),
    ("LSL", 2),
    ("LYD", 3),
    ("MAD", 2),
    ("MDL", 2),
    ("MGA", 2),
    ("MKD", 2),
    ("MMK", 2),
    ("MNT", 2),
    ("MOP", 2),
    ("MRU", 2),
    ("MUR", 2),
    ("MVR", 2),
    ("MWK", 2),
    ("MXN", 2),
    ("MYR", 2),
    ("MZN", 2),
    ("NAD", 2),
    ("NGN", 2),
    ("NIO", 2),
    ("NOK", 2),
    ("NPR", 2),
    ("NZD", 2),
    ("OMR", 3),
    ("PAB", 2),
    ("PEN", 2),
    ("PGK", 2),
    ("PHP", 2),
    ("PKR", 2),
    ("PLN", 2),
    ("PYG", 0),
    ("QAR", 2),
    ("RON", 2),
    ("RSD", 2),
    ("RUB", 2),
    ("RWF", 0),
    ("SAR", 2),
    ("SBD", 2),
    ("SCR", 2),
    ("SDG", 2),
    ("SEK", 2),
    ("SGD", 2),
    ("SHP", 2),
    ("SLE", 2),
    ("SOS", 2),
    ("SRD", 2),
    ("SSP", 2),
    ("STN", 2),
    ("SVC", 2),
    ("SYP", 2),
    ("SZL", 2),
    ("THB", 2),
    ("TJS", 2),
    ("TMT", 2),
    ("TND", 3),
    ("TOP", 2),
    ("TRY", 2),
    ("TTD", 2),
    ("TWD", 2),
    ("TZS", 2),
    ("UAH", 2),
    ("UGX", 0),
    ("USD", 2),
    ("UYU", 2),
    ("UZS", 2),
    ("VES", 2),
    ("VND", 0),
    ("VUV", 0),
    ("WST", 2),
    ("XAF", 0),
    ("XCD", 2),
    ("XOF", 0),
    ("XPF", 0),
    ("YER", 2),
    ("ZAR", 2),
    ("ZMW", 2),
    ("ZWG", 2),
];

/// An ISO 4217 currency we can price in.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency {
    code: &'static str,
    exponent: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("unknown ISO 4217 currency code")]
    UnknownCurrency,
    #[error("amount is empty")]
    Empty,
    #[error("amount must not be negative")]
    Negative,
    #[error("amount must use '.' as the decimal separator and digits only")]
    Malformed,
    #[error("amount has more decimal places than the currency allows ({0})")]
    TooPrecise(u8),
    #[error("amount is too large")]
    TooLarge,
}

impl Currency {
    #[must_use]
    pub const fn code(&self) -> &'static str {
        self.code
    }

    /// Digits after the decimal point: 2 for USD, 0 for JPY, 3 for KWD.
    #[must_use]
    pub const fn exponent(&self) -> u8 {
        self.exponent
    }
}

impl FromStr for Currency {
    type Err = MoneyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CURRENCIES
            .iter()
            .find(|(code, _)| *code == s)
            .map(|&(code, exponent)| Self { code, exponent })
            .ok_or(MoneyError::UnknownCurrency)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code)
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code)
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code)
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Converts a decimal string ("42.99", "55", "0.5") to minor units of `currency`.
/// Digits only, one optional '.', no sign, no thousands separator, no exponent.
/// Extra decimal places are accepted only when they are zeros ("9.990" is 999 cents).
pub fn parse_amount(text: &str, currency: Currency) -> Result<i64, MoneyError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(MoneyError::Empty);
    }
    if text.starts_with('-') {
        return Err(MoneyError::Negative);
    }
    let (whole, fraction) = match text.split_once('.') {
        Some((w, f)) => (w, f),
        None => (text, ""),
    };
    let digits_only = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() && fraction.is_empty()
        || !digits_only(whole)
        || !digits_only(fraction)
        || (text.contains('.') && fraction.is_empty())
    {
        return Err(MoneyError::Malformed);
    }
    let exponent = usize::from(currency.exponent);
    let (kept, dropped) = fraction.split_at(fraction.len().min(exponent));
    if dropped.bytes().any(|b| b != b'0') {
        return Err(MoneyError::TooPrecise(currency.exponent));
    }
    let mut amount: i64 = 0;
    let padded = kept.bytes().chain(std::iter::repeat_n(b'0', exponent - kept.len()));
    for digit in whole.bytes().chain(padded) {
        amount = amount
            .checked_mul(10)
            .and_then(|a| a.checked_add(i64::from(digit - b'0')))
            .ok_or(MoneyError::TooLarge)?;
    }
    if amount > MAX_AMOUNT {
        return Err(MoneyError::TooLarge);
    }
    Ok(amount)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd() -> Currency {
        "USD".parse().unwrap_or_else(|_| unreachable!())
    }

    #[test]
    fn decimal_text_becomes_exact_minor_units() {
        assert_eq!(parse_amount("42.99", usd()), Ok(4299));
        assert_eq!(parse_amount("55", usd()), Ok(5500));
        assert_eq!(parse_amount("0.5", usd()), Ok(50));
        assert_eq!(parse_amount(" 9.990 ", usd()), Ok(999));
        assert_eq!(parse_amount(".5", usd()), Ok(50));
        // 0.29 * 100 is 28.999999999999996 in floating point.
        assert_eq!(parse_amount("0.29", usd()), Ok(29));
        assert_eq!(
            parse_amount("1000", "JPY".parse().unwrap_or_else(|_| unreachable!())),
            Ok(1000)
        );
        assert_eq!(
            parse_amount("1.234", "KWD".parse().unwrap_or_else(|_| unreachable!())),
            Ok(1234)
        );
    }

    #[test]
    fn malformed_amounts_are_refused() {
        assert_eq!(parse_amount("12,99", usd()), Err(MoneyError::Malformed));
        assert_eq!(parse_amount("-1", usd()), Err(MoneyError::Negative));
        assert_eq!(parse_amount("", usd()), Err(MoneyError::Empty));
        assert_eq!(parse_amount("1e3", usd()), Err(MoneyError::Malformed));
        assert_eq!(parse_amount("1.", usd()), Err(MoneyError::Malformed));
        assert_eq!(parse_amount(".", usd()), Err(MoneyError::Malformed));
        assert_eq!(parse_amount("+1", usd()), Err(MoneyError::Malformed));
        assert_eq!(parse_amount("1.2.3", usd()), Err(MoneyError::Malformed));
        assert_eq!(parse_amount("9.999", usd()), Err(MoneyError::TooPrecise(2)));
        assert_eq!(parse_amount("99999999999999999999", usd()), Err(MoneyError::TooLarge));
        assert_eq!(parse_amount("100000000000.01", usd()), Err(MoneyError::TooLarge));
    }

    #[test]
    fn only_known_currencies_are_accepted() {
        assert!("usd".parse::<Currency>().is_err());
        assert!("XYZ".parse::<Currency>().is_err());
        assert_eq!("JPY".parse::<Currency>().map(|c| c.exponent()), Ok(0));
    }
}
