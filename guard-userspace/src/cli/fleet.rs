//! `guard fleet pin|unpin|list`: operator pins shared by every guard of the fleet, written to and
//! read from etcd directly (docs/fleet.md). Each running member applies a pin within 2 s and
//! audits it with its author; the pin's etcd lease removes it at its expiry.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context, Result};
use clap::{ArgGroup, Args, Subcommand};
use etcd_client::{GetOptions, PutOptions};
use guard_common::abi_n2::N2DeviceKey;

use super::pin_terms::{PinTerms, StageArg};
use crate::config::{Config, FleetSection, Prefix};
use crate::fleet::pins::{decode, members_prefix, pins_prefix, MAX_COMMENT, MAX_TTL_MS, VALUE_VERSION};
use crate::fleet::{client, unix_ms, PinStage, PinTarget, PinValue};

#[derive(Subcommand, Debug)]
pub enum FleetCmd {
    /// Pin a UE (address or prefix) or a gNB at a stage on every guard of the fleet, for --ttl;
    /// or an N2 device by its 5G-S-TMSI (--tmsi) on every AMF-side guard's back-off list.
    ///
    /// Written to etcd under the fleet's prefix with a lease of --ttl; every running member
    /// applies it to its own data plane within 2 s and audits it with who made it. A member keyed
    /// by TEID applies a UE pin to the TEIDs anti-spoofing bound to that UE (and to those that bind
    /// later), or says it cannot (anti-spoofing off: log, audit, metric). A TEID is host-local and
    /// never a fleet pin: use `guard device pin` on the host.
    ///
    /// A byte pin (`--rate 5Mbit/s [--burst-bytes N]`, shape and strict) is the same pin with a
    /// bit rate in its value: each member writes it into its data plane's byte limit, as `guard
    /// device pin --rate` (a UE) or `guard gnb pin --rate` (a gNB) would on that host, and audits
    /// it with `bit_rate` and `burst_bytes`. Members built before byte pins refuse it (logged,
    /// `overload_guard_fleet_values_rejected_total{reason="malformed"}`) instead of enforcing it
    /// without its byte rate.
    Pin(PinArgs),
    /// Remove a fleet pin: every member removes the stage it applied for it.
    Unpin(UnpinArgs),
    /// List the fleet's pins and its members (those whose lease is alive).
    List(ListArgs),
}

/// The configuration whose `[fleet]` says where etcd is.
#[derive(Args, Debug)]
pub struct FleetConfig {
    /// The configuration file with the `[fleet]` section.
    #[arg(long, short = 'c', env = "GUARD_CONFIG", default_value = "/etc/overload-guard/guard.toml")]
    pub config: PathBuf,
}

impl FleetConfig {
    fn fleet(&self) -> Result<FleetSection> {
        let cfg = Config::load(&self.config).with_context(|| format!("configuration {}", self.config.display()))?;
        fleet_of(cfg, &self.config.display().to_string())
    }
}

/// The `[fleet]` of a loaded configuration, or why there is none.
pub fn fleet_of(cfg: Config, path: &str) -> Result<FleetSection> {
    cfg.fleet.with_context(|| format!("{path} has no [fleet] section (docs/fleet.md)"))
}

/// What a fleet pin names: exactly one of these.
#[derive(Args, Debug, Clone)]
#[command(group(ArgGroup::new("what").required(true).args(["ue", "ue_prefix", "gnb", "tmsi"])))]
pub struct PinTargetArgs {
    /// A UE address (IPv4, or IPv6: its device prefix, `antispoof_v6_prefix`, on each member).
    #[arg(long)]
    pub ue: Option<IpAddr>,
    /// Every UE in a prefix, e.g. 10.45.1.0/24 (at most 1024 devices).
    #[arg(long)]
    pub ue_prefix: Option<Prefix>,
    /// A gNB by its N3 address (the outer source of its G-PDUs): a cap on all its G-PDUs.
    #[arg(long)]
    pub gnb: Option<IpAddr>,
    /// An N2 device by its 5G-S-TMSI as the hook names it (`5g-s-tmsi:<AMF set>:<AMF pointer>:
    /// 0x<5G-TMSI>`, or `s-tmsi:0x<MMEC>:0x<M-TMSI>`): on every AMF-side member's back-off list
    /// (5GMM cause #22, T3346) for --ttl. No --stage: on N2 a device is never dropped.
    #[arg(long, value_parser = parse_tmsi)]
    pub tmsi: Option<N2DeviceKey>,
}

pub(super) fn parse_tmsi(s: &str) -> Result<N2DeviceKey, String> {
    // Hex digits in either case on the command line; the key is written in the one spelling.
    crate::n2::engine::parse_n2_device(&s.to_ascii_lowercase()).ok_or_else(|| {
        format!("{s:?} is not 5g-s-tmsi:<set 0-1023>:<pointer 0-63>:0x<8 hex> nor s-tmsi:0x<2 hex>:0x<8 hex>")
    })
}

impl PinTargetArgs {
    fn target(&self) -> Result<PinTarget> {
        let t = match (self.ue, self.ue_prefix, self.gnb, self.tmsi) {
            (Some(a), None, None, None) => PinTarget::Ue(a),
            (None, Some(p), None, None) => PinTarget::UePrefix(p),
            (None, None, Some(a), None) => PinTarget::Gnb(a),
            (None, None, None, Some(k)) => PinTarget::Tmsi(k),
            _ => bail!("give exactly one of --ue, --ue-prefix, --gnb or --tmsi"),
        };
        Ok(t)
    }
}

#[derive(Args, Debug)]
pub struct PinArgs {
    #[command(flatten)]
    cfg: FleetConfig,
    #[command(flatten)]
    what: PinTargetArgs,
    #[command(flatten)]
    terms: PinTerms,
}

#[derive(Args, Debug)]
pub struct UnpinArgs {
    #[command(flatten)]
    cfg: FleetConfig,
    #[command(flatten)]
    what: PinTargetArgs,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    cfg: FleetConfig,
    #[arg(long)]
    json: bool,
}

pub fn run(cmd: FleetCmd) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting tokio")?;
    match cmd {
        FleetCmd::Pin(a) => rt.block_on(pin(a)),
        FleetCmd::Unpin(a) => rt.block_on(unpin(a)),
        FleetCmd::List(a) => rt.block_on(list(a)),
    }
}

async fn deadline<T>(
    f: &FleetSection,
    what: &str,
    fut: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T> {
    tokio::time::timeout(Duration::from_nanos(f.sync.timeout.0), fut)
        .await
        .map_err(|_| anyhow::anyhow!("{what}: etcd gave no answer within {}", f.sync.timeout))?
        .with_context(|| what.to_owned())
}

async fn pin(a: PinArgs) -> Result<()> {
    let f = a.cfg.fleet()?;
    let target = a.what.target()?;
    let req = PinRequest { target, terms: a.terms };
    println!("{}", write_pin(&f, &req).await?);
    Ok(())
}

/// A fleet pin as an operator asks for it, from `guard fleet pin` or `guard device pin --fleet`.
#[derive(Debug, Clone)]
pub struct PinRequest {
    pub target: PinTarget,
    /// Its stage (None only for a 5G-S-TMSI pin: its stage is the back-off), TTL, rates
    /// (`--rate`/`--burst-bytes` carried in the value as `rate_bps`, `burst_bytes`) and comment.
    pub terms: PinTerms,
}

/// `--fleet` on a host's own pin command (`guard device pin`, `guard gnb pin`): the fleet pin
/// `req`, written to the etcd of `target`'s configuration's `[fleet]` through [`write_pin`]. No
/// pinned map is touched, so no root is needed; the host's own member applies it like any other.
pub fn write_pin_from_host(target: &super::Target, req: &PinRequest) -> Result<()> {
    let cfg = target.load_config()?;
    let path = target.config.as_ref().map_or("the built-in configuration".to_owned(), |p| p.display().to_string());
    let f = fleet_of(cfg, &path)?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting tokio")?;
    println!("{}", rt.block_on(write_pin(&f, req))?);
    Ok(())
}

/// Check and write one fleet pin (the one code path of every command); returns the line to print.
pub async fn write_pin(f: &FleetSection, r: &PinRequest) -> Result<String> {
    let (target, r) = (&r.target, &r.terms);
    target.check().map_err(anyhow::Error::msg)?;
    let ttl_ms = r.ttl.0 / 1_000_000;
    if !(1000..=MAX_TTL_MS).contains(&ttl_ms) {
        bail!("--ttl must be between 1s and 7d: every pin expires, and a longer one belongs in the configuration");
    }
    if r.comment.len() > MAX_COMMENT {
        bail!("--comment is longer than {MAX_COMMENT} bytes");
    }
    let stage = match (target, r.stage) {
        (PinTarget::Tmsi(_), None) => PinStage::Backoff,
        (PinTarget::Tmsi(_), Some(_)) => bail!(
            "a --tmsi pin takes no --stage: it puts the device on every AMF-side member's back-off list \
             (5GMM cause #22, T3346); N2 never drops a device's DATA chunks mid-association"
        ),
        (_, None) => bail!("--stage is required"),
        (_, Some(StageArg::Shape)) => PinStage::Shape,
        (_, Some(StageArg::Strict)) => PinStage::Strict,
        (_, Some(StageArg::Quarantine)) => PinStage::Quarantine,
    };
    // Checked by the local pins' own rules (`cli::rate`), then by the value's bounds below.
    let (rate_bps, burst_bytes) = r.bytes.fleet_fields()?;
    let now = unix_ms(SystemTime::now());
    let value = PinValue {
        v: VALUE_VERSION,
        stage,
        pps: r.pps,
        burst: r.burst,
        rate_bps,
        burst_bytes,
        author: format!("{} on {}", super::device::operator(), f.member_name()),
        comment: r.comment.clone(),
        created_unix_ms: now,
        expires_unix_ms: now + ttl_ms,
    };
    value.check(target).map_err(anyhow::Error::msg)?;
    let bytes = value.encode();
    if bytes.len() > f.sync.max_value_bytes as usize {
        bail!(
            "the pin's value is {} bytes, over fleet.sync.max_value_bytes ({}): shorten --comment",
            bytes.len(),
            f.sync.max_value_bytes
        );
    }
    let mut c = client::connect(f).await?;
    // The lease outlives the value's expiry by under a second (whole seconds): members stop at
    // `expires_unix_ms` themselves.
    let lease = deadline(f, "granting the pin's lease", c.lease_grant(ttl_ms.div_ceil(1000) as i64, None)).await?;
    let key = target.key(&f.name);
    deadline(f, "writing the pin", c.put(key.clone(), bytes, Some(PutOptions::new().with_lease(lease.id())))).await?;
    Ok(format!(
        "fleet {}: pin for {} at {} for {} written to etcd ({key}); each member connected to etcd applies it \
         within 2 s, and one that cannot apply it logs why (`guard fleet list`: the members alive)",
        f.name,
        target.describe(),
        stage.name(),
        r.ttl
    ))
}

async fn unpin(a: UnpinArgs) -> Result<()> {
    let f = a.cfg.fleet()?;
    let target = a.what.target()?;
    let mut c = client::connect(&f).await?;
    let key = target.key(&f.name);
    let r = deadline(&f, "deleting the pin", c.delete(key.clone(), None)).await?;
    if r.deleted() == 0 {
        println!("fleet {}: no pin for {} ({key}): nothing to unpin", f.name, target.describe());
    } else {
        println!(
            "fleet {}: pin for {} deleted from etcd; each member connected to etcd removes its stage within 2 s",
            f.name,
            target.describe()
        );
    }
    Ok(())
}

async fn list(a: ListArgs) -> Result<()> {
    let f = a.cfg.fleet()?;
    let mut c = client::connect(&f).await?;
    let prefix = pins_prefix(&f.name);
    let opts = GetOptions::new().with_prefix().with_limit(i64::from(f.sync.max_keys));
    let pins = deadline(&f, "listing the pins", c.get(prefix.clone(), Some(opts))).await?;
    let mprefix = members_prefix(&f.name);
    let mopts = GetOptions::new().with_prefix().with_limit(i64::from(f.sync.max_keys));
    let members = deadline(&f, "listing the members", c.get(mprefix.clone(), Some(mopts))).await?;
    let now = unix_ms(SystemTime::now());
    let mut rows = Vec::new();
    for kv in pins.kvs() {
        let key = String::from_utf8_lossy(kv.key()).into_owned();
        rows.push(match decode(&prefix, kv.key(), kv.value(), f.sync.max_value_bytes as usize) {
            Ok((t, v)) => serde_json::json!({
                "key": key, "target": t.describe(), "stage": v.stage.name(), "pps": v.pps, "burst": v.burst,
                "rate_bps": v.rate_bps, "burst_bytes": v.burst_bytes,
                "expires_in_s": v.expires_unix_ms.saturating_sub(now) / 1000, "author": v.author, "comment": v.comment,
            }),
            Err(e) => serde_json::json!({ "key": key, "invalid": e.to_string() }),
        });
    }
    // Each member's name and, when it has one, its summary group (from the value it keeps under
    // members/: a member of an AMF set or UPF pool sums that group's cells only).
    let alive: Vec<(String, Option<String>)> = members
        .kvs()
        .iter()
        .filter_map(|kv| {
            let name = String::from_utf8_lossy(kv.key()).strip_prefix(&mprefix).map(str::to_owned)?;
            Some((name, summary_group_of(kv.value())))
        })
        .collect();
    let names: Vec<&str> = alive.iter().map(|(n, _)| n.as_str()).collect();
    if a.json {
        let groups: serde_json::Map<String, serde_json::Value> =
            alive.iter().filter_map(|(n, g)| Some((n.clone(), g.clone()?.into()))).collect();
        let out = serde_json::json!({
            "fleet": f.name, "pins": rows, "members": names, "summary_groups": groups, "truncated": pins.more(),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    let shown: Vec<String> = alive
        .iter()
        .map(|(n, g)| g.as_ref().map_or_else(|| n.clone(), |g| format!("{n} (summary group {g})")))
        .collect();
    println!("fleet {}: {} member(s) alive: {}", f.name, alive.len(), shown.join(", "));
    if rows.is_empty() {
        println!("no pins");
    }
    for r in &rows {
        match r.get("invalid") {
            Some(e) => println!("  INVALID {}: {}", r["key"].as_str().unwrap_or("?"), e.as_str().unwrap_or("?")),
            None => println!(
                "  {:<28} {:<10}{} expires in {:>6} s  by {}  ({})",
                r["target"].as_str().unwrap_or("?"),
                r["stage"].as_str().unwrap_or("?"),
                r["rate_bps"].as_u64().map_or(String::new(), |b| format!(" {}", guard_common::units::BitRate(b))),
                r["expires_in_s"],
                r["author"].as_str().unwrap_or("?"),
                r["comment"].as_str().unwrap_or("")
            ),
        }
    }
    if pins.more() {
        println!("  ... more than fleet.sync.max_keys ({}) pins: the rest are not shown", f.sync.max_keys);
    }
    Ok(())
}

/// The `summary_group` a member's value under members/ names, if any (a value that is not JSON,
/// from another version or written by hand, shows the member without one).
fn summary_group_of(value: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(value).ok()?;
    v.get("summary_group")?.as_str().map(str::to_owned)
}
