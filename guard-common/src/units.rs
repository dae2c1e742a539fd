//! Bit rates as operators write them: `"20Mbit/s"`, `"500kbit/s"`, `"1.5Gbit/s"`, `"125kB/s"`, or
//! 3GPP's own spelling `"20 Mbps"` (TS 29.571 §5.5.2 `BitRate`, what a PCF or SMF configuration
//! holds). Prefixes are SI, powers of 1000 (1 Mbit/s = 10^6 bit/s), as in every 3GPP bit rate;
//! `B/s` units are octets (x 8). Parsed exactly, in integers: `"1.5Mbit/s"` is 1,500,000 bit/s, and
//! a rate finer than 1 bit/s is refused rather than rounded. Used by the configuration and the CLI
//! (`guard device pin --rate`); the data plane sees only `abi::ByteLimit`.

use core::fmt;

/// A rate in bits per second (0: no byte limit).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BitRate(pub u64);

/// Why a string is not a [`BitRate`]. Its `Display` says what was expected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateError {
    /// Nothing, or no number before the unit.
    NoNumber,
    /// No unit, or not one of [`UNITS`]'s.
    Unit,
    /// More than one decimal point, or a non-digit in the number.
    Number,
    /// The digits after the point are finer than 1 bit/s in that unit (`"1.5bit/s"`).
    Fraction,
    /// More than `u64::MAX` bit/s.
    TooLarge,
}

/// The units accepted, with their factor to bit/s. Spelled as written: SI prefixes are
/// lower-case `k` and upper-case `M`, `G`, `T` (a lower-case `m` would be milli); 3GPP writes
/// `Kbps`, so `K` is accepted for kilo too.
pub const UNITS: &[(&str, u64)] = &[
    ("bit/s", 1),
    ("kbit/s", 1_000),
    ("Kbit/s", 1_000),
    ("Mbit/s", 1_000_000),
    ("Gbit/s", 1_000_000_000),
    ("Tbit/s", 1_000_000_000_000),
    ("bps", 1),
    ("Kbps", 1_000),
    ("kbps", 1_000),
    ("Mbps", 1_000_000),
    ("Gbps", 1_000_000_000),
    ("Tbps", 1_000_000_000_000),
    ("B/s", 8),
    ("kB/s", 8_000),
    ("KB/s", 8_000),
    ("MB/s", 8_000_000),
    ("GB/s", 8_000_000_000),
];

impl fmt::Display for RateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            RateError::NoNumber => "no number before the unit",
            RateError::Unit => "no unit, or an unknown one",
            RateError::Number => "the number is not a decimal number",
            RateError::Fraction => "finer than 1 bit/s",
            RateError::TooLarge => "too large",
        };
        write!(
            f,
            "{what}: write a number and a unit, e.g. \"20Mbit/s\", \"500kbit/s\", \"1.5Gbit/s\", \"125kB/s\" \
             or \"20 Mbps\" (units bit/s, kbit/s, Mbit/s, Gbit/s, Tbit/s, bps, Kbps, Mbps, Gbps, B/s, kB/s, \
             MB/s, GB/s; SI prefixes, 1 Mbit/s = 1,000,000 bit/s); \"0\" is no byte limit"
        )
    }
}

impl BitRate {
    pub const NONE: BitRate = BitRate(0);

    pub const fn bits_per_sec(self) -> u64 {
        self.0
    }

    pub const fn is_none(self) -> bool {
        self.0 == 0
    }

    /// Parse `"20Mbit/s"`, `"20 Mbit/s"`, `"1.5Gbit/s"`, `"125kB/s"`, `"20 Mbps"`, or `"0"` (no
    /// byte limit). Surrounding blanks are ignored.
    pub fn parse(s: &str) -> Result<BitRate, RateError> {
        let s = s.trim();
        if s == "0" {
            return Ok(BitRate::NONE);
        }
        let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or(if s.is_empty() {
            RateError::NoNumber
        } else {
            RateError::Unit
        })?;
        let (number, unit) = (&s[..split], s[split..].trim_start());
        if number.is_empty() {
            return Err(RateError::NoNumber);
        }
        let factor = UNITS.iter().find(|(u, _)| *u == unit).map(|(_, f)| *f).ok_or(RateError::Unit)?;
        let (int, frac) = match number.split_once('.') {
            Some((i, f)) => (i, f),
            None => (number, ""),
        };
        if frac.contains('.') || (int.is_empty() && frac.is_empty()) {
            return Err(RateError::Number);
        }
        let digits = |d: &str| -> Result<u64, RateError> {
            d.bytes().try_fold(0u64, |acc, b| {
                acc.checked_mul(10).and_then(|a| a.checked_add(u64::from(b - b'0'))).ok_or(RateError::TooLarge)
            })
        };
        let whole = digits(int)?.checked_mul(factor).ok_or(RateError::TooLarge)?;
        // The fraction, exactly: `frac` digits of `factor`, which must come out whole.
        let frac = frac.trim_end_matches('0');
        let scale = 10u64.checked_pow(frac.len() as u32).ok_or(RateError::Fraction)?;
        let part = digits(frac)?.checked_mul(factor).ok_or(RateError::TooLarge)?;
        if part % scale != 0 {
            return Err(RateError::Fraction);
        }
        whole.checked_add(part / scale).map(BitRate).ok_or(RateError::TooLarge)
    }
}

impl fmt::Display for BitRate {
    /// The largest unit of bit/s that shows the rate exactly: `20Mbit/s`, `1500kbit/s`,
    /// `1.5Gbit/s` is shown as `1500Mbit/s`; 0 as `0` (no limit). [`BitRate::parse`] reads it back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("0");
        }
        for (unit, factor) in
            [("Tbit/s", 1_000_000_000_000u64), ("Gbit/s", 1_000_000_000), ("Mbit/s", 1_000_000), ("kbit/s", 1_000)]
        {
            if self.0 % factor == 0 {
                return write!(f, "{}{unit}", self.0 / factor);
            }
        }
        write!(f, "{}bit/s", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operators_spellings() {
        for (s, bps) in [
            ("20Mbit/s", 20_000_000),
            ("20 Mbit/s", 20_000_000),
            (" 500kbit/s ", 500_000),
            ("500Kbit/s", 500_000),
            ("1.5Gbit/s", 1_500_000_000),
            ("0.25Mbit/s", 250_000),
            ("2000bit/s", 2_000),
            ("20 Mbps", 20_000_000),
            ("64Kbps", 64_000),
            ("125kB/s", 1_000_000),
            ("1MB/s", 8_000_000),
            ("1.5B/s", 12),
            ("10.000Gbit/s", 10_000_000_000),
            ("0", 0),
            ("0bit/s", 0),
            ("0Mbit/s", 0),
        ] {
            assert_eq!(BitRate::parse(s), Ok(BitRate(bps)), "{s:?}");
        }
    }

    #[test]
    fn mistakes_are_named() {
        for (s, e) in [
            ("", RateError::NoNumber),
            ("Mbit/s", RateError::NoNumber),
            ("20", RateError::Unit),
            ("20Mbits", RateError::Unit),
            ("20mbit/s", RateError::Unit),
            ("20 Mb/s", RateError::Unit),
            ("-5Mbit/s", RateError::NoNumber),
            ("1.2.3Mbit/s", RateError::Number),
            (".Mbit/s", RateError::Number),
            ("1.5bit/s", RateError::Fraction),
            ("0.0000001Mbit/s", RateError::Fraction),
            ("99999999999999999999bit/s", RateError::TooLarge),
            ("20000000Tbit/s", RateError::TooLarge),
        ] {
            assert_eq!(BitRate::parse(s), Err(e), "{s:?}");
        }
        let msg = RateError::Unit.to_string();
        assert!(msg.contains("\"20Mbit/s\"") && msg.contains("kbit/s") && msg.contains("1,000,000"), "{msg}");
    }

    #[test]
    fn display_reads_back() {
        for (bps, s) in
            [(20_000_000, "20Mbit/s"), (1_500_000, "1500kbit/s"), (12, "12bit/s"), (0, "0"), (3_000_000_000, "3Gbit/s")]
        {
            assert_eq!(BitRate(bps).to_string(), s);
            assert_eq!(BitRate::parse(s), Ok(BitRate(bps)));
        }
    }

    proptest::proptest! {
        #[test]
        fn every_rate_reads_back(bps in 0u64..u64::MAX / 2) {
            let s = BitRate(bps).to_string();
            proptest::prop_assert_eq!(BitRate::parse(&s), Ok(BitRate(bps)));
        }
    }
}
