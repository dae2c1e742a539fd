//! Per-packet decisions of the N3 program that do not touch maps: verdict codes, the off / shadow /
//! enforce gate of each protection ([`Gate`]), and what a device's or cell's stage entry says about
//! one packet. The XDP program does the map lookups and calls these; host tests call them directly.

use super::Gate;
use crate::abi::{
    bind_slot, CellStageEntry, DeviceState, GuardConfig, L3Addr, Limit, StageEntry, BIND_FTEID, BIND_V4, BIND_V6,
    CELL_STAGE_CAP, EVENT_DEVICE_OVER_LIMIT, FAMILY_IPV4, FAMILY_IPV6, KEY_MODE_UE_ADDR, PROT_QUARANTINE, PROT_SHAPE,
    PROT_STRICT, QFI_NONE, STAGE_FLAG_EXEMPT, STAGE_QUARANTINE, STAGE_SHAPE, STAGE_STRICT,
};
use crate::rate;

/// The outcome of one packet; the index into the per-CPU counter arrays `N3_VERDICTS` and
/// `N3_SHADOW` (where the drop verdicts count "would drop" in shadow mode).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Not GTP-U: passed untouched.
    PassNotGtp = 0,
    /// Malformed but passed: below GTP-U (truncated Ethernet/IP/UDP, for the kernel stack to
    /// drop), or malformed GTP-U while `PROT_MALFORMED` is not enforced.
    PassMalformed = 1,
    PassGpdu = 2,
    /// Echo, Error Indication, End Marker and other GTP-U signalling within limits.
    PassSignalling = 3,
    /// Device group or QFI exemption.
    PassExempt = 4,
    /// A map operation failed; the guard passes rather than drop on its own failure.
    PassFailOpen = 5,
    /// A later IP fragment whose first fragment was not dropped (or not seen: unattributable).
    PassFragment = 6,
    DropQuarantine = 7,
    DropShape = 8,
    DropStrict = 9,
    DropCellCap = 10,
    DropHostCap = 11,
    DropSpoof = 12,
    DropNewDevice = 13,
    DropEcho = 14,
    DropErrInd = 15,
    DropMalformed = 16,
    /// A later IP fragment of a datagram whose first fragment was dropped.
    DropFragment = 17,
}

impl Verdict {
    pub const COUNT: u32 = 18;

    pub const ALL: [Verdict; Self::COUNT as usize] = [
        Verdict::PassNotGtp,
        Verdict::PassMalformed,
        Verdict::PassGpdu,
        Verdict::PassSignalling,
        Verdict::PassExempt,
        Verdict::PassFailOpen,
        Verdict::PassFragment,
        Verdict::DropQuarantine,
        Verdict::DropShape,
        Verdict::DropStrict,
        Verdict::DropCellCap,
        Verdict::DropHostCap,
        Verdict::DropSpoof,
        Verdict::DropNewDevice,
        Verdict::DropEcho,
        Verdict::DropErrInd,
        Verdict::DropMalformed,
        Verdict::DropFragment,
    ];

    pub const fn is_drop(self) -> bool {
        self as u32 >= Verdict::DropQuarantine as u32
    }

    /// A stable snake_case name (metric label, JSON, CLI).
    pub const fn name(self) -> &'static str {
        match self {
            Verdict::PassNotGtp => "pass_not_gtp",
            Verdict::PassMalformed => "pass_malformed",
            Verdict::PassGpdu => "pass_gpdu",
            Verdict::PassSignalling => "pass_signalling",
            Verdict::PassExempt => "pass_exempt",
            Verdict::PassFailOpen => "pass_fail_open",
            Verdict::PassFragment => "pass_fragment",
            Verdict::DropQuarantine => "drop_quarantine",
            Verdict::DropShape => "drop_shape",
            Verdict::DropStrict => "drop_strict",
            Verdict::DropCellCap => "drop_cell_cap",
            Verdict::DropHostCap => "drop_host_cap",
            Verdict::DropSpoof => "drop_spoof",
            Verdict::DropNewDevice => "drop_new_device",
            Verdict::DropEcho => "drop_echo",
            Verdict::DropErrInd => "drop_err_ind",
            Verdict::DropMalformed => "drop_malformed",
            Verdict::DropFragment => "drop_fragment",
        }
    }
}

#[inline(always)]
pub fn gate(cfg: &GuardConfig, prot: u32) -> Gate {
    if cfg.enabled & prot == 0 {
        Gate::Off
    } else if cfg.shadow & prot != 0 {
        Gate::Shadow
    } else {
        Gate::Enforce
    }
}

/// True when `qfi` is in the configured exemption set.
#[inline(always)]
pub fn qfi_exempt(cfg: &GuardConfig, qfi: u8) -> bool {
    (qfi as u32) < 64 && qfi as u32 != QFI_NONE && cfg.exempt_qfi & (1u64 << qfi) != 0
}

/// What a device's stage entry says about one G-PDU at `now`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StageDecision {
    /// No live stage: the device is at stage 0 (observe).
    Observe,
    /// Exempt device (group exemption): never dropped by rate stages.
    Exempt,
    /// The stage admits this packet.
    Conform,
    /// The stage would drop this packet; `prot` is the protection bit that gates it.
    Exceed { prot: u32, verdict: Verdict },
}

/// Apply `entry` (if still live) to one G-PDU whose T-PDU is `len` octets, advancing its GCRA
/// states when it is a rate stage.
#[inline(always)]
pub fn device_stage(entry: &mut StageEntry, now: u64, len: u64, opaque: impl Fn(u64) -> u64) -> StageDecision {
    if entry.flags & STAGE_FLAG_EXEMPT != 0 {
        return if entry.expires_ns > now { StageDecision::Exempt } else { StageDecision::Observe };
    }
    let limit = crate::abi::Limit { interval_ns: entry.interval_ns, tau_ns: entry.tau_ns };
    let bytes = entry.bytes;
    let tats = StageTats { packets: &mut entry.tat, bytes: &mut entry.tat_bytes };
    stage_decision(entry.stage, entry.expires_ns, &limit, &bytes, tats, now, len, opaque)
}

/// The GCRA states of a rate stage's two limits: the entry's own, or the device record's copy
/// (`DeviceState::stage_tat`, `stage_tat_bytes`).
pub struct StageTats<'a> {
    pub packets: &'a mut u64,
    pub bytes: &'a mut u64,
}

/// What a non-exempt stage entry (`stage`, expiring at `expires_ns`, with `limit` and `bytes` for
/// the rate stages) says about one G-PDU of `len` T-PDU octets at `now`, the GCRA states in
/// `tats`: [`device_stage`] on the entry itself, or on the copy the data plane caches in the
/// device's record (`DeviceState::stage_cache_*`, its own `stage_tat`, `stage_tat_bytes`). A rate
/// stage passes a packet only if both its limits allow it ([`rate::admit_both`]); with no byte
/// limit that is the packet limit alone. `opaque`: see [`rate::byte_step`] (the identity on the
/// host).
#[expect(clippy::too_many_arguments, reason = "inlined into the data plane's policy; a struct would cost stack")]
#[inline(always)]
pub fn stage_decision(
    stage: u32,
    expires_ns: u64,
    limit: &crate::abi::Limit,
    bytes: &crate::abi::ByteLimit,
    tats: StageTats<'_>,
    now: u64,
    len: u64,
    opaque: impl Fn(u64) -> u64,
) -> StageDecision {
    if expires_ns <= now {
        return StageDecision::Observe;
    }
    match stage {
        STAGE_QUARANTINE => StageDecision::Exceed { prot: PROT_QUARANTINE, verdict: Verdict::DropQuarantine },
        STAGE_SHAPE | STAGE_STRICT => {
            if rate::admit_both(tats.packets, tats.bytes, now, limit, bytes, len, opaque) == rate::Admit::Yes {
                StageDecision::Conform
            } else if stage == STAGE_SHAPE {
                StageDecision::Exceed { prot: PROT_SHAPE, verdict: Verdict::DropShape }
            } else {
                StageDecision::Exceed { prot: PROT_STRICT, verdict: Verdict::DropStrict }
            }
        }
        _ => StageDecision::Observe,
    }
}

/// Apply a cell cap entry to one G-PDU whose T-PDU is `len` octets. `true` if the packet is
/// within the cap (or the cap is not live): within its packet rate and its byte rate, both
/// charged only then ([`rate::admits_both`]; no byte rate: the packet rate alone, as
/// [`rate::admit`] judges it). `opaque`: see [`rate::gcra_step`].
#[inline(always)]
pub fn cell_cap_admits(entry: &mut CellStageEntry, now: u64, len: u64, opaque: impl Fn(u64) -> u64) -> bool {
    if entry.stage != CELL_STAGE_CAP || entry.expires_ns <= now {
        return true;
    }
    let limit = crate::abi::Limit { interval_ns: entry.interval_ns, tau_ns: entry.tau_ns };
    let bytes = entry.bytes;
    rate::admits_both(&mut entry.tat, &mut entry.tat_bytes, now, &limit, &bytes, len, opaque)
}

/// Whether a host cap is live at `now`: a packet or a byte rate, not yet expired.
#[inline(always)]
pub fn host_cap_live(cfg: &GuardConfig, now: u64) -> bool {
    (cfg.host_cap.interval_ns | cfg.host_cap_bytes.unit_ns) != 0 && cfg.host_cap_expires_ns > now
}

/// Whether a live host cap admits one G-PDU of `len` T-PDU octets, with the per-CPU states
/// `tat` and `tat_bytes`: both its rates must allow it, as [`cell_cap_admits`].
#[inline(always)]
pub fn host_cap_admits(
    cfg: &GuardConfig,
    tat: &mut u64,
    tat_bytes: &mut u64,
    now: u64,
    len: u64,
    opaque: impl Fn(u64) -> u64,
) -> bool {
    if !host_cap_live(cfg, now) {
        return true;
    }
    rate::admits_both(tat, tat_bytes, now, &cfg.host_cap, &cfg.host_cap_bytes, len, opaque)
}

/// Which of a gNB's Echo budgets ([`crate::abi::CellRecord::tat_echo_path`]) the host address
/// `local` (the outer destination, as four big-endian words; IPv4 in the first) uses.
#[inline(always)]
pub fn echo_path_slot(local: [u32; 4]) -> usize {
    let x = local[0] ^ local[1] ^ local[2] ^ local[3];
    let x = x ^ (x >> 16);
    let x = x ^ (x >> 8);
    (x as usize) % crate::abi::ECHO_PATH_SLOTS
}

/// Whether an Echo Request passes (TS 29.281 §7.2.1). Below the host-wide rate `echo_host` every
/// one does: answering costs the UPF next to nothing, and a limit a low-rate forger could empty
/// would cost the real peer its path supervision (it declares the path down after N3-REQUESTS
/// unanswered retries and releases every session on it). Above it, each path has its own budget
/// `echo`, so an overload on one path does not silence the others. `host_tat` is this CPU's share
/// of the host budget, `path_tat` the path's.
#[inline(always)]
pub fn echo_admits(cfg: &GuardConfig, host_tat: &mut u64, path_tat: &mut u64, now: u64) -> bool {
    if cfg.echo_host.interval_ns == 0 || rate::admit(host_tat, now, &cfg.echo_host) {
        return true;
    }
    rate::admit(path_tat, now, &cfg.echo)
}

/// What anti-spoofing makes of one G-PDU's inner source (docs/dataplane.md, "Anti-spoofing").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bind {
    /// Nothing to check or learn: a link-local or unspecified source (neighbour discovery,
    /// DHCP), or (decided by the caller) a source inside a configured framed route.
    Skip,
    /// The source matches the binding (`bit`).
    Match { bit: u32 },
    /// No binding of this family yet: learn `value` if the packet passes.
    Learn { bit: u32, value: u64 },
    /// The binding has not been matched for `antispoof_rebind_ns`: replace it with `value` if
    /// the packet passes.
    Replace { bit: u32, value: u64 },
    /// Another source while the binding holds: spoofed.
    Spoof,
}

/// The binding a G-PDU's inner source asks for: (`BIND_*` bit, value), or `None` for a source
/// that is never bound. TEID mode binds per family (an IPv4v6 session has one of each, TS 23.501
/// §5.8.2.1): IPv4 the address; IPv6 the prefix of `antispoof_v6_prefix` bits, since the UE picks
/// its SLAAC and privacy addresses inside the /64 it was given (§5.8.2.2.1, RFC 8981). Link-local
/// (fe80::/10) and unspecified IPv6 sources (a Router Solicitation, RFC 4861 §6.3.7; DAD, RFC
/// 4862 §5.4) and the IPv4 0.0.0.0 (DHCPv4 on a session, TS 23.501 §5.8.2.2.2... the UE before it
/// has an address) are never bound. UE-address mode binds the F-TEID the UE address is on.
#[inline(always)]
pub fn binding_of(cfg: &GuardConfig, src: &L3Addr, local: u32, teid: u32) -> Option<(u32, u64)> {
    if !names_ue(src) {
        return None;
    }
    if cfg.key_mode == KEY_MODE_UE_ADDR {
        return Some((BIND_FTEID, (u64::from(local) << 32) | u64::from(teid)));
    }
    if src.family == FAMILY_IPV4 {
        // The four octets in memory order as one native word (`u32::from_ne_bytes` of them),
        // read as one word (`L3Addr::words`: an octet read is one load per octet in BPF).
        Some((BIND_V4, u64::from(src.words()[1])))
    } else {
        Some((BIND_V6, v6_prefix(cfg, src)))
    }
}

/// Whether an inner source names a UE: not link-local (fe80::/10) or unspecified (::) IPv6, which
/// neighbour discovery uses (RFC 4861 §6.3.7, RFC 4862 §5.4), not the IPv4 0.0.0.0 (DHCPv4 before
/// the UE has an address), and IP at all.
#[inline(always)]
pub fn names_ue(src: &L3Addr) -> bool {
    // Read as words (`L3Addr::words`), one test each: a known device's G-PDU asks this once
    // (anti-spoofing), and octet reads and tests cost the data plane one load and one branch
    // per octet (issue 19).
    let w = src.words();
    match src.family {
        FAMILY_IPV4 => w[1] != 0,
        FAMILY_IPV6 => {
            let [a0, a1, ..] = w[1].to_ne_bytes();
            !((a0 == 0xfe && a1 & 0xc0 == 0x80) || (w[1] | w[2] | w[3] | w[4]) == 0)
        }
        _ => false,
    }
}

/// How UE-address key mode keys a G-PDU's inner source ([`ue_key_of`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UeKey {
    /// By its IPv4 address ([`crate::abi::DeviceKey::ue`]).
    V4,
    /// By its IPv6 prefix ([`v6_prefix`], big-endian), the rest of the key zero.
    V6Prefix(u64),
    /// Not a UE address (link-local, unspecified, 0.0.0.0, not IP): keyed by the F-TEID.
    None,
}

/// UE-address key mode: an IPv6 UE is keyed by its prefix, since it forms rotating SLAAC and
/// privacy addresses inside the /64 it was given (TS 23.501 §5.8.2.2.1, RFC 8981) and a key by
/// /128 would make each rotation a new device (escaping its stage, spending its gNB's new-device
/// budget). Sources that name no UE are keyed by the session's F-TEID.
#[inline(always)]
pub fn ue_key_of(cfg: &GuardConfig, src: &L3Addr) -> UeKey {
    // The same sources anti-spoofing never binds name no UE.
    if !names_ue(src) {
        return UeKey::None;
    }
    if src.family == FAMILY_IPV4 {
        UeKey::V4
    } else {
        UeKey::V6Prefix(v6_prefix(cfg, src))
    }
}

/// The first `antispoof_v6_prefix` bits (1..=64, 0 meaning 64) of an IPv6 `src`, big-endian,
/// its first eight octets read as two words (`L3Addr::words`: one load each, where octet reads
/// cost the data plane eight).
#[inline(always)]
pub fn v6_prefix(cfg: &GuardConfig, src: &L3Addr) -> u64 {
    let w = src.words();
    let p = (u64::from(u32::from_be(w[1])) << 32) | u64::from(u32::from_be(w[2]));
    let len = match cfg.antispoof_v6_prefix {
        0 => 64,
        l => l.min(64),
    };
    p & (u64::MAX << (64 - len))
}

/// Judge `(bit, value)` against the device's binding of that family at `now`.
#[inline(always)]
pub fn check_binding(cfg: &GuardConfig, d: &DeviceState, bit: u32, value: u64, now: u64) -> Bind {
    if d.bind_flags & bit == 0 {
        return Bind::Learn { bit, value };
    }
    let bound = match bit {
        BIND_V4 => u64::from(d.bound_v4),
        BIND_V6 => d.bound_v6,
        _ => d.bound_fteid,
    };
    if bound == value {
        return Bind::Match { bit };
    }
    let idle = now.saturating_sub(d.bound_ns[bind_slot(bit)]);
    if cfg.antispoof_rebind_ns != 0 && idle >= cfg.antispoof_rebind_ns {
        return Bind::Replace { bit, value };
    }
    Bind::Spoof
}

/// Record what a G-PDU that *passed* says about its binding (a dropped packet never changes a
/// binding): a match keeps it alive, a new family is learned, an idle binding is replaced.
#[inline(always)]
pub fn apply_binding(d: &mut DeviceState, b: Bind, now: u64) {
    let (bit, value) = match b {
        Bind::Skip | Bind::Spoof => return,
        Bind::Match { bit } => {
            d.bound_ns[bind_slot(bit)] = now;
            return;
        }
        Bind::Learn { bit, value } => (bit, value),
        Bind::Replace { bit, value } => {
            d.rebinds = d.rebinds.wrapping_add(1);
            (bit, value)
        }
    };
    match bit {
        BIND_V4 => d.bound_v4 = value as u32,
        BIND_V6 => d.bound_v6 = value,
        _ => d.bound_fteid = value,
    }
    d.bind_flags |= bit;
    d.bound_ns[bind_slot(bit)] = now;
}

/// The claim on the per-CPU event budget (`cfg.event_rate`) of an event of `kind` about a device
/// at `stage`. A device over its limit (the one event with a per-device gap) claims as
/// [`super::event_budget`] says: the whole budget unstaged, half staged. Every other kind is a
/// per-packet signal (a spoofed inner source, a new device over its gNB's budget, an Echo or
/// Error Indication over its limit): with no per-device gap, each such packet asks, so one
/// sender's flood of them (a spoofed-TEID flood costs nothing to send) would otherwise take the
/// whole budget and leave none for the events that get floods pinned. They take only the upper
/// half ([`Limit::half_burst`]), as a staged device's events do.
#[inline(always)]
pub fn event_claim(cfg: &GuardConfig, kind: u32, stage: u32) -> Limit {
    if kind == EVENT_DEVICE_OVER_LIMIT {
        super::event_budget(&cfg.event_rate, stage)
    } else {
        cfg.event_rate.half_burst()
    }
}

#[cfg(test)]
mod tests;
