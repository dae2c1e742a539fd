//! `guard gnb pin|unpin`: an operator's cap on one gNB's uplink G-PDUs, in packets and/or T-PDU
//! bits per second. It is the per-gNB cap the engine raises as a last resort (`N3_CELL_STAGES`,
//! docs/controller.md §4), written with `STAGE_FLAG_MANUAL`, which the controller never changes
//! or releases; it expires with its TTL like every stage. Operates on the pinned maps directly,
//! so it works whether or not the controller runs; every pin and unpin is audited first.

use std::net::IpAddr;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use guard_common::abi::{CellStageEntry, Limit, STAGE_FLAG_MANUAL};
use guard_common::units::BitRate;

use super::{rate::ByteRateArgs, Target};
use crate::{
    clock::monotonic_ns,
    config::{Config, Dur, Rate},
    n3::audit::OperatorAction,
    n3::engine::decision::addr_str,
    n3::manual::{is_fleet_cell, manual_cell_entry, GNB_QUARANTINE},
    n3::maps::N3Maps,
};

#[derive(Subcommand, Debug)]
pub enum GnbCmd {
    /// Cap one gNB's uplink G-PDUs by hand, with a time to live. Wins over the controller.
    ///
    /// Everyone behind that gNB shares the cap. Examples:
    /// `guard gnb pin --gnb 192.0.2.10 --rate 200Mbit/s --ttl 1h --comment INC-1234` (a bit
    /// rate: T-PDU octets, SI prefixes, 1 Mbit/s = 1,000,000 bit/s);
    /// `guard gnb pin --gnb 192.0.2.10 --pps 50000 --rate 200Mbit/s ...` (both must allow a
    /// packet); `guard gnb pin --gnb 192.0.2.10 --quarantine ...` (drop its G-PDUs).
    Pin(PinArgs),
    /// Remove an operator's gNB cap. A cap the controller raised is not a pin and is refused:
    /// it lapses after its own quiet period.
    Unpin {
        #[command(flatten)]
        target: Target,
        /// The gNB's N3 address.
        #[arg(long)]
        gnb: IpAddr,
        /// Why (kept in the audit log).
        #[arg(long)]
        comment: String,
    },
}

#[derive(Args, Debug)]
pub struct PinArgs {
    #[command(flatten)]
    target: Target,
    /// The gNB's N3 address: the outer source address of its G-PDUs (IPv4 or IPv6).
    #[arg(long)]
    gnb: IpAddr,
    /// How long the cap holds, e.g. 30s, 10m, 2h. Every stage expires, pins too.
    #[arg(long)]
    ttl: Dur,
    /// Packet rate of the cap, G-PDUs per second (absent or 0: none, then --rate is needed).
    #[arg(long)]
    pps: Option<u64>,
    /// Burst for --pps, packets (default: one second of --pps).
    #[arg(long, requires = "pps")]
    burst: Option<u64>,
    #[command(flatten)]
    bytes: ByteRateArgs,
    /// Drop every G-PDU of the gNB until the TTL expires (one passes, then none; a QFI in
    /// [dataplane] exempt_qfi still passes).
    #[arg(long, conflicts_with_all = ["pps", "burst", "rate", "burst_bytes"])]
    quarantine: bool,
    /// Why (kept in the audit log).
    #[arg(long)]
    comment: String,
    /// Cap the gNB on every guard of the fleet instead (`[fleet]` of --config): checked as this
    /// local cap is, then written as the fleet pin `guard fleet pin --gnb` writes, with the same
    /// packet and byte rates (or quarantine), which every member, this one included, applies
    /// to its `N3_CELL_STAGES` within 2 s. Needs no root.
    #[arg(long)]
    fleet: bool,
}

pub fn run(cmd: GnbCmd) -> Result<()> {
    // A fleet pin goes to etcd only: no pinned map is touched here, so no root is needed.
    let cmd = match cmd {
        GnbCmd::Pin(a) if a.fleet => return pin_fleet(a),
        other => other,
    };
    crate::bpf::object::require_root()?;
    match cmd {
        GnbCmd::Pin(a) => pin(a),
        GnbCmd::Unpin { target, gnb, comment } => unpin(&target, gnb, &comment),
    }
}

fn open(target: &Target) -> Result<(Config, N3Maps)> {
    let cfg = target.load_config()?;
    let pins = target.pins(&cfg)?;
    let maps = N3Maps::open_pinned(&pins)
        .with_context(|| format!("opening the guard's pinned maps in {}", pins.path().display()))?;
    Ok((cfg, maps))
}

/// The entry `a` asks for at `now`: its packet and byte rates, or the quarantine cap.
fn entry(a: &PinArgs, now: u64) -> Result<CellStageEntry> {
    if a.ttl.0 == 0 {
        bail!("--ttl must be > 0: every stage expires");
    }
    if a.quarantine {
        return Ok(manual_cell_entry(GNB_QUARANTINE, now, a.ttl.0));
    }
    let pps = a.pps.unwrap_or(0);
    let limit = Limit::per_second(pps, a.burst.unwrap_or(pps));
    // No byte rate unless asked for: a device's ladder rate is no rate for a whole gNB.
    let bytes = a.bytes.limit(Rate::NONE, 0)?;
    if limit.is_unlimited() && bytes.is_unlimited() {
        bail!("a gNB cap needs a rate: --pps (G-PDUs per second), --rate (e.g. 200Mbit/s), both, or --quarantine");
    }
    Ok(CellStageEntry { bytes, ..manual_cell_entry(limit, now, a.ttl.0) })
}

/// `guard gnb pin --fleet`: the local cap's rules first (`entry`: a rate is needed, a byte burst
/// needs its rate, ...), then the fleet pin. A gNB's only stage is a cap, so any rate is written
/// as `shape`; `--pps 0` (no packet rate) as no `pps`.
fn pin_fleet(a: PinArgs) -> Result<()> {
    entry(&a, 0)?;
    let stage = if a.quarantine { super::pin_terms::StageArg::Quarantine } else { super::pin_terms::StageArg::Shape };
    let terms = super::pin_terms::PinTerms {
        stage: Some(stage),
        ttl: a.ttl,
        pps: a.pps.filter(|p| *p > 0),
        burst: a.burst.filter(|_| a.pps.is_some_and(|p| p > 0)),
        bytes: a.bytes,
        comment: a.comment,
    };
    let req = super::fleet::PinRequest { target: crate::fleet::PinTarget::Gnb(a.gnb), terms };
    super::fleet::write_pin_from_host(&a.target, &req)
}

fn pin(a: PinArgs) -> Result<()> {
    let (cfg, mut maps) = open(&a.target)?;
    let gnb = crate::n3::local::l3_of(a.gnb);
    let e = entry(&a, monotonic_ns())?;
    let limit = Limit { interval_ns: e.interval_ns, tau_ns: e.tau_ns };
    // A fleet cap is the fleet's: overwritten here alone, it would be lost on this host while
    // etcd shows it in force (as `unpin` refuses).
    if let Some(old) = maps.cell_stage(&gnb)? {
        if is_fleet_cell(&old) && old.expires_ns > monotonic_ns() {
            bail!(
                "gNB {}'s cap is a fleet pin: change it with `guard fleet pin --gnb {}`, which every member applies",
                a.gnb,
                a.gnb
            );
        }
    }
    // Audit first: if the audit trail cannot be written, the override does not happen.
    let action = OperatorAction::PinGnb { gnb, ttl_ns: a.ttl.0, limit, bytes: e.bytes };
    let again = super::device::audited(&cfg, &action, &a.comment, || {
        maps.set_cell_stage(&gnb, &e)?;
        // Against the controller's read-then-write and its prune (`settle`).
        let maps = std::cell::RefCell::new(&mut maps);
        super::settle::settle(
            || Ok(maps.borrow().cell_stage(&gnb)?),
            |c| c.flags & guard_common::abi::STAGE_FLAG_MANUAL != 0,
            || Ok(maps.borrow_mut().set_cell_stage(&gnb, &e)?),
        )
    })?;
    let what = match (a.quarantine, limit.is_unlimited(), e.bytes.is_unlimited()) {
        (true, ..) => "quarantine".to_owned(),
        (_, false, true) => format!("{} pps", limit.rate_per_sec()),
        (_, true, false) => format!("{}", BitRate(e.bytes.bits_per_sec())),
        _ => format!("{} pps and {}", limit.rate_per_sec(), BitRate(e.bytes.bits_per_sec())),
    };
    // The cap is a last resort behind its own protection: say when the running guard only
    // counts it (shadow) or does not look it up at all (off).
    use guard_common::policy::{gate, Gate};
    let note = match gate(&maps.config()?, guard_common::abi::PROT_CELL_CAP) {
        Gate::Enforce => "",
        Gate::Shadow => "\nSHADOW: the running guard has cell_cap in shadow ([dataplane.modes]): it counts the would-be drops and passes them",
        Gate::Off => "\nOFF: the running guard has cell_cap off ([dataplane.modes]): it does not look this cap up",
    };
    println!("capped gNB {} at {what} for {}{note}{}", addr_str(&gnb), a.ttl, super::settle::rewritten_note(again));
    Ok(())
}

fn unpin(target: &Target, addr: IpAddr, comment: &str) -> Result<()> {
    let (cfg, mut maps) = open(target)?;
    let gnb = crate::n3::local::l3_of(addr);
    match maps.cell_stage(&gnb)? {
        None => bail!("gNB {addr} has no cap"),
        Some(e) if e.flags & STAGE_FLAG_MANUAL == 0 => {
            bail!("gNB {addr}'s cap was raised by the controller, not pinned: it lapses after its quiet period")
        }
        Some(e) if is_fleet_cell(&e) => {
            bail!("gNB {addr}'s cap is a fleet pin: remove it with `guard fleet unpin --gnb {addr}`")
        }
        Some(_) => {}
    }
    super::device::audited(&cfg, &OperatorAction::UnpinGnb { gnb }, comment, || Ok(maps.clear_cell_stage(&gnb)?))?;
    println!("unpinned gNB {addr}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    fn parse(args: &[&str]) -> Result<PinArgs, clap::Error> {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(subcommand)]
            cmd: GnbCmd,
        }
        let argv = ["guard", "pin", "--gnb", "192.0.2.10", "--ttl", "10m", "--comment", "t"]
            .into_iter()
            .chain(args.iter().copied());
        Cli::try_parse_from(argv).map(|c| match c.cmd {
            GnbCmd::Pin(a) => a,
            GnbCmd::Unpin { .. } => unreachable!("parsed a pin"),
        })
    }

    /// clap's own consistency checks over the whole command line: the ids that `--quarantine`
    /// (here) names in `conflicts_with_all` are the flattened `--rate` / `--burst-bytes` of
    /// [`ByteRateArgs`], which `guard fleet pin` flattens too.
    #[test]
    fn the_command_line_names_only_arguments_it_has() {
        use clap::CommandFactory as _;
        crate::cli::Cli::command().debug_assert();
    }

    #[test]
    fn a_gnb_pin_takes_a_bit_rate_a_packet_rate_or_both() {
        let now = 1_000;
        let e = entry(&parse(&["--rate", "20Mbit/s", "--burst-bytes", "30000"]).expect("parses"), now).expect("valid");
        assert_eq!(e.bytes, guard_common::abi::ByteLimit::bits_per_second(20_000_000, 30_000));
        assert_eq!((e.interval_ns, e.flags & STAGE_FLAG_MANUAL), (0, STAGE_FLAG_MANUAL));
        assert_eq!(e.expires_ns, now + 600_000_000_000);
        let e = entry(&parse(&["--pps", "1000", "--rate", "1Mbit/s"]).expect("parses"), now).expect("valid");
        assert_eq!((e.interval_ns, e.bytes.bits_per_sec()), (1_000_000, 1_000_000));
        let e = entry(&parse(&["--pps", "1000"]).expect("parses"), now).expect("valid");
        assert!(e.bytes.is_unlimited() && e.interval_ns == 1_000_000);
        let e = entry(&parse(&["--quarantine"]).expect("parses"), now).expect("valid");
        assert_eq!(e.interval_ns, GNB_QUARANTINE.interval_ns);
        // Refused: no rate at all, a burst without its rate, a rate the data plane cannot hold,
        // a quarantine with a rate, a unit that is not a bit rate.
        assert!(entry(&parse(&[]).expect("parses"), now).is_err());
        assert!(entry(&parse(&["--burst-bytes", "3000", "--pps", "10"]).expect("parses"), now).is_err());
        assert!(entry(&parse(&["--rate", "2bit/s"]).expect("parses"), now).is_err());
        assert!(parse(&["--quarantine", "--rate", "1Mbit/s"]).is_err());
        assert!(parse(&["--rate", "20 parsecs"]).is_err());
    }
}
