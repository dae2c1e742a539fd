//! A forged setup flood cannot lock a real peer out (issue 18, items 1-3): SCTP frames crafted by
//! scapy (an encoder nobody on this project wrote, checked by tshark before use) through the real
//! `guard_n2` and its egress classifier `guard_n2_egress` by BPF_PROG_TEST_RUN.
//!
//! - Item 1: a COOKIE ECHO carrying the tag of an INIT ACK the AMF sent to that address and port
//!   is never limited, however many INITs a forger sent with the same address; one with any other
//!   tag is. An INIT from a port the AMF had an association with has its own lane, which INITs
//!   from the same address on other ports cannot empty.
//! - Item 2: I-DATA (RFC 8260) is DATA; a COOKIE ECHO whose cookie pushes the bundled DATA past the
//!   parse window is treated as carrying DATA. Under `cookie_check = require`, a COOKIE ECHO with
//!   a tag the AMF never issued is limited even with DATA (no association exists for it).
//! - Item 3: IP fragments of SCTP: the first is judged on the chunks it holds (an INIT is still an
//!   INIT), the later ones by their source (allow-list, quarantine), never as "not N2".

use std::net::Ipv4Addr;

use aya::programs::{TestRun, TestRunOptions};
use guard_common::{
    abi::{L3Addr, Limit, STAGE_QUARANTINE, STAGE_STRICT},
    abi_n2::*,
    policy_n2::N2Verdict,
};
use labkit::assert_root;
use labkit::bpf::{hex, peer_stage_entry as stage_entry, XDP_DROP, XDP_PASS};
use labkit::oracle::{run_python, tshark_fields, TempDir};
use labkit::pcap::read_pcap;
use serde_json::{json, Value};

// `guard_n2` loaded on its own pins, as the other N2 groups load it; this file adds the setup
// lanes' helpers to it (`impl G` below).
use super::{load, G};

const SEC: u64 = 1_000_000_000;
const GNB: Ipv4Addr = Ipv4Addr::new(10, 100, 0, 11);
const OTHER: Ipv4Addr = Ipv4Addr::new(10, 100, 0, 99);
const AMF: Ipv4Addr = Ipv4Addr::new(10, 100, 0, 1);
/// The AMF's Initiate Tag in its INIT ACK to the gNB (RFC 9260 §5.3.1: random, non-zero).
const AMF_TAG: u32 = 0x5eed_a11c;
const TC_ACT_OK: u32 = 0;

/// Builds one frame per JSON object of argv[1] (a list) into the pcap argv[2]. Kinds: init,
/// init_ack, cookie_echo (+ optional bundled data / idata), cookie_ack, sack, and "frag" (the
/// IPv4 fragments of an INIT with `naddr` IPv4 Address parameters, at `fragsize`).
const SCAPY: &str = r#"
import sys, json, struct
from scapy.all import Ether, IP, wrpcap, fragment, Packet, ByteField, FlagsField, ShortField, IntField, StrLenField
from scapy.layers.sctp import (SCTP, SCTPChunkInit, SCTPChunkInitAck, SCTPChunkCookieEcho, SCTPChunkCookieAck,
    SCTPChunkData, SCTPChunkSACK, SCTPChunkParamStateCookie, SCTPChunkParamIPv4Addr, SCTPChunkHeartbeatReq,
    SCTPChunkParamHeartbeatInfo, SCTPChunkAbort)

class SCTPChunkIData(Packet):
    # RFC 8260 §2.1 (scapy 2.5 has no I-DATA): type 64, flags (I U B E), length, TSN, stream id,
    # reserved, Message Identifier, PPID (B set) / FSN, user data.
    name = "SCTPChunkIData"
    fields_desc = [ByteField("type", 64), FlagsField("flags", 3, 8, ["E", "B", "U", "I", "r4", "r5", "r6", "r7"]),
                   ShortField("len", None), IntField("tsn", 1), ShortField("stream_id", 0),
                   ShortField("reserved", 0), IntField("mid", 0), IntField("ppid", 60),
                   StrLenField("data", b"", length_from=lambda p: (p.len or 20) - 20)]
    def post_build(self, p, pay):
        if self.len is None:
            p = p[:2] + struct.pack(">H", len(p)) + p[4:]
        return p + b"\x00" * ((-len(p)) % 4) + pay

frames = []
for s in json.load(open(sys.argv[1])):
    eth = Ether(src='02:00:00:00:00:01', dst='02:00:00:00:00:02')
    ip = IP(src=s["src"], dst=s["dst"], id=s.get("ipid", 1))
    sctp = SCTP(sport=s["sport"], dport=s["dport"], tag=s.get("vtag", 0))
    k = s["kind"]
    if k == "init" or k == "frag":
        params = [SCTPChunkParamIPv4Addr(addr="10.200.%d.%d" % (i // 250, i % 250 + 1)) for i in range(s.get("naddr", 0))]
        pkt = eth / ip / sctp / SCTPChunkInit(init_tag=s["tag"], a_rwnd=65535, n_out_streams=2, n_in_streams=2,
                                              init_tsn=1, params=params)
        if k == "frag":
            frames += [eth / f for f in fragment(pkt[IP], fragsize=s["fragsize"])]
            continue
    elif k == "init_ack":
        pkt = eth / ip / sctp / SCTPChunkInitAck(init_tag=s["tag"], a_rwnd=65535, n_out_streams=2, n_in_streams=2,
                                                 init_tsn=1, params=[SCTPChunkParamStateCookie(cookie=b"\xc0" * 64)])
    elif k == "cookie_echo":
        pkt = eth / ip / sctp / SCTPChunkCookieEcho(cookie=bytes([0xc0]) * s["cookie_len"])
        if "data" in s:
            pkt = pkt / SCTPChunkData(tsn=1, stream_id=0, proto_id=60, beginning=1, ending=1,
                                      data=bytes.fromhex(s["data"]))
        if "idata" in s:
            pkt = pkt / SCTPChunkIData(tsn=1, ppid=60, data=bytes.fromhex(s["idata"]))
    elif k == "cookie_ack":
        pkt = eth / ip / sctp / SCTPChunkCookieAck()
    elif k == "sack":
        pkt = eth / ip / sctp / SCTPChunkSACK(cumul_tsn_ack=1, a_rwnd=65535)
    elif k == "heartbeat":
        pkt = eth / ip / sctp / SCTPChunkHeartbeatReq(params=[SCTPChunkParamHeartbeatInfo(data=b"\x01" * 12)])
    elif k == "abort":
        pkt = eth / ip / sctp / SCTPChunkAbort()
    elif k == "data":
        pkt = eth / ip / sctp / SCTPChunkData(tsn=1, stream_id=0, proto_id=60, beginning=1, ending=1,
                                              data=bytes.fromhex(s["data"]))
    frames.append(pkt)
wrpcap(sys.argv[2], frames)
print(len(frames))
"#;

/// An NGAP NGSetupRequest-sized placeholder PDU header: initiatingMessage, procedureCode 21
/// (TS 38.413 §9.4.7). The setup tests are about chunks, not NGAP.
const NGAP_BYTES: &str = "0015000400000000";

fn spec(kind: &str, src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16) -> Value {
    json!({"kind": kind, "src": src.to_string(), "dst": dst.to_string(), "sport": sport, "dport": dport})
}

fn with(mut v: Value, extra: Value) -> Value {
    if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        for (k, x) in e {
            o.insert(k.clone(), x.clone());
        }
    }
    v
}

/// Frames crafted by scapy; tshark reads back each whole frame's chunk types and verification
/// tag, and they must be what was asked for.
fn scapy(specs: &[Value]) -> Vec<Vec<u8>> {
    let dir = TempDir::new("n2-setup-frames").expect("temp dir");
    let list = dir.join("frames.json");
    std::fs::write(&list, serde_json::to_string(specs).expect("json")).expect("write the frame list");
    let pcap = dir.join("frames.pcap");
    let out = run_python(SCAPY, &[list.to_str().expect("utf-8"), pcap.to_str().expect("utf-8")])
        .expect("scapy (python3-scapy) builds the SCTP frames");
    let n: usize = out.trim().parse().expect("scapy prints the frame count");
    let frames = read_pcap(&pcap).expect("read scapy's pcap");
    assert_eq!(frames.len(), n);
    let rows = tshark_fields(&pcap, &["frame.number", "sctp.chunk_type", "sctp.verification_tag", "ip.flags.mf"], None)
        .expect("tshark dissects the frames");
    let mut row = rows.iter();
    for s in specs {
        let want: &[&str] = match s["kind"].as_str().unwrap_or_default() {
            "init" => &["1"],
            "init_ack" => &["2"],
            "cookie_ack" => &["11"],
            "sack" => &["3"],
            "heartbeat" => &["4"],
            "abort" => &["6"],
            "data" => &["0"],
            "cookie_echo" if s.get("data").is_some() => &["10", "0"],
            "cookie_echo" if s.get("idata").is_some() => &["10", "64"],
            "cookie_echo" => &["10"],
            _ => &[],
        };
        if s["kind"] == "frag" {
            // tshark reassembles: only the last fragment carries the SCTP dissection.
            let frags: Vec<_> = row.by_ref().take_while(|r| r[3] == "1").collect();
            assert!(!frags.is_empty(), "scapy fragmented the INIT");
            continue;
        }
        let r = row.next().expect("one tshark row per frame");
        let types: Vec<&str> = r[1].split(',').collect();
        assert_eq!(types, want, "tshark reads the chunks asked for: {r:?} for {s}");
        let vtag = u32::from_str_radix(r[2].trim_start_matches("0x"), 16).expect("a verification tag");
        assert_eq!(u64::from(vtag), s.get("vtag").and_then(Value::as_u64).unwrap_or(0), "{s}");
    }
    frames
}

fn config(cookie_check_required: bool) -> N2Config {
    N2Config {
        ngap_port: NGAP_PORT as u32,
        s1ap_port: S1AP_PORT as u32,
        enabled: N2_PROT_ALL & !N2_PROT_ALLOWLIST,
        event_gap_ns: SEC,
        reestablish: Limit::per_second(1, 2),
        assoc_memory_ns: 3600 * SEC,
        cookie_life_ns: 60 * SEC,
        setup_flags: if cookie_check_required { N2_SETUP_COOKIE_REQUIRED } else { 0 },
        ..Default::default()
    }
}

impl G {
    fn verdicts(&self) -> Vec<u64> {
        self.maps.verdicts().expect("N2_VERDICTS").iter().map(|(_, c)| c.packets).collect()
    }

    fn stat(&self, i: u32) -> u64 {
        self.maps.stats().expect("N2_STATS")[i as usize].packets
    }

    /// Run one ingress frame and return the verdict whose counter moved.
    #[track_caller]
    fn verdict(&mut self, frame: &[u8]) -> N2Verdict {
        let before = self.verdicts();
        let prog = self.loaded.program().expect("guard_n2");
        let action = prog
            .test_run(TestRunOptions { data_in: Some(frame), ..Default::default() })
            .expect("BPF_PROG_TEST_RUN guard_n2")
            .return_value;
        let after = self.verdicts();
        let moved: Vec<N2Verdict> =
            N2Verdict::ALL.iter().copied().filter(|v| after[*v as usize] != before[*v as usize]).collect();
        assert_eq!(moved.len(), 1, "one verdict per packet: {moved:?}\nframe {}", hex(frame));
        let v = moved[0];
        assert_eq!(action, if v.is_drop() { XDP_DROP } else { XDP_PASS }, "{v:?}");
        v
    }

    /// Run one frame the AMF sends through the egress classifier.
    fn egress(&mut self, frame: &[u8]) {
        let prog = self.loaded.egress_program().expect("guard_n2_egress loads");
        let r = prog
            .test_run(TestRunOptions { data_in: Some(frame), ..Default::default() })
            .expect("BPF_PROG_TEST_RUN guard_n2_egress");
        assert_eq!(r.return_value, TC_ACT_OK, "the classifier never drops");
    }

    fn strict(&mut self, a: Ipv4Addr) {
        let e = stage_entry(STAGE_STRICT, 1, 1, 600 * SEC);
        self.maps.set_peer_stage(&L3Addr::v4(a.octets()), &e).expect("N2_PEER_STAGES");
    }
}

fn forged_inits(n: u16) -> Vec<Value> {
    (0..n).map(|i| with(spec("init", GNB, AMF, 20000 + i, 38412), json!({"tag": 0x1000 + u32::from(i)}))).collect()
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn a_cookie_echo_the_amf_invited_is_never_limited_and_a_forged_one_is() {
    assert_root("verdict::n2::setup::a_cookie_echo_the_amf_invited_is_never_limited_and_a_forged_one_is");
    let mut specs = vec![
        // The AMF's INIT ACK to the gNB's own INIT (egress).
        with(spec("init_ack", AMF, GNB, 38412, 38412), json!({"vtag": 0x0bad_cafe, "tag": AMF_TAG})),
        // The gNB's COOKIE ECHO: the AMF's tag, from the port the INIT ACK went to.
        with(spec("cookie_echo", GNB, AMF, 38412, 38412), json!({"vtag": AMF_TAG, "cookie_len": 64})),
        // The same bundled with DATA, its cookie as long as a real one (past the old 512-octet window).
        with(
            spec("cookie_echo", GNB, AMF, 38412, 38412),
            json!({"vtag": AMF_TAG, "cookie_len": 500, "data": NGAP_BYTES}),
        ),
        // A forger's guesses: another tag; the right tag from another port.
        with(spec("cookie_echo", GNB, AMF, 38412, 38412), json!({"vtag": AMF_TAG ^ 1, "cookie_len": 64})),
        with(spec("cookie_echo", GNB, AMF, 40000, 38412), json!({"vtag": AMF_TAG, "cookie_len": 64})),
        // A forged COOKIE ECHO bundled with DATA behind a long cookie.
        with(
            spec("cookie_echo", GNB, AMF, 38412, 38412),
            json!({"vtag": 0x7777_7777, "cookie_len": 500, "data": NGAP_BYTES}),
        ),
    ];
    specs.extend(forged_inits(20));
    let f = scapy(&specs);
    let (init_ack, echo, echo_data, wrong_tag, wrong_port, forged_data) = (&f[0], &f[1], &f[2], &f[3], &f[4], &f[5]);

    for required in [true, false] {
        let mut g = load(&config(required));
        g.egress(init_ack);
        assert_eq!(g.stat(N2_STAT_EGRESS_INIT_ACK), 1);
        let key = N2TagKey { peer: L3Addr::v4(GNB.octets()), port: 38412, _pad: 0, tag: AMF_TAG };
        assert!(g.maps.cookie_issued(&key).expect("N2_COOKIES").is_some(), "the INIT ACK's tag is recorded");
        g.strict(GNB);
        // The forger's INIT flood with the gNB's address: the peer's budget (1) is gone.
        let drops = f[6..].iter().filter(|x| g.verdict(x) == N2Verdict::DropSetupStrict).count();
        assert_eq!(drops, 19, "20 forged INITs against a strict budget of 1");
        // The gNB's COOKIE ECHO passes, again and again (a retransmission after a lost COOKIE ACK).
        for _ in 0..3 {
            assert_eq!(g.verdict(echo), N2Verdict::PassSetup);
        }
        assert_eq!(g.verdict(echo_data), N2Verdict::PassData);
        assert_eq!(g.stat(N2_STAT_COOKIE_ISSUED), 4);
        // The forger's cannot.
        assert_eq!(g.verdict(wrong_tag), N2Verdict::DropSetupStrict);
        assert_eq!(g.verdict(wrong_port), N2Verdict::DropSetupStrict);
        let want = if required { N2Verdict::DropSetupStrict } else { N2Verdict::PassDataSpared };
        assert_eq!(g.verdict(forged_data), want, "cookie_check required: {required}");
        assert_eq!(g.stat(N2_STAT_COOKIE_UNISSUED), 3);
    }
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn an_init_from_a_known_association_port_has_its_own_lane() {
    assert_root("verdict::n2::setup::an_init_from_a_known_association_port_has_its_own_lane");
    let mut specs = vec![
        // The AMF talks to the gNB's association on 38412 (egress): COOKIE ACK, then SACKs.
        with(spec("cookie_ack", AMF, GNB, 38412, 38412), json!({"vtag": 0x0bad_cafe})),
        with(spec("sack", AMF, GNB, 38412, 38412), json!({"vtag": 0x0bad_cafe})),
        // The gNB re-establishes from its port (RFC 9260 §5.1: INIT, retransmitted on T1-init).
        with(spec("init", GNB, AMF, 38412, 38412), json!({"tag": 0x0bad_cafe})),
        // Another peer's INIT from the same port number: its own peer, its own state.
        with(spec("init", OTHER, AMF, 38412, 38412), json!({"tag": 0x0bad_cafe})),
    ];
    specs.extend(forged_inits(50));
    let f = scapy(&specs);
    let mut g = load(&config(true));
    g.egress(&f[0]);
    g.egress(&f[1]);
    let key = N2PortKey { peer: L3Addr::v4(GNB.octets()), port: 38412, _pad: 0 };
    assert!(g.maps.assoc_port(&key).expect("N2_ASSOC").is_some(), "the association's port is recorded");
    g.strict(GNB);
    g.strict(OTHER);
    let drops = f[4..].iter().filter(|x| g.verdict(x) == N2Verdict::DropSetupStrict).count();
    assert_eq!(drops, 49, "the forger's INITs from other ports share the peer's budget of 1");
    // The real gNB's INITs from its association's port: the lane's burst (2), then its rate.
    assert_eq!(g.verdict(&f[2]), N2Verdict::PassSetup);
    assert_eq!(g.verdict(&f[2]), N2Verdict::PassSetup);
    assert_eq!(g.verdict(&f[2]), N2Verdict::DropSetupStrict, "the lane is bounded too");
    let lane = g.maps.assoc_port(&key).expect("N2_ASSOC").expect("entry");
    assert_eq!((lane.inits, lane.inits_dropped), (2, 1));
    assert_eq!(g.stat(N2_STAT_INIT_REESTABLISH), 3);
    // A peer without an association on that port has no lane.
    assert_eq!(g.verdict(&f[3]), N2Verdict::PassSetup, "its budget of 1");
    assert_eq!(g.verdict(&f[3]), N2Verdict::DropSetupStrict);
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn i_data_and_data_past_the_parse_window_are_never_dropped_by_a_setup_limit() {
    assert_root("verdict::n2::setup::i_data_and_data_past_the_parse_window_are_never_dropped_by_a_setup_limit");
    let f = scapy(&[
        with(spec("cookie_echo", GNB, AMF, 38412, 38412), json!({"vtag": 9, "cookie_len": 32, "idata": NGAP_BYTES})),
        with(spec("cookie_echo", GNB, AMF, 38412, 38412), json!({"vtag": 9, "cookie_len": 600, "data": NGAP_BYTES})),
        with(spec("cookie_echo", GNB, AMF, 38412, 38412), json!({"vtag": 9, "cookie_len": 32})),
    ]);
    // `prefer` (no egress classifier): every COOKIE ECHO is a setup packet, DATA spares it.
    let mut cfg = config(false);
    cfg.cookie_life_ns = 0;
    let mut g = load(&cfg);
    g.strict(GNB);
    assert_eq!(g.verdict(&f[2]), N2Verdict::PassSetup, "the budget of 1");
    assert_eq!(g.verdict(&f[2]), N2Verdict::DropSetupStrict);
    assert_eq!(g.verdict(&f[0]), N2Verdict::PassDataSpared, "I-DATA is DATA (RFC 8260)");
    let p = g.maps.peer(&L3Addr::v4(GNB.octets())).expect("N2_PEERS").expect("peer");
    assert_eq!(p.chunks[CHUNK_CLASS_DATA], 1, "the I-DATA chunk is counted as DATA");
    assert_eq!(p.procs[PROC_SETUP], 1, "its NGAP PDU header is read at the I-DATA offset");
    // The chunk walk reads the whole packet (issue 18 item 5, docs/n2.md §2): the DATA behind a
    // 600-octet cookie is seen, and spares the packet as DATA, not as a walk cut short.
    assert_eq!(g.verdict(&f[1]), N2Verdict::PassDataSpared, "DATA behind a 600-octet cookie");
    let p = g.maps.peer(&L3Addr::v4(GNB.octets())).expect("N2_PEERS").expect("peer");
    assert_eq!(p.chunks[CHUNK_CLASS_DATA], 2, "the DATA behind the long cookie is counted");
    assert_eq!(p.procs[PROC_SETUP], 2, "and its NGSetupRequest read");
    assert_eq!(p.setup_spared, 2);
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn ip_fragments_of_sctp_are_judged_not_passed_blind() {
    assert_root("verdict::n2::setup::ip_fragments_of_sctp_are_judged_not_passed_blind");
    // An INIT with 400 IPv4 Address parameters (3.2 kB), fragmented at 1200 octets.
    let f = scapy(&[
        with(spec("frag", GNB, AMF, 38412, 38412), json!({"tag": 77, "naddr": 400, "fragsize": 1200, "ipid": 7})),
        with(spec("frag", OTHER, AMF, 38412, 38412), json!({"tag": 78, "naddr": 400, "fragsize": 1200, "ipid": 8})),
    ]);
    assert_eq!(f.len(), 6, "three fragments each");
    let (gnb, other) = (&f[..3], &f[3..]);
    let mut g = load(&config(true));
    // Unstaged: the first fragment is an INIT (counted as setup), the rest pass as fragments.
    assert_eq!(g.verdict(&gnb[0]), N2Verdict::PassSetup);
    assert_eq!(g.verdict(&gnb[1]), N2Verdict::PassFragment);
    assert_eq!(g.verdict(&gnb[2]), N2Verdict::PassFragment);
    let p = g.maps.peer(&L3Addr::v4(GNB.octets())).expect("N2_PEERS").expect("peer");
    assert_eq!((p.setups, p.chunks[CHUNK_CLASS_INIT]), (1, 1), "the first fragment's INIT is an INIT");
    assert_eq!(g.stat(N2_STAT_FIRST_FRAGMENTS), 1);
    assert_eq!(g.stat(N2_STAT_FRAGMENTS), 2);
    // Staged strict with its budget spent: the first fragment is limited like a whole INIT.
    g.strict(GNB);
    assert_eq!(g.verdict(&gnb[0]), N2Verdict::PassSetup);
    assert_eq!(g.verdict(&gnb[0]), N2Verdict::DropSetupStrict);
    // Quarantine concerns later fragments too.
    let q = stage_entry(STAGE_QUARANTINE, 0, 0, 600 * SEC);
    g.maps.set_peer_stage(&L3Addr::v4(GNB.octets()), &q).expect("stage");
    assert_eq!(g.verdict(&gnb[1]), N2Verdict::DropQuarantine);
    // The allow-list concerns them too.
    let mut cfg = config(true);
    cfg.enabled |= N2_PROT_ALLOWLIST;
    g.maps.write_config(&cfg).expect("config");
    g.maps.allow_peer(&L3Addr::v4(GNB.octets())).expect("allow");
    assert_eq!(g.verdict(&other[1]), N2Verdict::DropNotAllowed);
    assert_eq!(g.verdict(&other[0]), N2Verdict::DropNotAllowed);
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn a_multi_homed_peer_is_one_peer_on_every_path() {
    assert_root("verdict::n2::setup::a_multi_homed_peer_is_one_peer_on_every_path");
    const SECOND: Ipv4Addr = Ipv4Addr::new(10, 101, 0, 11);
    const STRANGER: Ipv4Addr = Ipv4Addr::new(10, 101, 0, 99);
    const TAG: u32 = 0x0bad_cafe;
    let f = scapy(&[
        // Egress: the AMF's SACK to the gNB's primary address, then its path-verification
        // HEARTBEAT (§5.4) to the gNB's second address, same association, same tag.
        with(spec("sack", AMF, GNB, 38412, 38412), json!({"vtag": TAG})),
        with(spec("heartbeat", AMF, SECOND, 38412, 38412), json!({"vtag": TAG})),
        // An ABORT the AMF sends to an out-of-the-blue packet's source carries its tag back
        // (§8.4): a forger could provoke it towards any address, so it teaches nothing.
        with(spec("abort", AMF, STRANGER, 38412, 38412), json!({"vtag": TAG})),
        // Ingress: DATA from the second address, and from the stranger.
        with(spec("data", SECOND, AMF, 38412, 38412), json!({"vtag": 0x5eed, "data": NGAP_BYTES})),
        with(spec("data", STRANGER, AMF, 38412, 38412), json!({"vtag": 0x5eed, "data": NGAP_BYTES})),
    ]);
    let mut cfg = config(true);
    cfg.enabled |= N2_PROT_ALLOWLIST;
    let mut g = load(&cfg);
    g.maps.allow_peer(&L3Addr::v4(GNB.octets())).expect("allow the gNB's primary address only");
    // Before the AMF has talked to the second address, it is a stranger.
    assert_eq!(g.verdict(&f[3]), N2Verdict::DropNotAllowed);
    for x in &f[..3] {
        g.egress(x);
    }
    let aliases = g.maps.aliases();
    assert_eq!(
        aliases,
        vec![(L3Addr::v4(SECOND.octets()), L3Addr::v4(GNB.octets()))],
        "only the second path is learned"
    );
    assert_eq!(g.stat(N2_STAT_EGRESS_ALIAS), 1);
    // Now the second path is the gNB: allowed, and counted on the gNB's own entry.
    assert_eq!(g.verdict(&f[3]), N2Verdict::PassData);
    assert_eq!(g.verdict(&f[4]), N2Verdict::DropNotAllowed, "the ABORTed address is not an alias");
    let peer = g.maps.peer(&L3Addr::v4(GNB.octets())).expect("N2_PEERS").expect("the gNB's entry");
    assert_eq!(peer.chunks[CHUNK_CLASS_DATA], 1, "the second path's DATA counted on the gNB");
    assert!(g.maps.peer(&L3Addr::v4(SECOND.octets())).expect("N2_PEERS").is_none(), "no second peer");
    assert_eq!(g.stat(N2_STAT_ALIASED), 1);
    // A stage on the gNB holds on every path.
    let q = stage_entry(STAGE_QUARANTINE, 0, 0, 600 * SEC);
    g.maps.set_peer_stage(&L3Addr::v4(GNB.octets()), &q).expect("stage");
    assert_eq!(g.verdict(&f[3]), N2Verdict::DropQuarantine);
}

/// A multi-homed gNB restarts its association from its second address (its first link was down),
/// then the first comes back: the AMF's path-verification HEARTBEAT to the first address carries
/// the new association's tag, owned by the second, so the first becomes an alias of the second.
/// With only the first address allow-listed (as docs/n2.md §1.1 advises), the gNB must stay
/// admitted on it: an address the operator listed is allowed whatever it aliases to.
#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn a_listed_address_stays_admitted_when_it_becomes_an_alias_of_the_second_path() {
    assert_root("verdict::n2::setup::a_listed_address_stays_admitted_when_it_becomes_an_alias_of_the_second_path");
    const SECOND: Ipv4Addr = Ipv4Addr::new(10, 101, 0, 11);
    const TAG: u32 = 0x0c0f_fee0;
    let f = scapy(&[
        // Egress: the new association's chunks to the second address first, then the HEARTBEAT
        // to the first address once it is back, same tag.
        with(spec("sack", AMF, SECOND, 38412, 38412), json!({"vtag": TAG})),
        with(spec("heartbeat", AMF, GNB, 38412, 38412), json!({"vtag": TAG})),
        // Ingress: DATA from the first (listed) address.
        with(spec("data", GNB, AMF, 38412, 38412), json!({"vtag": 0x5eed, "data": NGAP_BYTES})),
    ]);
    let mut cfg = config(true);
    cfg.enabled |= N2_PROT_ALLOWLIST;
    let mut g = load(&cfg);
    g.maps.allow_peer(&L3Addr::v4(GNB.octets())).expect("allow the gNB's first address only");
    assert_eq!(g.verdict(&f[2]), N2Verdict::PassData, "listed, before any alias");
    for x in &f[..2] {
        g.egress(x);
    }
    assert_eq!(
        g.maps.aliases(),
        vec![(L3Addr::v4(GNB.octets()), L3Addr::v4(SECOND.octets()))],
        "the listed address became an alias of the second path"
    );
    assert_eq!(g.verdict(&f[2]), N2Verdict::PassData, "and stays admitted: it is listed itself");
    assert_eq!(g.stat(N2_STAT_ALIASED), 1, "the packet was taken as the second path's peer");
}
