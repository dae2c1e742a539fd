//! The BPF map ABI of the N2/S1-MME program `guard_n2` (SCTP carrying NGAP or S1AP).
//!
//! Same rules as [`crate::abi`]: `#[repr(C)]`, integers only, no implicit padding (size
//! assertions at the bottom), times in `CLOCK_MONOTONIC` ns. Changing a layout here **must** bump
//! [`N2_SCHEMA_VERSION`]; [`n2_layout_fingerprint`] catches a forgotten bump when pins are reused.
//!
//! Identity on N2 (DESIGN §2 "Identity"): the SCTP peer (source address) is a whole RAN node;
//! the cell is the NR-CGI / E-UTRAN CGI of an InitialUEMessage's UserLocationInformation; the
//! device is its 5G-S-TMSI (or S-TMSI, or the 5G-GUTI in a plain Registration Request) and, when
//! the UE gave none, the pair (peer, RAN-UE-NGAP-ID), which only lives as long as one UE-associated
//! signalling connection.
//!
//! Enforcement is per *peer* and only on what is safe for SCTP (DESIGN §2 "Enforcement must respect
//! the protocol"): association setup (INIT / COOKIE-ECHO), the allow-list, malformed SCTP, and the
//! whole-peer quarantine (top stage). Per-cell and per-device maps are *measurements* for the
//! controller, which answers with 3GPP-native controls (NGAP OVERLOAD START, access barring).

use super::{L3Addr, Limit, TatSlot, META_MAGIC};

/// Bump on any change to an N2 map's key or value layout, type, or the meaning of a field.
pub const N2_SCHEMA_VERSION: u32 = 4;
/// [`crate::abi::Meta::program`] of pins written by the N2 loader.
pub const META_PROG_N2: u32 = 2;

// Map names (at most 15 bytes; also the pin file names). `GUARD_META` is shared with N3.
pub const MAP_N2_CONFIG: &str = "N2_CONFIG";
pub const MAP_N2_PEERS: &str = "N2_PEERS";
pub const MAP_N2_PEER_STAGES: &str = "N2_PEER_STAGES";
pub const MAP_N2_ALLOW: &str = "N2_ALLOW";
pub const MAP_N2_CELLS: &str = "N2_CELLS";
pub const MAP_N2_DEVICES: &str = "N2_DEVICES";
pub const MAP_N2_VERDICTS: &str = "N2_VERDICTS";
pub const MAP_N2_SHADOW: &str = "N2_SHADOW";
pub const MAP_N2_MALFORMED: &str = "N2_MALFORMED";
pub const MAP_N2_STATS: &str = "N2_STATS";
pub const MAP_N2_EVENTS: &str = "N2_EVENTS";
pub const MAP_N2_PCPU_TAT: &str = "N2_PCPU_TAT";
pub const MAP_N2_COOKIES: &str = "N2_COOKIES";
pub const MAP_N2_ASSOC: &str = "N2_ASSOC";
pub const MAP_N2_VTAGS: &str = "N2_VTAGS";
pub const MAP_N2_ALIAS: &str = "N2_ALIAS";
/// Name of the N2 XDP program in the object file.
pub const PROG_N2: &str = "guard_n2";
/// Name of the N2 egress classifier (TC) in the object file: it watches the AMF's INIT ACKs and
/// COOKIE ACKs (see [`N2TagKey`], [`N2PortKey`]).
pub const PROG_N2_EGRESS: &str = "guard_n2_egress";

/// SCTP ports (TS 38.412 §7: NGAP 38412; TS 36.412 §7: S1AP 36412) and payload protocol
/// identifiers (IANA: 60 NGAP, 18 S1AP).
pub const NGAP_PORT: u16 = 38412;
pub const S1AP_PORT: u16 = 36412;
pub const PPID_NGAP: u32 = 60;
pub const PPID_S1AP: u32 = 18;

/// Capacities. RAN nodes are few (peers); cells and devices are many.
pub const N2_DEFAULT_MAX_PEERS: u32 = 1 << 14;
pub const N2_DEFAULT_MAX_PEER_STAGES: u32 = 1 << 12;
pub const N2_DEFAULT_MAX_ALLOW: u32 = 1 << 14;
pub const N2_DEFAULT_MAX_CELLS: u32 = 1 << 16;
/// Compiled-in capacity of `N2_DEVICES`. Kept modest because the N3 loader creates every map of
/// the shared object too; the N2 loader raises it (see `guard::n2::LoadOpts::max_devices`).
pub const N2_DEFAULT_MAX_DEVICES: u32 = 1 << 14;
pub const N2_EVENTS_RING_BYTES: u32 = 1 << 16;
/// `N2_COOKIES`: INIT ACKs the AMF sent in the last cookie lifetime. A blind INIT flood of R/s
/// makes the AMF send at most the admitted INIT rate of INIT ACKs; 64 Ki entries hold over a
/// minute of them at 1,000/s (LRU: the oldest go first, and an old cookie is stale anyway).
pub const N2_DEFAULT_MAX_COOKIES: u32 = 1 << 16;
/// `N2_ASSOC`: (peer address, peer port) of associations the AMF accepted.
pub const N2_DEFAULT_MAX_ASSOC: u32 = 1 << 14;
/// `N2_VTAGS`: the peer's verification tag of each association the AMF talks to → the address
/// it first sent that association's chunks to (its primary path).
pub const N2_DEFAULT_MAX_VTAGS: u32 = 1 << 14;
/// `N2_ALIAS`: the other addresses of multi-homed peers (RFC 9260 §6.4) → their primary.
pub const N2_DEFAULT_MAX_ALIAS: u32 = 1 << 14;

/// Chunk classes: the index into [`N2PeerState::chunks`] (and the per-packet counts of the
/// parser). RFC 9260 §3.2 chunk types.
/// DATA (0) and I-DATA (64, RFC 8260).
pub const CHUNK_CLASS_DATA: usize = 0;
pub const CHUNK_CLASS_INIT: usize = 1;
pub const CHUNK_CLASS_INIT_ACK: usize = 2;
pub const CHUNK_CLASS_SACK: usize = 3;
pub const CHUNK_CLASS_HEARTBEAT: usize = 4;
pub const CHUNK_CLASS_HEARTBEAT_ACK: usize = 5;
pub const CHUNK_CLASS_ABORT: usize = 6;
/// SHUTDOWN (7), SHUTDOWN ACK (8), SHUTDOWN COMPLETE (14).
pub const CHUNK_CLASS_SHUTDOWN: usize = 7;
/// ERROR (9).
pub const CHUNK_CLASS_ERROR: usize = 8;
pub const CHUNK_CLASS_COOKIE_ECHO: usize = 9;
pub const CHUNK_CLASS_COOKIE_ACK: usize = 10;
/// Anything else (ECNE, CWR, AUTH, ASCONF, RE-CONFIG, FORWARD-TSN, PAD, unknown ...). I-DATA
/// (RFC 8260) is counted as DATA.
pub const CHUNK_CLASS_OTHER: usize = 11;
pub const CHUNK_CLASS_COUNT: usize = 12;

/// Procedure classes: the index into [`N2PeerState::procs`]. NGAP (TS 38.413 §9.4.7) and S1AP
/// (TS 36.413 §9.3.7) procedure codes of the same procedure share a class.
/// initiatingMessage InitialUEMessage (NGAP 15, S1AP 12).
pub const PROC_INITIAL_UE: usize = 0;
/// initiatingMessage UplinkNASTransport (NGAP 46, S1AP 13).
pub const PROC_UPLINK_NAS: usize = 1;
/// initiatingMessage NGSetup (21) / S1Setup (17).
pub const PROC_SETUP: usize = 2;
/// initiatingMessage UEContextReleaseRequest (NGAP 42, S1AP 18).
pub const PROC_UE_CTX_RELEASE_REQ: usize = 3;
/// Any other initiatingMessage.
pub const PROC_OTHER_INITIATING: usize = 4;
/// Any successfulOutcome.
pub const PROC_SUCCESSFUL: usize = 5;
/// Any unsuccessfulOutcome.
pub const PROC_UNSUCCESSFUL: usize = 6;
/// A DATA chunk of PPID 60/18 that begins a message whose PDU header could not be read.
pub const PROC_UNPARSED: usize = 7;
pub const PROC_CLASS_COUNT: usize = 8;

/// [`N2PeerState::flags`] bits.
pub const PEER_FLAG_NGAP: u32 = 1 << 0;
pub const PEER_FLAG_S1AP: u32 = 1 << 1;

/// Per-peer (per source address: a gNB / ng-eNB / eNB) counters, in the LRU map `N2_PEERS`
/// (data-plane owned). Enforcement state lives in `N2_PEER_STAGES`, never evicted by the data plane.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct N2PeerState {
    pub packets: u64,
    pub bytes: u64,
    pub last_seen_ns: u64,
    /// Chunks seen, by `CHUNK_CLASS_*`.
    pub chunks: [u64; CHUNK_CLASS_COUNT],
    /// NGAP / S1AP messages seen (DATA chunks that begin a message), by `PROC_*`.
    pub procs: [u64; PROC_CLASS_COUNT],
    /// Packets carrying INIT or COOKIE-ECHO.
    pub setups: u64,
    /// Setup packets above the stage-0 profile limit ([`N2Config::setup_observe`]): evidence.
    pub setup_over_limit: u64,
    /// Setup packets dropped by the peer's stage-1/2 setup limit.
    pub setup_dropped: u64,
    /// Packets a setup limit would have dropped but that carried DATA, so passed.
    pub setup_spared: u64,
    /// Packets of this peer dropped, any reason.
    pub dropped: u64,
    /// Malformed SCTP packets from this peer (counted only once the peer is known).
    pub malformed: u64,
    /// InitialUEMessages whose IEs were walked (cell / device accounting done).
    pub ue_walked: u64,
    /// GCRA state of the stage-0 setup profile limit.
    pub tat_setup_observe: u64,
    pub last_event_ns: u64,
    /// Verification tag of the last packet (diagnostics).
    pub last_vtag: u32,
    /// `PEER_FLAG_*`.
    pub flags: u32,
}

/// [`N2CellKey::kind`].
pub const CELL_KIND_NR: u32 = 1;
pub const CELL_KIND_EUTRA: u32 = 2;

/// A cell: NR-CGI (PLMN + 36-bit NR Cell Identity, TS 38.413 §9.3.1.7) or E-UTRAN CGI (PLMN +
/// 28-bit cell identity, TS 38.413 §9.3.1.9 / TS 36.413 §9.2.1.38).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct N2CellKey {
    pub kind: u32,
    /// PLMN Identity as on the wire (TS 38.413 §9.3.3.5: MCC/MNC BCD digits), in bytes 0..3.
    pub plmn: [u8; 4],
    /// The cell identity, right-aligned.
    pub cell_id: u64,
}

/// Per-cell registration-attempt counters, in the LRU map `N2_CELLS` (data-plane owned).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct N2CellState {
    /// InitialUEMessages from this cell (all attempts to access).
    pub initial_ue: u64,
    /// ... whose NAS-PDU is a Registration Request (5GMM 0x41) / Attach Request (EMM 0x41).
    pub registration_requests: u64,
    /// ... Service Request (5GMM 0x4c) / EMM Service Request.
    pub service_requests: u64,
    /// ... any other or unreadable NAS message.
    pub other_nas: u64,
    /// ... carrying a (5G-)S-TMSI IE: a device already registered.
    pub with_s_tmsi: u64,
    /// ... whose RRC establishment cause is emergency, highPriorityAccess, mps- or
    /// mcs-PriorityAccess (never to be barred).
    pub priority: u64,
    pub first_seen_ns: u64,
    pub last_seen_ns: u64,
    /// Last RAN node that reported the cell.
    pub last_peer: L3Addr,
    /// Last Tracking Area Code (24 bits NGAP, 16 bits S1AP).
    pub tac: u32,
    /// InitialUEMessages whose only identity is a SUCI (5GMM Registration Request) or an IMSI
    /// (EMM Attach Request): no (5G-)S-TMSI IE, no GUTI. Added in schema 3: such attempts have no
    /// identity that lasts beyond one connection, so a storm of them is attributed per cell and
    /// by pattern (docs/n2.md §4.6), from this counter and the next.
    pub suci_only: u64,
    /// The SUCI-only attempts by RRC establishment cause ([`N2DeviceState::rrc_cause`]: the root
    /// index, extension values after the roots), [`RRC_CAUSE_SLOTS`] - 1 for none / another value.
    pub suci_causes: [u32; RRC_CAUSE_SLOTS],
}

/// Slots of [`N2CellState::suci_causes`]: NGAP's 12 causes (10 root, 2 extension) and S1AP's 8
/// fit below the last, which counts a missing cause.
pub const RRC_CAUSE_SLOTS: usize = 16;

/// [`N2DeviceKey::kind`].
/// 5G-S-TMSI (NGAP FiveG-S-TMSI IE, or the tail of a 5G-GUTI): `id[0..2]` = AMF Set ID (10
/// bits) and AMF Pointer (6 bits) big-endian, `id[2..6]` = 5G-TMSI.
pub const N2_DEV_KIND_5G_S_TMSI: u32 = 1;
/// S-TMSI (S1AP): `id[0]` = MMEC, `id[1..5]` = M-TMSI.
pub const N2_DEV_KIND_S_TMSI: u32 = 2;
/// No temporary identity: the peer address (`id` as in [`L3Addr::addr`]) and the RAN-UE-NGAP-ID
/// / eNB-UE-S1AP-ID in `aux`. Lives for one UE-associated signalling connection only.
pub const N2_DEV_KIND_RAN_UE_V4: u32 = 4;
pub const N2_DEV_KIND_RAN_UE_V6: u32 = 6;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct N2DeviceKey {
    pub kind: u32,
    pub aux: u32,
    pub id: [u8; 16],
}

impl N2DeviceKey {
    /// The key of a 5G-S-TMSI (TS 23.003 §2.11): AMF Set ID (10 bits), AMF Pointer (6 bits), 5G-TMSI.
    pub const fn five_g_s_tmsi(set_id: u16, pointer: u8, tmsi: u32) -> Self {
        let sp = ((set_id & 0x3ff) << 6) | (pointer as u16 & 0x3f);
        let s = sp.to_be_bytes();
        let t = tmsi.to_be_bytes();
        N2DeviceKey {
            kind: N2_DEV_KIND_5G_S_TMSI,
            aux: 0,
            id: [s[0], s[1], t[0], t[1], t[2], t[3], 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        }
    }

    /// The key of an S-TMSI (TS 23.003 §2.9): MMEC, M-TMSI.
    pub const fn s_tmsi(mmec: u8, m_tmsi: u32) -> Self {
        let t = m_tmsi.to_be_bytes();
        N2DeviceKey {
            kind: N2_DEV_KIND_S_TMSI,
            aux: 0,
            id: [mmec, t[0], t[1], t[2], t[3], 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        }
    }

    /// (peer, RAN-UE-NGAP-ID); `None` when the peer's family is unknown.
    pub const fn ran_ue(peer: &L3Addr, ran_ue_id: u32) -> Option<Self> {
        match peer.family {
            crate::abi::FAMILY_IPV4 => Some(N2DeviceKey { kind: N2_DEV_KIND_RAN_UE_V4, aux: ran_ue_id, id: peer.addr }),
            crate::abi::FAMILY_IPV6 => Some(N2DeviceKey { kind: N2_DEV_KIND_RAN_UE_V6, aux: ran_ue_id, id: peer.addr }),
            _ => None,
        }
    }
}

/// Per-device access attempts, in the LRU map `N2_DEVICES` (data-plane owned).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct N2DeviceState {
    /// InitialUEMessages (access attempts).
    pub attempts: u64,
    pub registration_requests: u64,
    pub service_requests: u64,
    pub first_seen_ns: u64,
    pub last_seen_ns: u64,
    /// Last cell.
    pub cell: N2CellKey,
    /// Last RAN node.
    pub peer: L3Addr,
    /// Last RAN-UE-NGAP-ID / eNB-UE-S1AP-ID.
    pub ran_ue_id: u32,
    /// Last RRC establishment cause: the ENUMERATED root index, an extension value after the
    /// roots (NGAP notAvailable 10, mo-ExceptionData 11; S1AP delay-TolerantAccess 5,
    /// mo-VoiceCall 6, mo-ExceptionData 7), or [`RRC_CAUSE_NONE`].
    pub rrc_cause: u32,
    /// Last NAS message type (5GMM / EMM), or 0.
    pub nas_msg: u32,
}

/// No RRC establishment cause seen (or an extension index beyond any defined).
pub const RRC_CAUSE_NONE: u32 = 0xff;

/// Protection bits for [`N2Config::enabled`] / [`N2Config::shadow`]; off / shadow / enforce as on
/// N3 ([`crate::policy::Gate`]).
/// Stage 1: the peer's setup-rate limit (INIT / COOKIE-ECHO).
pub const N2_PROT_SETUP_LIMIT: u32 = 1 << 0;
/// Stage 2: the peer's strict setup-rate limit.
pub const N2_PROT_SETUP_STRICT: u32 = 1 << 1;
/// Stage 3: whole-peer quarantine (every SCTP packet of the peer, DATA included).
pub const N2_PROT_QUARANTINE: u32 = 1 << 2;
/// The peer allow-list `N2_ALLOW`: SCTP from sources not in it is dropped.
pub const N2_PROT_ALLOWLIST: u32 = 1 << 3;
/// Malformed SCTP (common header or chunk structure) is dropped.
pub const N2_PROT_MALFORMED: u32 = 1 << 4;
pub const N2_PROT_ALL: u32 = (1 << 5) - 1;

/// The N2 program's configuration, one entry in the array `N2_CONFIG`. Userspace writes it whole.
/// All zero (ports 0) until then: nothing matches and every packet passes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct N2Config {
    /// SCTP destination port of NGAP (38412); 0 = none.
    pub ngap_port: u32,
    /// SCTP destination port of S1AP (36412); 0 = none.
    pub s1ap_port: u32,
    pub enabled: u32,
    pub shadow: u32,
    /// Per-peer profile limit on setup packets at stage 0: exceeding it is evidence, not a drop.
    pub setup_observe: Limit,
    /// Minimum gap between two events of one peer.
    pub event_gap_ns: u64,
    /// Per-CPU event rate limit.
    pub event_rate: Limit,
    /// The re-establishment lane: while a peer is setup-limited (stage 1 or 2), an INIT from an
    /// address and port the AMF had an association with (`N2_ASSOC`, seen within
    /// `assoc_memory_ns`) is charged to that port's own GCRA at this rate, not to the peer's
    /// stage limit that a forger with the same address shares. Zero interval: no lane.
    pub reestablish: Limit,
    /// How long an association's port stays known after the AMF last sent it anything.
    pub assoc_memory_ns: u64,
    /// How long an INIT ACK's tag admits a COOKIE ECHO (RFC 9260 §5.1.3 Valid.Cookie.Life,
    /// 60 s by default in §16). Zero: issued cookies get no lane.
    pub cookie_life_ns: u64,
    /// `N2_SETUP_*` flags.
    pub setup_flags: u32,
    pub _pad: u32,
}

/// [`N2Config::setup_flags`]: the egress classifier is attached, so a COOKIE ECHO whose tag it
/// never saw leave cannot belong to an association the AMF offered: such a packet is limited
/// even when it may carry DATA (no association exists for that DATA to belong to). Without it, a
/// COOKIE ECHO padded past the parse window would bypass every setup limit.
pub const N2_SETUP_COOKIE_REQUIRED: u32 = 1 << 0;

/// A peer's stage (map `N2_PEER_STAGES`, userspace-owned): the N3 record, read as
/// - `stage` 0 observe, 1 setup limit, 2 strict setup limit (`interval_ns`/`tau_ns` are the
///   peer's INIT+COOKIE-ECHO GCRA, `tat` its kernel-owned state), 3 whole-peer quarantine;
/// - `flags` `STAGE_FLAG_MANUAL` / `STAGE_FLAG_EXEMPT` (an exempt peer is never staged);
/// - `expires_ns`: the entry stops applying after it.
///
/// The layout of N3's [`super::StageEntry`] before byte limits (N3 schema 7): a setup limit
/// counts INIT and COOKIE ECHO chunks, for which a byte rate means nothing, so N2 keeps this
/// record and its schema.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct N2StageEntry {
    pub stage: u32,
    pub flags: u32,
    /// GCRA emission interval for stages 1 and 2 (`1e9 / pps`); 0 = unlimited.
    pub interval_ns: u64,
    /// GCRA burst tolerance (`(burst - 1) * interval_ns`).
    pub tau_ns: u64,
    /// Monotonic ns after which the entry no longer applies.
    pub expires_ns: u64,
    /// GCRA state, kernel-owned (userspace writes 0 when it sets a stage).
    pub tat: u64,
    /// Monotonic ns when userspace set the entry.
    pub set_ns: u64,
    /// Controller reason code (userspace-defined, for `guard status` and audit).
    pub reason: u32,
    /// Reserved (a device group id in N3's record), zero.
    pub group: u32,
}

/// Value of `N2_ALLOW` (key: the peer's [`L3Addr`]): non-zero = allowed.
pub type N2AllowEntry = u32;

/// Per-CPU limiter state (`N2_PCPU_TAT`): `event_tat` is used.
pub type N2TatSlot = TatSlot;

/// Indexes of `N2_STATS` (misc per-CPU counters).
pub const N2_STAT_EVENTS_SENT: u32 = 0;
pub const N2_STAT_EVENTS_LOST: u32 = 1;
pub const N2_STAT_EVENTS_SUPPRESSED: u32 = 2;
/// A map update failed: the packet passed (fail-open) or its accounting was skipped.
pub const N2_STAT_MAP_UPDATE_FAILED: u32 = 3;
pub const N2_STAT_NO_CONFIG: u32 = 4;
/// An NGAP/S1AP message (or its IE container) could not be decoded. Never a drop: the DATA chunk
/// belongs to an association and the AMF/MME answers malformed NGAP itself.
pub const N2_STAT_NGAP_UNPARSED: u32 = 5;
/// The chunk walk stopped before the end of the packet (more chunks than walked, or beyond the
/// parse window). Not malformed: INIT and COOKIE-ECHO are always first (RFC 9260 §6.10, §5.1).
pub const N2_STAT_WALK_CUT: u32 = 6;
/// InitialUEMessages in one packet beyond the ones whose IEs are walked.
pub const N2_STAT_UE_SKIPPED: u32 = 7;
/// COOKIE ECHOs whose tag the AMF issued to that address and port (never setup-limited).
pub const N2_STAT_COOKIE_ISSUED: u32 = 8;
/// COOKIE ECHOs with a tag the egress classifier never saw leave (a forgery, a stale cookie,
/// or an INIT ACK that left through another NIC): limited like any setup packet.
pub const N2_STAT_COOKIE_UNISSUED: u32 = 9;
/// INITs of a setup-limited peer charged to an association's re-establishment lane.
pub const N2_STAT_INIT_REESTABLISH: u32 = 10;
/// Egress (guard_n2_egress): INIT ACKs recorded in `N2_COOKIES`.
pub const N2_STAT_EGRESS_INIT_ACK: u32 = 11;
/// Egress: association ports recorded or refreshed in `N2_ASSOC`.
pub const N2_STAT_EGRESS_ASSOC: u32 = 12;
/// IP fragments of SCTP after the first (judged by source only: allow-list and quarantine).
pub const N2_STAT_FRAGMENTS: u32 = 13;
/// First fragments of SCTP packets (judged like whole packets on the chunks they hold).
pub const N2_STAT_FIRST_FRAGMENTS: u32 = 14;
/// Packets from another address of a multi-homed peer, counted and judged as that peer.
pub const N2_STAT_ALIASED: u32 = 15;
/// Egress: addresses learned as another path of an association (`N2_ALIAS`).
pub const N2_STAT_EGRESS_ALIAS: u32 = 16;
pub const N2_STAT_COUNT: u32 = 17;

/// [`N2Event::kind`] values.
/// A peer's setup packets exceeded the stage-0 profile limit.
pub const N2_EVENT_SETUP_OVER_LIMIT: u32 = 1;
/// A peer's setup packet was dropped by its stage-1/2 limit.
pub const N2_EVENT_SETUP_LIMITED: u32 = 2;

/// A ring-buffer record (`N2_EVENTS`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct N2Event {
    pub ts_ns: u64,
    pub kind: u32,
    /// The peer's stage when the event fired.
    pub stage: u32,
    pub peer: L3Addr,
    /// Reserved, zero.
    pub flags: u32,
    /// The peer's setups, setup_over_limit, dropped.
    pub totals: [u64; 3],
}

/// Key of `N2_COOKIES` (LRU, written by the egress classifier `guard_n2_egress`): an INIT ACK the
/// AMF sent to `peer`:`port` whose Initiate Tag is `tag`. The peer's COOKIE ECHO must carry that
/// tag as its Verification Tag (RFC 9260 §8.5; the tag is the AMF's own, drawn at random, §5.3.1),
/// so a COOKIE ECHO from `peer`:`port` with `tag` answers an INIT ACK that really went to that
/// address: a blind forger never saw the INIT ACK and cannot name the tag (a 1-in-2^32 guess per
/// packet). The value is the time the INIT ACK left (`u64` ns).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct N2TagKey {
    pub peer: L3Addr,
    pub port: u16,
    pub _pad: u16,
    pub tag: u32,
}

/// Key of `N2_ASSOC` (LRU, written by the egress classifier): a peer address and SCTP port with
/// which the AMF has had an association (it sent a COOKIE ACK, DATA, SACK or HEARTBEAT there).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct N2PortKey {
    pub peer: L3Addr,
    pub port: u16,
    pub _pad: u16,
}

/// Key of `N2_VTAGS`: an association as the AMF addresses it (the peer's verification tag, RFC
/// 9260 §8.5, and the peer's port, the same on every path of the association).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct N2VtagKey {
    pub tag: u32,
    pub port: u16,
    pub _pad: u16,
}

/// Value of `N2_ASSOC`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct N2AssocState {
    /// Last time the AMF sent this port an association's chunk (egress; refreshed at most once a
    /// second).
    pub up_ns: u64,
    /// GCRA state of the re-establishment lane ([`N2Config::reestablish`]): the INITs from this
    /// address and port while the peer is setup-limited (ingress).
    pub tat: u64,
    /// INITs admitted / dropped in that lane (ingress, diagnostics).
    pub inits: u64,
    pub inits_dropped: u64,
}

/// A fingerprint of every N2 record's size (see [`crate::abi::layout_fingerprint`]).
pub const fn n2_layout_fingerprint() -> u64 {
    let sizes = [
        core::mem::size_of::<L3Addr>(),
        core::mem::size_of::<N2PeerState>(),
        core::mem::size_of::<N2StageEntry>(),
        core::mem::size_of::<N2CellKey>(),
        core::mem::size_of::<N2CellState>(),
        core::mem::size_of::<N2DeviceKey>(),
        core::mem::size_of::<N2DeviceState>(),
        core::mem::size_of::<N2Config>(),
        core::mem::size_of::<N2Event>(),
        core::mem::size_of::<N2TatSlot>(),
        core::mem::size_of::<N2TagKey>(),
        core::mem::size_of::<N2PortKey>(),
        core::mem::size_of::<N2AssocState>(),
        core::mem::size_of::<N2VtagKey>(),
        CHUNK_CLASS_COUNT,
        PROC_CLASS_COUNT,
    ];
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < sizes.len() {
        h ^= sizes[i] as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    h
}

/// The `GUARD_META` record the N2 loader writes.
pub const fn n2_meta() -> crate::abi::Meta {
    crate::abi::Meta {
        magic: META_MAGIC,
        schema_version: N2_SCHEMA_VERSION,
        program: META_PROG_N2,
        layout: n2_layout_fingerprint(),
    }
}

const _: () =
    assert!(core::mem::size_of::<N2PeerState>() == 8 * (3 + CHUNK_CLASS_COUNT + PROC_CLASS_COUNT + 9) + 4 + 4);
const _: () = assert!(core::mem::size_of::<N2StageEntry>() == 4 + 4 + 8 * 5 + 4 + 4);
const _: () = assert!(core::mem::size_of::<N2CellKey>() == 16);
const _: () = assert!(core::mem::size_of::<N2CellState>() == 8 * 8 + 20 + 4 + 8 + 4 * RRC_CAUSE_SLOTS);
const _: () = assert!(core::mem::size_of::<N2DeviceKey>() == 24);
const _: () = assert!(core::mem::size_of::<N2DeviceState>() == 8 * 5 + 16 + 20 + 4 * 3);
const _: () = assert!(core::mem::size_of::<N2Config>() == 4 * 4 + 16 + 8 + 16 + 16 + 8 + 8 + 8);
const _: () = assert!(core::mem::size_of::<N2TagKey>() == 20 + 2 + 2 + 4);
const _: () = assert!(core::mem::size_of::<N2PortKey>() == 20 + 2 + 2);
const _: () = assert!(core::mem::size_of::<N2AssocState>() == 8 * 4);
const _: () = assert!(core::mem::size_of::<N2VtagKey>() == 4 + 2 + 2);
const _: () = assert!(core::mem::size_of::<N2Event>() == 8 + 4 + 4 + 20 + 4 + 24);
