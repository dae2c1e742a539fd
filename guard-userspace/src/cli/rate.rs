//! The byte rate an operator's pin carries beside its packet rate (`--rate`, `--burst-bytes`),
//! parsed and checked once for `guard device pin` and `guard gnb pin`.

use anyhow::{bail, Result};
use clap::Args;
use guard_common::abi::ByteLimit;

use crate::config::Rate;
use crate::n3::manual::pin_byte_limit;

/// `--rate` and `--burst-bytes`.
#[derive(Args, Debug, Clone, Copy, Default)]
pub struct ByteRateArgs {
    /// Byte rate beside the packet rate, as a UPF's MBR is written (TS 23.501 §5.7.2.5): bits per
    /// second with SI prefixes, 1 Mbit/s = 1,000,000 bit/s: 5Mbit/s, 500kbit/s, 1.5Gbit/s,
    /// 125kB/s (= 1Mbit/s), "20 Mbps". It counts T-PDU octets, the inner packets, not the outer
    /// IP/UDP/GTP-U headers (docs/dataplane.md, "Byte limits"). A packet passes only if both
    /// rates allow it; with --pps 0 the byte rate alone applies. Default: for a device, the
    /// config's ladder (`rate`, "0" = none); for a gNB, none. On a fleet pin (`--fleet`, `guard
    /// fleet pin`) the rate is written into the pin's value in etcd and every member applies it
    /// to its own data plane as this local pin would be (absent: each member's own ladder rate
    /// for a UE, none for a gNB); members older than byte pins refuse such a pin and say so.
    #[arg(long)]
    pub rate: Option<Rate>,
    /// Burst for --rate, in octets of T-PDU (e.g. 15000 = ten 1500-octet packets back to back).
    /// Default: for a device, the ladder's `burst_bytes`; otherwise, or 0, one second of the rate.
    /// On a fleet pin it needs --rate (each member's ladder rate may differ).
    #[arg(long)]
    pub burst_bytes: Option<u64>,
}

impl ByteRateArgs {
    /// Whether either option was given.
    pub fn given(&self) -> bool {
        self.rate.is_some() || self.burst_bytes.is_some()
    }

    /// The byte limit asked for, each option defaulting to `rate` / `burst_bytes`; refused below
    /// 8 bit/s, the slowest byte rate the data plane holds (`ByteLimit::MAX_UNIT_NS`), and for a
    /// burst with no rate to apply it to. The rules are `n3::manual::pin_byte_limit`'s, which
    /// every fleet member applies a fleet pin's byte rate with.
    pub fn limit(&self, rate: Rate, burst_bytes: u64) -> Result<ByteLimit> {
        Ok(pin_byte_limit(self.rate, self.burst_bytes, rate, burst_bytes)?)
    }

    /// The fields of a fleet pin's value (`rate_bps`, `burst_bytes`), checked here as the local
    /// pins' options are: a fleet pin carries what was typed, and each member fills in what was
    /// not (a device's ladder rate, a gNB's none) with [`pin_byte_limit`]. A burst needs its rate
    /// on the fleet: each member's ladder rate may differ, so a burst alone would mean a
    /// different limit on each. `--rate 0` is kept (0: no byte rate, not the ladder's).
    pub fn fleet_fields(&self) -> Result<(Option<u64>, Option<u64>)> {
        if self.rate.is_none() && self.burst_bytes.is_some() {
            bail!("--burst-bytes on a fleet pin needs --rate: each member's ladder rate may differ");
        }
        if self.rate.is_some_and(|r| r.is_none()) && self.burst_bytes.is_some() {
            bail!("--burst-bytes needs a byte rate (--rate) to apply to");
        }
        pin_byte_limit(self.rate, self.burst_bytes, Rate::NONE, 0)?;
        Ok((self.rate.map(Rate::bits_per_sec), self.burst_bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(rate: Option<&str>, burst: Option<u64>) -> ByteRateArgs {
        ByteRateArgs { rate: rate.map(|r| r.parse().expect("a rate")), burst_bytes: burst }
    }

    #[test]
    fn rates_take_the_defaults_and_refuse_what_the_data_plane_cannot_hold() {
        let five: Rate = "5Mbit/s".parse().expect("a rate");
        let l = args(Some("2Mbit/s"), Some(3000)).limit(five, 0).expect("valid");
        assert_eq!(l, ByteLimit::bits_per_second(2_000_000, 3000));
        // Defaults: the caller's rate, and one second of it for a burst of 0.
        let l = args(None, None).limit(five, 0).expect("valid");
        assert_eq!(l, ByteLimit::bits_per_second(5_000_000, 625_000));
        assert!(args(None, None).limit(Rate::NONE, 0).expect("valid").is_unlimited());
        assert!(args(Some("4bit/s"), None).limit(Rate::NONE, 0).is_err());
        assert!(args(None, Some(1000)).limit(Rate::NONE, 0).is_err());
    }

    #[test]
    fn a_fleet_pin_carries_what_was_typed_checked_as_a_local_pin_is() {
        assert_eq!(args(Some("5Mbit/s"), Some(30_000)).fleet_fields().expect("valid"), (Some(5_000_000), Some(30_000)));
        assert_eq!(args(None, None).fleet_fields().expect("valid"), (None, None), "each member's default");
        assert_eq!(args(Some("0"), None).fleet_fields().expect("valid"), (Some(0), None), "no byte rate");
        // Refused: a rate the data plane cannot hold, and a burst without its rate (each member's
        // ladder rate may differ), also beside "0".
        assert!(args(Some("4bit/s"), None).fleet_fields().is_err());
        assert!(args(None, Some(1500)).fleet_fields().is_err());
        assert!(args(Some("0"), Some(1500)).fleet_fields().is_err());
    }
}
