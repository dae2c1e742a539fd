//! The N3 lab topology: a RAN namespace (several gNB addresses on one veth) joined to a CORE
//! namespace whose veth end (`n3`) is where the guard's XDP program is attached. Static
//! neighbour entries on both sides, so sends never wait for ARP/ND. Everything is removed when
//! the [`Lab`] is dropped.
//!
//! ```text
//!   RAN netns                                CORE netns
//!   n3-ran 10.200.0.11..(10+gnbs)/24  <==>   n3 10.200.0.1/24
//!          fd00:200::11/64                      fd00:200::1/64
//!          02:00:00:00:00:01                    02:00:00:00:00:02
//! ```

use std::net::{Ipv4Addr, Ipv6Addr};

use anyhow::{bail, Result};

use crate::frames::GtpFrame;
use crate::netns::{mac_string, Netns, VethEnd, VethPair};

pub const RAN_IFNAME: &str = "n3-ran";
pub const CORE_IFNAME: &str = "n3";
pub const RAN_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
pub const CORE_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
pub const CORE_V4: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);
pub const CORE_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x200, 0, 0, 0, 0, 0, 1);
pub const GNB_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x200, 0, 0, 0, 0, 0, 0x11);
/// First gNB IPv4 address; the others follow.
pub const GNB_V4_BASE: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 11);

/// Options of a [`Lab`].
#[derive(Clone, Debug)]
pub struct LabBuilder {
    gnbs: usize,
    mtu: u32,
    core_extra_v4: Vec<Ipv4Addr>,
}

impl Default for LabBuilder {
    fn default() -> Self {
        LabBuilder { gnbs: 4, mtu: 1500, core_extra_v4: Vec::new() }
    }
}

impl LabBuilder {
    /// Number of gNB IPv4 addresses on the RAN veth (1..=200).
    pub fn gnbs(mut self, n: usize) -> Self {
        self.gnbs = n;
        self
    }

    pub fn mtu(mut self, mtu: u32) -> Self {
        self.mtu = mtu;
        self
    }

    /// More IPv4 addresses on the core's N3 link (/24, in the lab's subnet): a host with several
    /// UPF N3 addresses (F-TEIDs, TS 29.281 §5.1). [`CORE_V4`] is there anyway.
    pub fn core_addrs(mut self, addrs: &[Ipv4Addr]) -> Self {
        self.core_extra_v4 = addrs.iter().copied().filter(|a| *a != CORE_V4).collect();
        self
    }

    pub fn build(self) -> Result<Lab> {
        if !(1..=200).contains(&self.gnbs) {
            bail!("gnbs must be 1..=200, got {}", self.gnbs);
        }
        let ran = Netns::new("ran")?;
        let core = Netns::new("core")?;
        let gnb_v4: Vec<Ipv4Addr> = (0..self.gnbs).map(|i| Ipv4Addr::from(u32::from(GNB_V4_BASE) + i as u32)).collect();
        let mut ran_end = VethEnd::new(&ran, RAN_IFNAME).mac(RAN_MAC).addr(&format!("{GNB_V6}/64"));
        for a in &gnb_v4 {
            ran_end = ran_end.addr(&format!("{a}/24"));
        }
        let mut core_end = VethEnd::new(&core, CORE_IFNAME)
            .mac(CORE_MAC)
            .addr(&format!("{CORE_V4}/24"))
            .addr(&format!("{CORE_V6}/64"));
        for a in &self.core_extra_v4 {
            if !(u32::from(CORE_V4)..u32::from(GNB_V4_BASE)).contains(&u32::from(*a)) {
                bail!("extra core address {a} is not in 10.200.0.2..=10.200.0.10");
            }
            core_end = core_end.addr(&format!("{a}/24"));
        }
        let veth = VethPair::new(ran_end, core_end, self.mtu)?;

        let core_mac = mac_string(&CORE_MAC);
        let ran_mac = mac_string(&RAN_MAC);
        for (addr, mac, ns, dev) in [
            (CORE_V4.to_string(), &core_mac, &ran, RAN_IFNAME),
            (CORE_V6.to_string(), &core_mac, &ran, RAN_IFNAME),
            (GNB_V6.to_string(), &ran_mac, &core, CORE_IFNAME),
        ]
        .into_iter()
        .chain(self.core_extra_v4.iter().map(|a| (a.to_string(), &core_mac, &ran, RAN_IFNAME)))
        .chain(gnb_v4.iter().map(|a| (a.to_string(), &ran_mac, &core, CORE_IFNAME)))
        {
            ns.ip(&["neigh", "replace", &addr, "lladdr", mac, "dev", dev, "nud", "permanent"])?;
        }
        Ok(Lab { veth, ran, core, gnb_v4, mtu: self.mtu })
    }
}

/// A RAN + CORE pair of namespaces joined by a veth. Drop removes everything (veth first, then
/// the namespaces), also while unwinding from a panic.
#[derive(Debug)]
pub struct Lab {
    // Field order is drop order.
    veth: VethPair,
    pub ran: Netns,
    pub core: Netns,
    pub gnb_v4: Vec<Ipv4Addr>,
    pub mtu: u32,
}

impl Lab {
    /// A lab with 4 gNB addresses and MTU 1500.
    pub fn new() -> Result<Lab> {
        LabBuilder::default().build()
    }

    pub fn builder() -> LabBuilder {
        LabBuilder::default()
    }

    /// GET /metrics from `127.0.0.1:port` inside the CORE namespace, where the guard listens (its
    /// metrics bind to localhost of its own namespace): [`scrape_metrics_in`].
    pub fn scrape_metrics(&self, port: u16) -> Option<String> {
        scrape_metrics_in(&self.core, port)
    }

    /// `GET path` on the guard's listener inside the CORE namespace: (status code, body).
    pub fn http_get(&self, port: u16, path: &str) -> Option<(u16, String)> {
        use std::io::{Read as _, Write as _};
        let req = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
        self.core
            .run(move || {
                let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
                s.set_read_timeout(Some(std::time::Duration::from_secs(5))).ok()?;
                s.write_all(req.as_bytes()).ok()?;
                let mut text = String::new();
                s.read_to_string(&mut text).ok()?;
                let code = text.split_whitespace().nth(1)?.parse().ok()?;
                let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
                Some((code, body))
            })
            .ok()
            .flatten()
    }

    /// Name of the CORE namespace (attach XDP from a thread inside it: `lab.core.run(..)`).
    pub fn core_ns_name(&self) -> &str {
        self.core.name()
    }

    pub fn ran_ns_name(&self) -> &str {
        self.ran.name()
    }

    /// The N3 interface in the CORE namespace, where XDP goes.
    pub fn core_ifname(&self) -> &str {
        self.veth.b().1
    }

    /// `guard_n3` loaded with `cfg` (pins in a scope named `scope`) and attached to the CORE
    /// veth, from inside the CORE namespace. Panics with the cause: a test cannot go on without it.
    pub fn attach_guard(&self, scope: &str, cfg: &guard_common::abi::GuardConfig) -> crate::bpf::Guard {
        let iface = self.core_ifname().to_owned();
        let (scope, cfg) = (scope.to_owned(), *cfg);
        self.core
            .run(move || -> Result<crate::bpf::Guard> {
                let mut g = crate::bpf::Guard::load_in(crate::bpf::PinScope::new(&scope), &cfg, 0)?;
                g.loaded.attach(&iface, guard::bpf::link::ModeRequest::Auto)?;
                Ok(g)
            })
            .expect("entering the core namespace")
            .unwrap_or_else(|e| panic!("load + attach on the core veth: {e:#}"))
    }

    /// The RAN side of the veth, where the generator sends.
    pub fn ran_ifname(&self) -> &str {
        self.veth.a().1
    }

    pub fn core_ifindex(&self) -> Result<u32> {
        self.core.ifindex(self.core_ifname())
    }

    pub fn ran_mac(&self) -> [u8; 6] {
        RAN_MAC
    }

    pub fn core_mac(&self) -> [u8; 6] {
        CORE_MAC
    }

    pub fn core_v4(&self) -> Ipv4Addr {
        CORE_V4
    }

    pub fn core_v6(&self) -> Ipv6Addr {
        CORE_V6
    }

    pub fn gnb_v6(&self) -> Ipv6Addr {
        GNB_V6
    }

    /// A G-PDU on `teid` from gNB number `gnb` (modulo the gNB count) to the core, with the
    /// lab's MACs and addresses; adjust it further with the builder.
    pub fn gpdu_v4(&self, gnb: usize, teid: u32) -> GtpFrame {
        let src = self.gnb_v4[gnb % self.gnb_v4.len()];
        GtpFrame::gpdu(teid).macs(RAN_MAC, CORE_MAC).outer_v4(src, CORE_V4)
    }

    /// A G-PDU on `teid` from gNB number `gnb` to the core's N3 address `n3` (the F-TEID's
    /// address, TS 29.281 §5.1).
    pub fn gpdu_to(&self, gnb: usize, n3: Ipv4Addr, teid: u32) -> GtpFrame {
        let src = self.gnb_v4[gnb % self.gnb_v4.len()];
        GtpFrame::gpdu(teid).macs(RAN_MAC, CORE_MAC).outer_v4(src, n3)
    }

    /// A G-PDU on `teid` from the gNB's IPv6 address to the core's.
    pub fn gpdu_v6(&self, teid: u32) -> GtpFrame {
        GtpFrame::gpdu(teid).macs(RAN_MAC, CORE_MAC).outer_v6(GNB_V6, CORE_V6)
    }

    /// Fill in the lab's MACs and an outer IPv4 path from gNB `gnb` for any builder.
    pub fn route_v4(&self, frame: GtpFrame, gnb: usize) -> GtpFrame {
        frame.macs(RAN_MAC, CORE_MAC).outer_v4(self.gnb_v4[gnb % self.gnb_v4.len()], CORE_V4)
    }
}

/// A series of a scrape (`name{labels}`) without its `interface` label, which every per-interface
/// series of the guard carries: tests name series by what they count, whichever NIC it is.
pub fn series_key(series: &str) -> String {
    let Some((name, rest)) = series.split_once('{') else { return series.to_owned() };
    let labels = rest.trim_end_matches('}');
    let kept: Vec<&str> = labels.split(',').filter(|l| !l.is_empty() && !l.starts_with("interface=")).collect();
    if kept.is_empty() {
        name.to_owned()
    } else {
        format!("{name}{{{}}}", kept.join(","))
    }
}

/// A TCP port on the host's 127.0.0.1 that nothing listens on now, for a `guard run`'s metrics
/// listener in a test. Another process may take it before the guard binds it; the guard then
/// fails at start-up with the address in its error, so the test fails loudly, never silently.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// GET /metrics from `127.0.0.1:port` inside `ns`. The response of a `200 OK` answer, or `None` if
/// the listener is not up yet, refuses, times out (2 s) or answers otherwise.
pub fn scrape_metrics_in(ns: &Netns, port: u16) -> Option<String> {
    use std::io::{Read as _, Write as _};
    ns.run(move || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.set_read_timeout(Some(std::time::Duration::from_secs(2))).ok()?;
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
        let mut body = String::new();
        s.read_to_string(&mut body).ok()?;
        body.contains("200 OK").then_some(body)
    })
    .ok()
    .flatten()
}

/// The most frames [`send_and_count`] can count: the sink's sample.
const COUNT_SAMPLE: usize = 10_000;

/// Send `frames` round-robin, `n` in all at `pps`, from RAN to a sink on CORE, and count what
/// arrived by `key` of each frame the sink sampled (at most 10,000). Fails if the generator hit its
/// deadline, the sink's socket overflowed or its sample filled up (or `n` alone would fill it):
/// its counts would then not be evidence, frames past the sample going uncounted.
pub fn send_and_count<K: Ord>(
    lab: &Lab,
    frames: &[Vec<u8>],
    n: u64,
    pps: u64,
    key: impl Fn(&[u8]) -> Option<K>,
) -> Result<(crate::generator::SendReport, std::collections::BTreeMap<K, u64>)> {
    use crate::generator::{send_frames, SendOpts};
    use crate::sink::{Sink, SinkOpts};
    if n >= COUNT_SAMPLE as u64 {
        bail!("{n} frames would fill the sink's sample of {COUNT_SAMPLE}: the counts past it would be lost");
    }
    let sink =
        Sink::start_with(&lab.core, lab.core_ifname(), SinkOpts { sample: COUNT_SAMPLE, ..SinkOpts::default() })?;
    let sent = send_frames(
        &lab.ran,
        lab.ran_ifname(),
        frames,
        &SendOpts::new(n, std::time::Duration::from_secs(10)).pps(pps),
    )?;
    if sent.sent != n {
        bail!("the generator hit its deadline: {sent:?}");
    }
    sink.wait_quiet(std::time::Duration::from_millis(200), std::time::Duration::from_secs(5));
    let got = sink.stop()?;
    if got.kernel_drops != 0 {
        bail!("the sink's socket overflowed ({} drops): its counts are not evidence", got.kernel_drops);
    }
    if got.sample.len() >= COUNT_SAMPLE {
        bail!("the sink's sample filled up ({} frames): frames past it went uncounted", got.sample.len());
    }
    let mut seen = std::collections::BTreeMap::new();
    for f in &got.sample {
        if let Some(k) = key(f) {
            *seen.entry(k).or_default() += 1;
        }
    }
    Ok((sent, seen))
}

/// An IPv4 SCTP frame's source address and first chunk type (0 DATA, 1 INIT: RFC 9260 §3.2),
/// untagged or with one 802.1Q tag.
pub fn sctp_source_and_chunk(f: &[u8]) -> Option<(Ipv4Addr, u8)> {
    let l3 = if f.get(12..14)? == [0x81, 0x00] { 18 } else { 14 };
    if f.get(l3 - 2..l3)? != [0x08, 0x00] || *f.get(l3 + 9)? != 132 {
        return None;
    }
    let src = Ipv4Addr::new(*f.get(l3 + 12)?, *f.get(l3 + 13)?, *f.get(l3 + 14)?, *f.get(l3 + 15)?);
    let ihl = usize::from(*f.get(l3)? & 0x0f) * 4;
    Some((src, *f.get(l3 + ihl + 12)?))
}

#[cfg(test)]
mod series_tests {
    #[test]
    fn the_interface_label_is_left_out() {
        use super::series_key;
        assert_eq!(series_key("a_total{interface=\"n3\",verdict=\"x\"}"), "a_total{verdict=\"x\"}");
        assert_eq!(series_key("a{interface=\"n3\"}"), "a");
        assert_eq!(series_key("a{verdict=\"x\"}"), "a{verdict=\"x\"}");
        assert_eq!(series_key("a"), "a");
    }
}
