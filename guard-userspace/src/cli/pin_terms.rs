//! What an operator's device pin asks for, the same whether it is written to this host's maps
//! (`guard device pin`) or to the fleet (`guard device pin --fleet`, `guard fleet pin`): one
//! argument group, so the two commands cannot drift apart in what they accept.

use clap::{Args, ValueEnum};

use super::rate::ByteRateArgs;
use crate::config::Dur;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum StageArg {
    /// Stage 1: shape to --pps/--burst (and --rate, if given).
    Shape,
    /// Stage 2: strict limit at --pps/--burst (and --rate, if given).
    Strict,
    /// Stage 3: drop every G-PDU until the TTL expires (but those of a QFI in [dataplane]
    /// exempt_qfi, which no stage limits).
    Quarantine,
}

#[derive(Args, Debug, Clone)]
pub struct PinTerms {
    /// The stage (none with --tmsi: a 5G-S-TMSI pin is a back-off, 5GMM cause #22 with T3346;
    /// N2 never drops a device's DATA chunks mid-association).
    #[arg(long, value_enum, required_unless_present = "tmsi", conflicts_with = "tmsi")]
    pub stage: Option<StageArg>,
    /// How long the pin holds, e.g. 30s, 10m, 2h: every stage expires, pins too. A fleet pin
    /// holds 1s..=7d: its etcd lease's TTL and each member's expiry.
    #[arg(long)]
    pub ttl: Dur,
    /// Rate for shape/strict, packets per second (default: the configuration's ladder, on this
    /// host or on each member; 0 with --rate: the byte rate alone).
    #[arg(long)]
    pub pps: Option<u64>,
    /// Burst for shape/strict, packets.
    #[arg(long)]
    pub burst: Option<u64>,
    /// For shape and strict: a byte rate beside (or, with --pps 0, instead of) the packet rate.
    #[command(flatten)]
    pub bytes: ByteRateArgs,
    /// Why, e.g. a ticket number: kept in the audit trail (of every member, for a fleet pin).
    #[arg(long)]
    pub comment: String,
}
