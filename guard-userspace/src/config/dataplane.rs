//! `[dataplane]`: the protections' modes and limits, and the records written from them to the
//! N3 program's maps (`N3_CONFIG`, `N3_LOCAL`, `N3_FRAMED`).

use super::*;

/// How one data-plane protection acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Not computed at all.
    Off,
    /// Computed and counted as "would drop", but the packet passes (safe rollout).
    Shadow,
    /// Drops.
    Enforce,
}

/// `[dataplane]`: the record written to the N3 program's config map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataplaneSection {
    pub modes: Modes,
    /// Per-device profile limit at stage 0. Exceeding it passes the packet but counts `over_limit`
    /// and emits an evidence event; it is also the ceiling of any learned profile. `pps` and
    /// `burst` in packets; optionally `rate = "2Mbit/s"` and `burst_bytes` (0: one second of the
    /// rate) beside them, the byte profile (T-PDU octets): a device within the packet profile
    /// but over the byte profile counts `over_bytes` (a volume excess) and the same evidence.
    pub observe: ProfileLimit,
    /// Per-gNB rate of never-seen TEIDs (caps TEID scans / random-TEID floods).
    pub new_device: PpsLimit,
    /// Per-path Echo Request budget (a path: a gNB address and one of this host's addresses),
    /// applied only while the host receives more than `echo_host`. TS 29.281 §7.2.1: no more
    /// than one per path per 60 s; the burst covers the retransmissions of an unanswered request
    /// (T3-RESPONSE / N3-REQUESTS) and a restart.
    pub echo: PeriodLimit,
    /// Host-wide Echo Request rate below which no Echo Request is limited: answering one costs
    /// the UPF next to nothing, while dropping a real one can cost a gNB its path (and every
    /// session on it). Set it to what the UPF answers without harm; only a rate above it, which
    /// a forger must pay for, engages the per-path budgets.
    pub echo_host: PpsLimit,
    /// After a G-PDU's first IP fragment is dropped, its later fragments (same source,
    /// destination and Identification, RFC 791 §3.2) are dropped for this long. Fragments of one
    /// datagram arrive back to back; longer would let a benign datagram that reuses the
    /// Identification on the same gNB path be caught.
    pub fragment_window: Dur,
    /// Outer sources the guard does not know yet (never carried traffic it saw within minutes, no
    /// established session vouching for them) that get a record of their own, host-wide. The
    /// rest share one record and the new-device budget `unknown_new_device`: a forger rotating
    /// its source address gets one budget, not one per address (docs/dataplane.md).
    pub new_gnb: PpsLimit,
    /// New devices (never-seen TEIDs) admitted from all unknown sources together, host-wide.
    pub unknown_new_device: PpsLimit,
    /// Per-gNB Error Indication rate.
    pub err_ind: PeriodLimit,
    /// QFIs (0..=63) never shaped or dropped by rate stages (e.g. the flows carrying emergency
    /// or mission-critical 5QIs).
    pub exempt_qfi: Vec<u8>,
    /// Minimum gap between two over-limit events of one device. It starts at an event sent: a
    /// device whose event `event_rate` suppressed asks again with its next packet over the limit.
    pub event_gap: Dur,
    /// TEID ranges of non-IP PDU sessions (Ethernet, Unstructured: TS 23.501 §5.6.10), at most
    /// 4, e.g. `["0xf0000000-0xffffffff"]` when the UPF allocates the Ethernet DNN's TEIDs there
    /// (TS 29.244 §8.2.82). Their G-PDUs are counted as non-IP and never read as IP, whatever
    /// the T-PDU's first octet. Without it the guard still classifies each T-PDU: one that is not
    /// an IP packet of its own length is non-IP (docs/dataplane.md).
    pub non_ip_teids: Vec<TeidRange>,
    /// Anti-spoofing binds an IPv6 session to this prefix of its inner source (1..=64 bits): TS
    /// 23.501 §5.8.2.2 gives each IPv6 PDU session a /64, inside which the UE forms its SLAAC and
    /// privacy addresses (RFC 8981); shorter for delegated prefixes (§5.8.2.2.4). UE-address key
    /// mode keys IPv6 devices by the same prefix.
    pub antispoof_v6_prefix: u8,
    /// A binding that has not matched a passed G-PDU for this long is replaced by the next source
    /// that passes ("0s": never): how a forged first packet's binding is corrected
    /// (docs/dataplane.md, "Anti-spoofing").
    pub antispoof_rebind: Dur,
    /// Framed routes (TS 23.501 §5.6.14): prefixes of networks behind UEs whose inner sources
    /// anti-spoofing accepts without binding them, e.g. `["10.99.0.0/16", "2001:db8:f00::/48"]`.
    pub framed_routes: Vec<Prefix>,
    /// N3 addresses (from `guard.n3_addrs`) that serve only non-IP PDU sessions (a UPF instance of
    /// an Ethernet or Unstructured DNN): their G-PDUs are non-IP whatever they carry.
    pub non_ip_local_addrs: Vec<IpAddr>,
    /// Per-CPU event rate, so a flood cannot flood the ring buffer. The default, 20000/s per
    /// CPU, carries one over-limit event a second from each of 1% of 1M devices even when one
    /// CPU receives them all; the controller drains the ring on its own thread.
    pub event_rate: PpsLimit,
}

impl Default for DataplaneSection {
    fn default() -> Self {
        DataplaneSection {
            modes: Modes::default(),
            observe: ProfileLimit { pps: 200, burst: 400, rate: Rate::NONE, burst_bytes: 0 },
            new_device: PpsLimit { pps: 1000, burst: 2000 },
            echo: PeriodLimit { count: 1, per: Dur::secs(60), burst: 8 },
            echo_host: PpsLimit { pps: 20_000, burst: 40_000 },
            fragment_window: Dur(50_000_000),
            new_gnb: PpsLimit { pps: 100, burst: 200 },
            unknown_new_device: PpsLimit { pps: 1000, burst: 2000 },
            err_ind: PeriodLimit { count: 100, per: Dur::secs(1), burst: 200 },
            exempt_qfi: Vec::new(),
            non_ip_teids: Vec::new(),
            non_ip_local_addrs: Vec::new(),
            antispoof_v6_prefix: 64,
            antispoof_rebind: Dur::secs(60),
            framed_routes: Vec::new(),
            event_gap: Dur::secs(1),
            event_rate: PpsLimit { pps: 20_000, burst: 2000 },
        }
    }
}

/// `[dataplane.modes]`: one mode per protection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Modes {
    pub shape: Mode,
    pub strict: Mode,
    pub quarantine: Mode,
    pub cell_cap: Mode,
    pub host_cap: Mode,
    /// Inner-source binding check. Shadow by default: a UE legitimately changing its address
    /// (e.g. IPv6 privacy addresses) must be understood before it is enforced.
    pub antispoof: Mode,
    pub new_device: Mode,
    pub echo: Mode,
    pub err_ind: Mode,
    pub malformed: Mode,
}

impl Default for Modes {
    fn default() -> Self {
        Modes {
            shape: Mode::Enforce,
            strict: Mode::Enforce,
            quarantine: Mode::Enforce,
            cell_cap: Mode::Enforce,
            host_cap: Mode::Enforce,
            antispoof: Mode::Shadow,
            new_device: Mode::Enforce,
            echo: Mode::Enforce,
            err_ind: Mode::Enforce,
            malformed: Mode::Enforce,
        }
    }
}

/// The N3 protections' bits and their `[modes]` names, in the order operators read them.
pub const PROTECTIONS: [(u32, &str); 10] = [
    (PROT_SHAPE, "shape"),
    (PROT_STRICT, "strict"),
    (PROT_QUARANTINE, "quarantine"),
    (PROT_CELL_CAP, "cell_cap"),
    (PROT_HOST_CAP, "host_cap"),
    (PROT_ANTISPOOF, "antispoof"),
    (PROT_NEW_DEVICE, "new_device"),
    (PROT_ECHO, "echo"),
    (PROT_ERR_IND, "err_ind"),
    (PROT_MALFORMED, "malformed"),
];

/// The protections of `names` by mode, from the data plane's `(enabled, shadow)` masks:
/// `[enforced, shadow, off]` (a shadow bit is always enabled too).
pub fn protections_by_mode<'a>(enabled: u32, shadow: u32, names: &[(u32, &'a str)]) -> [Vec<&'a str>; 3] {
    let pick = |f: &dyn Fn(u32) -> bool| names.iter().filter(|(b, _)| f(*b)).map(|(_, n)| *n).collect::<Vec<_>>();
    [
        pick(&|b| enabled & b != 0 && shadow & b == 0),
        pick(&|b| enabled & b != 0 && shadow & b != 0),
        pick(&|b| enabled & b == 0),
    ]
}

impl Modes {
    fn each(&self) -> [(u32, Mode, &'static str); 10] {
        let modes = [
            self.shape,
            self.strict,
            self.quarantine,
            self.cell_cap,
            self.host_cap,
            self.antispoof,
            self.new_device,
            self.echo,
            self.err_ind,
            self.malformed,
        ];
        core::array::from_fn(|i| (PROTECTIONS[i].0, modes[i], PROTECTIONS[i].1))
    }

    /// The protections in `mode`, by their config names.
    pub fn named(&self, mode: Mode) -> Vec<&'static str> {
        self.each().iter().filter(|(_, m, _)| *m == mode).map(|(_, _, n)| *n).collect()
    }

    /// The `(enabled, shadow)` protection masks of [`GuardConfig`].
    pub fn masks(&self) -> (u32, u32) {
        self.each().iter().fold((0, 0), |(en, sh), (bit, mode, _)| match mode {
            Mode::Off => (en, sh),
            Mode::Shadow => (en | bit, sh | bit),
            Mode::Enforce => (en | bit, sh),
        })
    }
}

impl Config {
    pub(super) fn validate_dataplane(&self, v: &mut Validator) {
        let d = &self.dataplane;
        v.pps("dataplane.observe", &d.observe.packets());
        v.rate("dataplane.observe.rate", d.observe.rate);
        v.pps("dataplane.new_device", &d.new_device);
        v.pps("dataplane.event_rate", &d.event_rate);
        v.period("dataplane.echo", &d.echo);
        v.pps("dataplane.echo_host", &d.echo_host);
        v.pps("dataplane.new_gnb", &d.new_gnb);
        v.pps("dataplane.unknown_new_device", &d.unknown_new_device);
        v.period("dataplane.err_ind", &d.err_ind);
        for (i, q) in d.exempt_qfi.iter().enumerate() {
            v.check(*q <= 63, &format!("dataplane.exempt_qfi[{i}]"), "QFI must be 0..=63 (TS 23.501 §5.7.1)");
        }
        v.check(
            d.non_ip_teids.len() <= guard_common::abi::NON_IP_TEID_RANGES,
            "dataplane.non_ip_teids",
            "at most 4 ranges (the data plane checks each on every G-PDU)",
        );
        v.check(
            (1..=64).contains(&d.antispoof_v6_prefix),
            "dataplane.antispoof_v6_prefix",
            "must be 1..=64 (TS 23.501 §5.8.2.2: a session's IPv6 prefix is a /64 or shorter)",
        );
        v.check(
            d.framed_routes.len() <= guard_common::abi::DEFAULT_MAX_FRAMED as usize,
            "dataplane.framed_routes",
            "at most 4096 prefixes",
        );
        v.check(d.event_gap.0 > 0, "dataplane.event_gap", "must be > 0");
        v.check(
            d.fragment_window.0 > 0 && d.fragment_window.0 <= 1_000_000_000,
            "dataplane.fragment_window",
            "must be > 0 and at most 1s (an IP Identification is reused within seconds on a busy path)",
        );
    }

    /// The data-plane configuration record for a host with `ncpus` CPUs. The host cap is per CPU
    /// (each CPU runs its own GCRA), so the host-wide cap is divided among them; it stays inactive
    /// (`host_cap_expires_ns = 0`) until the engine engages it.
    pub fn dataplane(&self, ncpus: u32) -> GuardConfig {
        let d = &self.dataplane;
        let (enabled, shadow) = d.modes.masks();
        let host = &self.capacity.host;
        GuardConfig {
            gtpu_port: u32::from(self.guard.gtpu_port),
            key_mode: match self.guard.key_mode {
                KeyMode::Teid => KEY_MODE_TEID,
                KeyMode::UeAddr => KEY_MODE_UE_ADDR,
            },
            enabled,
            shadow,
            exempt_qfi: d.exempt_qfi.iter().filter(|q| **q <= 63).fold(0u64, |m, q| m | (1u64 << q)),
            observe: d.observe.limit(),
            observe_bytes: d.observe.byte_limit(),
            new_device: d.new_device.limit(),
            echo: d.echo.limit(),
            err_ind: d.err_ind.limit(),
            host_cap: Limit::per_second(cpu_share(host.cap_pps, ncpus), cpu_share(host.burst, ncpus)),
            host_cap_expires_ns: 0,
            event_gap_ns: d.event_gap.0,
            event_rate: d.event_rate.limit(),
            // The whole rate on every CPU, not a share: one gNB path's Echo Requests arrive on one
            // receive queue (one 5-tuple), so a share would limit them below `echo_host`. The
            // rate is a floor (never limited below it), the host-wide bound up to ncpus times it.
            echo_host: d.echo_host.limit(),
            frag_window_ns: d.fragment_window.0,
            new_gnb: Limit::per_second(cpu_share(d.new_gnb.pps, ncpus), cpu_share(d.new_gnb.burst, ncpus)),
            unknown_new_device: Limit::per_second(
                cpu_share(d.unknown_new_device.pps, ncpus),
                cpu_share(d.unknown_new_device.burst, ncpus),
            ),
            non_ip_teid: core::array::from_fn(|i| {
                d.non_ip_teids.get(i).map_or(TeidSpan::default(), |r| TeidSpan { first: r.first, last: r.last })
            }),
            non_ip_ranges: d.non_ip_teids.len().min(guard_common::abi::NON_IP_TEID_RANGES) as u32,
            local_addrs: self.guard.n3_addrs.len() as u32,
            framed_routes: d.framed_routes.len() as u32,
            antispoof_v6_prefix: u32::from(d.antispoof_v6_prefix),
            antispoof_rebind_ns: d.antispoof_rebind.0,
            // Set with the host cap by the engine, only when it engages for an overload in
            // octets (`capacity.host.capacity_rate`).
            host_cap_bytes: ByteLimit::UNLIMITED,
        }
    }

    /// The host's N3 addresses with their `LOCAL_FLAG_*`, for the table `N3_LOCAL`.
    pub fn local_addrs(&self) -> Vec<(IpAddr, u32)> {
        let non_ip = |a: &IpAddr| self.dataplane.non_ip_local_addrs.contains(a);
        self.guard
            .n3_addrs
            .iter()
            .map(|a| (*a, if non_ip(a) { guard_common::abi::LOCAL_FLAG_NON_IP } else { 0 }))
            .collect()
    }

    /// The framed routes, as (address, prefix length), for `N3_FRAMED`.
    pub fn framed_routes(&self) -> Vec<(IpAddr, u8)> {
        self.dataplane.framed_routes.iter().map(|p| (p.addr, p.len)).collect()
    }
}
