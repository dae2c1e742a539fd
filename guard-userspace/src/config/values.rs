//! The value types operators write as strings or small tables: durations, TEID ranges, IP
//! prefixes, packet rates, bit rates.

use super::*;

/// A rate in packets per second with a burst in packets.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PpsLimit {
    pub pps: u64,
    pub burst: u64,
}

impl PpsLimit {
    pub fn limit(&self) -> Limit {
        Limit::per_second(self.pps, self.burst)
    }
}

/// A bit rate, written as operators write a UPF's MBR: `"20Mbit/s"`, `"500kbit/s"`, `"1.5Gbit/s"`,
/// `"125kB/s"` or 3GPP's `"20 Mbps"` (SI prefixes: 1 Mbit/s = 10^6 bit/s, TS 29.571 §5.5.2;
/// `guard_common::units::BitRate`). `"0"` (the default) is no byte limit. A byte limit counts the
/// octets of the T-PDUs, the inner packets, as an MBR does (docs/dataplane.md, "Byte limits").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Rate(pub BitRate);

impl Rate {
    pub const NONE: Rate = Rate(BitRate::NONE);

    pub const fn bits_per_sec(self) -> u64 {
        self.0 .0
    }

    pub const fn is_none(self) -> bool {
        self.0 .0 == 0
    }

    /// The data plane's byte limit for this rate with a burst of `burst_bytes` octets (0: one
    /// second of the rate), or none for `"0"`.
    pub fn byte_limit(self, burst_bytes: u64) -> ByteLimit {
        let burst = if burst_bytes == 0 { self.bits_per_sec() / 8 } else { burst_bytes };
        ByteLimit::bits_per_second(self.bits_per_sec(), burst)
    }

    /// Octets per second.
    pub fn bytes_per_sec(self) -> f64 {
        self.bits_per_sec() as f64 / 8.0
    }
}

impl FromStr for Rate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        BitRate::parse(s).map(Rate).map_err(|e| format!("invalid rate `{}`: {e}", s.trim()))
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The stage-0 profile limit (`[dataplane.observe]`): a packet rate and burst, as before byte
/// limits (`pps`, `burst`), and optionally their byte form beside them (`rate`, `burst_bytes`:
/// octets, 0 = one second of `rate`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileLimit {
    pub pps: u64,
    pub burst: u64,
    #[serde(default, skip_serializing_if = "no_rate")]
    pub rate: Rate,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub burst_bytes: u64,
}

pub(super) fn is_zero(v: &u64) -> bool {
    *v == 0
}

pub(super) fn no_rate(r: &Rate) -> bool {
    r.is_none()
}

impl ProfileLimit {
    pub fn limit(&self) -> Limit {
        Limit::per_second(self.pps, self.burst)
    }

    pub fn byte_limit(&self) -> ByteLimit {
        self.rate.byte_limit(self.burst_bytes)
    }

    pub fn packets(&self) -> PpsLimit {
        PpsLimit { pps: self.pps, burst: self.burst }
    }
}

/// `count` packets per `per`, with a burst: for rates below one per second.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeriodLimit {
    pub count: u64,
    pub per: Dur,
    pub burst: u64,
}

impl PeriodLimit {
    pub fn limit(&self) -> Limit {
        if self.count == 0 {
            return Limit::UNLIMITED;
        }
        Limit::per_interval((self.per.0 / self.count).max(1), self.burst)
    }
}

/// A duration in nanoseconds, written `"<integer><unit>"` with unit ns, us, ms, s, m or h.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Dur(pub u64);

impl Dur {
    pub const fn secs(s: u64) -> Dur {
        Dur(s * 1_000_000_000)
    }
    pub const fn millis(ms: u64) -> Dur {
        Dur(ms * 1_000_000)
    }
    pub const fn ns(self) -> u64 {
        self.0
    }
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }
}

impl FromStr for Dur {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: u64 =
            num.parse().map_err(|_| format!("invalid duration `{s}`: expected e.g. \"500ms\", \"5s\", \"2m\""))?;
        let mult: u64 = match unit {
            "ns" => 1,
            "us" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(format!("invalid duration `{s}`: unit must be one of ns, us, ms, s, m, h")),
        };
        n.checked_mul(mult).map(Dur).ok_or_else(|| format!("duration `{s}` is too large"))
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(u64, &str); 6] = [
            (3_600_000_000_000, "h"),
            (60_000_000_000, "m"),
            (1_000_000_000, "s"),
            (1_000_000, "ms"),
            (1_000, "us"),
            (1, "ns"),
        ];
        for (mult, unit) in UNITS {
            if self.0 % mult == 0 && (self.0 != 0 || unit == "s") {
                return write!(f, "{}{unit}", self.0 / mult);
            }
        }
        write!(f, "{}ns", self.0)
    }
}

/// An inclusive TEID range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TeidRange {
    pub first: u32,
    pub last: u32,
}

impl TeidRange {
    pub fn contains(&self, teid: u32) -> bool {
        self.first <= teid && teid <= self.last
    }
}

fn parse_u32(s: &str) -> Result<u32, String> {
    let s = s.trim();
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => s.parse(),
    };
    parsed.map_err(|_| format!("invalid TEID `{s}`"))
}

impl FromStr for TeidRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (first, last) = match s.split_once('-') {
            Some((a, b)) => (parse_u32(a)?, parse_u32(b)?),
            None => {
                let t = parse_u32(s)?;
                (t, t)
            }
        };
        if first > last {
            return Err(format!("TEID range `{s}` is empty (first > last)"));
        }
        Ok(TeidRange { first, last })
    }
}

impl fmt::Display for TeidRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}-{:#x}", self.first, self.last)
    }
}

/// An IP prefix; a bare address is a host prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix {
    pub addr: IpAddr,
    pub len: u8,
}

impl Prefix {
    /// Whether `a` falls inside this prefix (families must match).
    pub fn contains(&self, a: &L3Addr) -> bool {
        let (net, bits): (&[u8], usize) = match (&self.addr, a.family) {
            (IpAddr::V4(v4), FAMILY_IPV4) => (&v4.octets()[..], 32),
            (IpAddr::V6(v6), FAMILY_IPV6) => (&v6.octets()[..], 128),
            _ => return false,
        };
        let len = usize::from(self.len).min(bits);
        let full = len / 8;
        if net[..full] != a.addr[..full] {
            return false;
        }
        let rem = len % 8;
        if rem == 0 {
            return true;
        }
        let mask = 0xffu8 << (8 - rem);
        net[full] & mask == a.addr[full] & mask
    }
}

impl FromStr for Prefix {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = a.trim().parse().map_err(|_| format!("invalid IP address in `{s}`"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match len {
            None => max,
            Some(l) => l
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|l| *l <= max)
                .ok_or_else(|| format!("invalid prefix length in `{s}` (0..={max})"))?,
        };
        Ok(Prefix { addr, len })
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// Serde for the string-parsed value types: errors surface through `toml`, which adds the key
/// and the line.
macro_rules! serde_via_str {
    ($t:ty) => {
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
    };
}
serde_via_str!(Dur);
serde_via_str!(TeidRange);
serde_via_str!(Prefix);
serde_via_str!(Rate);
