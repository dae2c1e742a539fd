#!/usr/bin/python3
"""Craft the N2 hostile-input corpus with scapy, an implementation independent of the guard.

Each case is one Ethernet frame (tests/corpus/n2/<name>.bin) and one MANIFEST line:
    <name> <verdict> <malformed reason or ->
The expected verdict and reason are written here by hand from the specs (RFC 9260 §3 / §6.10 /
§8.5.1 for SCTP, TS 38.413 §9 / TS 36.413 §9 for the NGAP / S1AP PDUs, RFC 791, RFC 8200,
IEEE 802.1Q) and the guard's documented verdicts (docs/n2.md §1, §2), with every protection but
the allow-list enforced and no peer staged: the verdict is then a function of the parse.
tests/tests/corpus_n2.rs replays every case through BPF_PROG_TEST_RUN and through the host parser.

The SCTP layers are scapy's (scapy.layers.sctp, which also computes the CRC32c); the NGAP PDUs
are APER-encoded here by hand from TS 38.413 (scapy has no NGAP), with small helpers below.

Regenerate with: /usr/bin/python3 tests/corpus/make_n2.py   (Debian's python3-scapy)
"""
import os
import sys

from scapy.all import ARP, IP, UDP, Dot1Q, Ether, IPv6, IPv6ExtHdrHopByHop, Padding, Raw, raw
from scapy.layers.sctp import (
    SCTP,
    SCTPChunkAbort,
    SCTPChunkCookieAck,
    SCTPChunkCookieEcho,
    SCTPChunkData,
    SCTPChunkHeartbeatAck,
    SCTPChunkHeartbeatReq,
    SCTPChunkInit,
    SCTPChunkInitAck,
    SCTPChunkParamHeartbeatInfo,
    SCTPChunkParamStateCookie,
    SCTPChunkSACK,
    SCTPChunkShutdown,
    SCTPChunkShutdownAck,
    SCTPChunkShutdownComplete,
)

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "n2")
GNB, AMF = "10.100.0.11", "10.100.0.1"
NGAP_PORT, S1AP_PORT = 38412, 36412  # TS 38.412 §7, TS 36.412 §7
PPID_NGAP, PPID_S1AP = 60, 18  # RFC 9260 / IANA SCTP PPIDs; TS 38.412 §7, TS 36.412 §7
VTAG = 0x0A0B0C0D


# --- APER helpers (X.691) for the few NGAP structures the corpus needs ------------------------
def lendet(n):
    """Unconstrained length determinant (X.691 §11.9.3.6-7): 1 octet < 128, else 2 octets."""
    return bytes([n]) if n < 128 else bytes([0x80 | (n >> 8), n & 0xFF])


def open_type(v):
    return lendet(len(v)) + v


def ie(ie_id, crit, value):
    """ProtocolIE-Field: id (0..65535, 2 octets), criticality (ENUMERATED, 2 bits, padded),
    value as an open type (TS 38.413 §9.4.4 NGAP-Containers)."""
    return ie_id.to_bytes(2, "big") + bytes([crit << 6]) + open_type(value)


REJECT, IGNORE = 0, 1


def pdu(choice, proc, crit, ies):
    """NGAP-PDU CHOICE (extension bit + 2-bit index), procedureCode (0..255), criticality, the
    message SEQUENCE (extension bit, then the ProtocolIE-Container count 0..65535) as an open type."""
    body = b"\x00" + len(ies).to_bytes(2, "big") + b"".join(ies)
    return bytes([choice << 5, proc, crit << 6]) + open_type(body)


def uint32(v):
    """INTEGER (0..4294967295): 2-bit octet count - 1, aligned, then the minimal octets."""
    n = max(1, (v.bit_length() + 7) // 8)
    return bytes([(n - 1) << 6]) + v.to_bytes(n, "big")


def uint40(v):
    """INTEGER (0..1099511627775) (AMF-UE-NGAP-ID): 3-bit octet count - 1, then the octets."""
    n = max(1, (v.bit_length() + 7) // 8)
    return bytes([(n - 1) << 5]) + v.to_bytes(n, "big")


PLMN = bytes([0x00, 0xF1, 0x10])  # MCC 001, MNC 01 (TS 38.413 §9.3.3.5)


def uli_nr(nci, tac):
    """UserLocationInformation CHOICE index 1 (NR), UserLocationInformationNR and NR-CGI
    preamble bits (all zero): 0 01 000 | 0 0 → 0x40; PLMN; NRCellIdentity BIT STRING (SIZE(36))
    aligned, with TAI's 2 preamble bits and 2 padding bits in its last octet; TAI PLMN, TAC."""
    return bytes([0x40]) + PLMN + (nci << 4).to_bytes(5, "big") + PLMN + tac.to_bytes(3, "big")


def five_g_s_tmsi(set_id, pointer, tmsi):
    """FiveG-S-TMSI SEQUENCE: extension + iE-Extensions bits, AMFSetID (10 bits), AMFPointer
    (6 bits), padding, FiveG-TMSI (4 octets, aligned)."""
    bits = (set_id << 12) | (pointer << 6)
    return bits.to_bytes(3, "big") + tmsi.to_bytes(4, "big")


def registration_request_suci(msin_bcd):
    """TS 24.501 §8.2.6: plain 5GMM (EPD 0x7e, security header 0), Registration Request (0x41),
    registration type initial + ngKSI 7, 5GS mobile identity SUCI (IMSI, null scheme), UE
    security capability."""
    ident = bytes([0x01]) + PLMN + bytes([0xF0, 0xFF, 0x00, 0x00]) + msin_bcd
    return bytes([0x7E, 0x00, 0x41, 0x79]) + len(ident).to_bytes(2, "big") + ident + bytes([0x2E, 4, 0xF0, 0xF0, 0xF0, 0xF0])


def initial_ue_message(ran_ue_id, nci, s_tmsi=None):
    """InitialUEMessage (TS 38.413 §9.2.5.1, procedure code 15)."""
    ies = [
        ie(85, REJECT, uint32(ran_ue_id)),  # RAN-UE-NGAP-ID
        ie(38, REJECT, open_type(registration_request_suci(bytes([0x21, 0x43, 0x65, 0x87, 0x09])))),  # NAS-PDU
        ie(121, REJECT, uli_nr(nci, 1)),  # UserLocationInformation
        ie(90, IGNORE, bytes([3 << 3])),  # RRCEstablishmentCause mo-Signalling (ext bit + 4 bits)
    ]
    if s_tmsi is not None:
        ies.append(ie(26, REJECT, five_g_s_tmsi(*s_tmsi)))
    ies.append(ie(112, IGNORE, b"\x00"))  # UEContextRequest requested
    return pdu(0, 15, IGNORE, ies)


def uplink_nas_transport(amf_ue_id, ran_ue_id, nas, nci):
    """UplinkNASTransport (§9.2.5.3, procedure code 46)."""
    return pdu(0, 46, IGNORE, [
        ie(10, REJECT, uint40(amf_ue_id)),
        ie(85, REJECT, uint32(ran_ue_id)),
        ie(38, REJECT, open_type(nas)),
        ie(121, IGNORE, uli_nr(nci, 1)),
    ])


def ng_setup_request(gnb_id, name):
    """NGSetupRequest (§9.2.6.1, procedure code 21): GlobalRANNodeID, RANNodeName,
    SupportedTAList, DefaultPagingDRX."""
    g = b"\x00" + PLMN + bytes([0x50]) + gnb_id.to_bytes(4, "big")
    n = name.encode()
    r = bytes([(len(n) - 1) >> 1, ((len(n) - 1) & 1) << 7]) + n
    ta = bytes([0, 0, 0, 0, 1, 0]) + PLMN + bytes([0, 0, 0, 1])
    return pdu(0, 21, REJECT, [ie(27, REJECT, g), ie(82, IGNORE, r), ie(102, REJECT, ta), ie(21, IGNORE, b"\x20")])


def s1ap_initial_ue(enb_ue_id, eci, tac):
    """S1AP Initial UE Message (TS 36.413 §9.1.7.1, procedure code 12): eNB-UE-S1AP-ID (0..2^24-1:
    3 octets), NAS-PDU (an EMM Attach Request stub), TAI, EUTRAN-CGI, RRC-Establishment-Cause."""
    tai = b"\x00" + PLMN + tac.to_bytes(2, "big")
    cgi = b"\x00" + PLMN + (eci << 4).to_bytes(4, "big")
    nas = bytes([0x07, 0x41, 0x71, 0x08, 0x09, 0x10, 0x10, 0x32, 0x54, 0x76, 0x98, 0x02, 0xE0, 0xE0])
    return pdu(0, 12, IGNORE, [
        ie(8, REJECT, enb_ue_id.to_bytes(3, "big")),
        ie(26, REJECT, open_type(nas)),
        ie(67, REJECT, tai),
        ie(100, IGNORE, cgi),
        ie(134, IGNORE, bytes([3 << 4])),
    ])


# --- Frames ------------------------------------------------------------------------------------
def eth():
    return Ether(src="02:00:00:00:00:11", dst="02:00:00:00:00:01")


def sctp(vtag=VTAG, dport=NGAP_PORT):
    return IP(src=GNB, dst=AMF) / SCTP(sport=dport, dport=dport, tag=vtag)


def data(tsn, payload, ppid=PPID_NGAP, b=1, e=1):
    return SCTPChunkData(tsn=tsn, stream_id=0, stream_seq=0, proto_id=ppid, beginning=b, ending=e, data=payload)


def init():
    return SCTPChunkInit(init_tag=0x1111_0011, a_rwnd=65535, n_out_streams=2, n_in_streams=2, init_tsn=100)


def sctp_raw(vtag, chunk_bytes, dport=NGAP_PORT):
    """An SCTP packet whose chunk bytes are given as is (for malformed chunks); scapy still builds
    the IP header and the CRC32c."""
    return eth() / sctp(vtag, dport) / Raw(chunk_bytes)


def chunk(t, flags, value, length=None, pad=True):
    """A raw chunk (RFC 9260 §3.2): Type, Flags, Length (default: 4 + value, without padding)."""
    ln = 4 + len(value) if length is None else length
    c = bytes([t, flags]) + ln.to_bytes(2, "big") + value
    if pad:
        c += b"\x00" * (-len(c) % 4)
    return c


def patch(frame, off, new):
    b = bytearray(raw(frame))
    b[off:off + len(new)] = new
    return bytes(b)


ETH, IP4 = 14, 20
SCTP_OFF = ETH + IP4  # the SCTP common header in an untagged IPv4 frame
UE = initial_ue_message(7, 0x000001000, s_tmsi=(1, 1, 0xDEADBEEF))
UL = uplink_nas_transport(5, 7, bytes([0x7E, 0x00, 0x45, 0x01, 0x00, 0x07, 0xF4, 0x00, 0x41, 0, 0, 0, 7]), 0x000001000)

cases = []


def case(name, frame, verdict, reason="-"):
    cases.append((name, frame if isinstance(frame, bytes) else raw(frame), verdict, reason))


# --- Well-formed: the baseline the malformed cases are mutations of --------------------------
# INIT: alone in its packet, verification tag 0 (RFC 9260 §6.10, §8.5.1): a setup.
case("init", eth() / sctp(0) / init(), "pass_setup")
case("init_v6", eth() / IPv6(src="fd00:100::11", dst="fd00:100::1") / SCTP(sport=NGAP_PORT, dport=NGAP_PORT, tag=0)
     / init(), "pass_setup")
# COOKIE ECHO (§3.3.11): a setup; with a DATA chunk bundled (§5.1 allows it) the packet carries DATA.
case("cookie_echo", eth() / sctp() / SCTPChunkCookieEcho(cookie=b"\xc0" * 32), "pass_setup")
case("cookie_echo_data_ngsetup", eth() / sctp() / SCTPChunkCookieEcho(cookie=b"\xc0" * 32)
     / data(1, ng_setup_request(0x102, "gnb-a")), "pass_data")
# DATA with NGAP (PPID 60): NGSetupRequest, InitialUEMessage (Registration Request), UplinkNASTransport.
case("data_ngsetup", eth() / sctp() / data(1, ng_setup_request(0x102, "gnb-a")), "pass_data")
case("data_initial_ue", eth() / sctp() / data(2, UE), "pass_data")
case("data_uplink_nas", eth() / sctp() / data(3, UL), "pass_data")
case("sack_data", eth() / sctp() / SCTPChunkSACK(cumul_tsn_ack=41, a_rwnd=65535) / data(42, UE), "pass_data")
case("data_two_initial_ue", eth() / sctp() / data(4, UE) / data(5, initial_ue_message(8, 0x000001001)), "pass_data")
case("data_vlan", Ether(src="02:00:00:00:00:11", dst="02:00:00:00:00:01") / Dot1Q(vlan=42) / sctp() / data(6, UE),
     "pass_data")
case("data_s1ap", eth() / sctp(dport=S1AP_PORT) / data(7, s1ap_initial_ue(9, 0x00001234, 1), ppid=PPID_S1AP),
     "pass_data")
# NGAP the guard cannot decode is never a drop (docs/n2.md §2): the AMF answers malformed NGAP.
case("data_garbage_ngap", eth() / sctp() / data(8, bytes(range(0xF0, 0x100)) * 3), "pass_data")
case("data_ngap_1_octet", eth() / sctp() / data(9, b"\x00"), "pass_data")
case("data_ppid_46", eth() / sctp() / data(10, b"Diameter, not NGAP", ppid=46), "pass_data")
# A middle fragment (B = 0, §3.3.1) does not begin a PDU.
case("data_middle_fragment", eth() / sctp() / data(11, UE[:20], b=0, e=0), "pass_data")
# A DATA chunk without user data (Length 16): the receiver ABORTs it (§6.2 "No User Data"), the
# guard sees a structurally complete DATA header and passes it (sctp.rs min_chunk_len).
case("data_no_user_data", sctp_raw(VTAG, chunk(0, 0x03, (12).to_bytes(4, "big") + bytes(4) + (60).to_bytes(4, "big"))),
     "pass_data")
# Ten DATA chunks: eight are walked (docs/n2.md §2), the rest is a counted walk cut, not malformed.
ten = sctp()
for i in range(10):
    ten = ten / data(100 + i, UL)
case("data_ten_chunks", eth() / ten, "pass_data")
# An INIT after a 600-octet DATA chunk violates §6.10. The chunk walk reads the whole packet
# (docs/n2.md §2: the window is the packet), so it is malformed wherever the INIT sits, as when
# bundled right after a short DATA chunk (init_bundled_with_data): the receiving SCTP stack would
# discard the packet anyway.
case("data_600_then_init", eth() / sctp(0) / data(12, b"\x00\x0f" + bytes(598)) / init(), "drop_malformed",
     "init_bundled")
# IPv6 with a Hop-by-Hop extension header before SCTP (RFC 8200 §4.3).
case("init_v6_hop_by_hop", eth() / IPv6(src="fd00:100::11", dst="fd00:100::1") / IPv6ExtHdrHopByHop()
     / SCTP(sport=NGAP_PORT, dport=NGAP_PORT, tag=0) / init(), "pass_setup")
# Control chunks (§3.3.3-3.3.13).
case("init_ack", eth() / sctp() / SCTPChunkInitAck(init_tag=5, a_rwnd=65535, n_out_streams=2, n_in_streams=2,
     init_tsn=1, params=[SCTPChunkParamStateCookie(cookie=b"\x01" * 24)]), "pass_control")
case("sack", eth() / sctp() / SCTPChunkSACK(cumul_tsn_ack=10, a_rwnd=65535), "pass_control")
case("heartbeat", eth() / sctp() / SCTPChunkHeartbeatReq(params=[SCTPChunkParamHeartbeatInfo(data=b"\x07" * 12)]),
     "pass_control")
case("heartbeat_ack", eth() / sctp() / SCTPChunkHeartbeatAck(params=[SCTPChunkParamHeartbeatInfo(data=b"\x07" * 12)]),
     "pass_control")
case("abort", eth() / sctp() / SCTPChunkAbort(), "pass_control")
case("shutdown", eth() / sctp() / SCTPChunkShutdown(cumul_tsn_ack=10), "pass_control")
case("shutdown_ack", eth() / sctp() / SCTPChunkShutdownAck(), "pass_control")
case("shutdown_complete", eth() / sctp() / SCTPChunkShutdownComplete(), "pass_control")
case("cookie_ack", eth() / sctp() / SCTPChunkCookieAck(), "pass_control")
# Ethernet pads a short frame to 60 octets; the SCTP packet ends with the IP packet (RFC 791
# Total Length), so the padding is not a chunk.
case("cookie_ack_eth_padding", eth() / sctp() / SCTPChunkCookieAck() / Padding(b"\x00" * 10), "pass_control")
# §3.2: the last chunk's padding may be missing ("a robust implementation is expected to accept").
case("last_chunk_unpadded", sctp_raw(VTAG, chunk(10, 0, b"\xc0" * 5, pad=False)), "pass_setup")
# An unknown chunk type (upper bits 00: "stop processing, discard", §3.2): structurally fine.
case("unknown_chunk_type", sctp_raw(VTAG, chunk(0x3F, 0, b"\x00" * 4)), "pass_control")

# --- Not N2: passed untouched ---------------------------------------------------------------
case("arp", Ether(dst="ff:ff:ff:ff:ff:ff") / ARP(psrc=GNB, pdst=AMF), "pass_not_n2")
case("udp_to_38412", eth() / IP(src=GNB, dst=AMF) / UDP(sport=38412, dport=38412) / Raw(b"\x00" * 16), "pass_not_n2")
case("sctp_diameter_port", eth() / sctp(dport=3868) / SCTPChunkCookieAck(), "pass_not_n2")

# --- IP fragments of SCTP (issue 18 item 3): the first is judged on the chunks it holds, later
# ones by their source only (RFC 791 §3.2) ----------------------------------------------------
case("ipv4_fragment", eth() / IP(src=GNB, dst=AMF, flags="MF", frag=0, proto=132)
     / SCTP(sport=NGAP_PORT, dport=NGAP_PORT, tag=VTAG) / data(1, UE), "pass_data")
case("ipv4_later_fragment", eth() / IP(src=GNB, dst=AMF, flags=0, frag=185, proto=132) / Raw(b"\x00" * 64),
     "pass_fragment")

# --- Malformed below SCTP: counted, passed for the kernel stack to drop ----------------------
case("ipv4_ihl_4", patch(eth() / sctp() / data(1, UE), ETH, b"\x44"), "pass_malformed", "ipv4_bad_ihl")
case("ipv4_version_5", patch(eth() / sctp() / data(1, UE), ETH, b"\x55"), "pass_malformed", "ipv4_bad_version")
case("ipv4_truncated", raw(eth() / sctp() / data(1, UE))[:ETH + 12], "pass_malformed", "ipv4_truncated")
case("ipv6_truncated", raw(eth() / IPv6(src="fd00:100::11", dst="fd00:100::1") / SCTP(tag=0) / init())[:ETH + 30],
     "pass_malformed", "ipv6_truncated")
case("vlan_truncated", raw(Ether(src="02:00:00:00:00:11", dst="02:00:00:00:00:01") / Dot1Q(vlan=7) / sctp()
     / SCTPChunkCookieAck())[:ETH + 2], "pass_malformed", "vlan_truncated")
case("vlan_three_tags", Ether(type=0x88A8) / Dot1Q(vlan=1, type=0x88A8) / Dot1Q(vlan=2, type=0x8100) / Dot1Q(vlan=3)
     / sctp() / SCTPChunkCookieAck(), "pass_malformed", "vlan_too_deep")

# --- Malformed SCTP (RFC 9260): dropped ------------------------------------------------------
# §3.1: the common header is 12 octets; here the IP payload holds 8.
case("common_header_cut", eth() / IP(src=GNB, dst=AMF, proto=132) / Raw(b"\x96\x0c\x96\x0c\x00\x00\x00\x01"),
     "drop_malformed", "sctp_truncated")
# IP Total Length claims 64 octets more than the frame holds: the SCTP packet runs past the frame.
f = raw(eth() / sctp() / data(1, UE))
case("ip_length_past_frame", patch(eth() / sctp() / data(1, UE), ETH + 2, (len(f) - ETH + 64).to_bytes(2, "big")),
     "drop_malformed", "sctp_truncated")
# §3: a packet is a common header followed by one or more chunks.
case("no_chunks", eth() / sctp(), "drop_malformed", "no_chunks")
# §3.2: Chunk Length counts the 4-octet chunk header, so 0..3 are invalid.
case("chunk_length_0", sctp_raw(VTAG, chunk(11, 0, b"", length=0)), "drop_malformed", "chunk_too_short")
case("chunk_length_3", sctp_raw(VTAG, chunk(11, 0, b"", length=3)), "drop_malformed", "chunk_too_short")
# §3.2: a chunk whose Length runs past the end of the packet.
case("chunk_past_packet", sctp_raw(VTAG, chunk(10, 0, b"\xc0" * 8, length=200)), "drop_malformed", "chunk_overrun")
case("second_chunk_past_packet", sctp_raw(VTAG, raw(SCTPChunkSACK(cumul_tsn_ack=1, a_rwnd=1)) + chunk(0, 3, b"\x00" * 16,
     length=64)), "drop_malformed", "chunk_overrun")
# 2 octets after the last chunk: not even a chunk header.
case("stray_octets_after_chunk", sctp_raw(VTAG, chunk(11, 0, b"") + b"\x0b\x00"), "drop_malformed", "chunk_truncated")
# §3.3.1: DATA has 12 octets of fixed fields after the header (TSN, stream, SSN, PPID): Length ≥ 16.
case("data_length_12", sctp_raw(VTAG, chunk(0, 3, b"\x00" * 8)), "drop_malformed", "chunk_too_short")
# §3.3.2: INIT has 16 octets of fixed fields: Length ≥ 20.
case("init_length_16", sctp_raw(0, chunk(1, 0, b"\x01" * 12)), "drop_malformed", "chunk_too_short")
# §3.3.4: SACK has 12 octets of fixed fields: Length ≥ 16.
case("sack_length_12", sctp_raw(VTAG, chunk(3, 0, b"\x00" * 8)), "drop_malformed", "chunk_too_short")
# §3.3.5: HEARTBEAT carries a Heartbeat Info TLV (≥ 4 octets): Length ≥ 8.
case("heartbeat_length_4", sctp_raw(VTAG, chunk(4, 0, b"")), "drop_malformed", "chunk_too_short")
# §3.3.8: SHUTDOWN carries the Cumulative TSN Ack: Length 8.
case("shutdown_length_4", sctp_raw(VTAG, chunk(7, 0, b"")), "drop_malformed", "chunk_too_short")
# §6.10: INIT, INIT ACK and SHUTDOWN COMPLETE MUST NOT be bundled with any other chunk.
case("init_bundled_with_data", eth() / sctp(0) / init() / data(1, UE), "drop_malformed", "init_bundled")
case("init_ack_bundled_with_sack", eth() / sctp() / SCTPChunkInitAck(init_tag=5, a_rwnd=65535, n_out_streams=2,
     n_in_streams=2, init_tsn=1) / SCTPChunkSACK(cumul_tsn_ack=1, a_rwnd=1), "drop_malformed", "init_bundled")
case("shutdown_complete_bundled", eth() / sctp() / SCTPChunkShutdownComplete() / SCTPChunkCookieAck(),
     "drop_malformed", "init_bundled")
case("data_then_init", eth() / sctp(0) / data(1, UE) / init(), "drop_malformed", "init_bundled")
# §8.5.1: a packet carrying INIT has verification tag 0.
case("init_nonzero_vtag", eth() / sctp(0x1234) / init(), "drop_malformed", "init_bad_vtag")

os.makedirs(OUT, exist_ok=True)
for fn in os.listdir(OUT):
    if fn.endswith(".bin"):
        os.remove(os.path.join(OUT, fn))
with open(os.path.join(OUT, "MANIFEST"), "w") as m:
    m.write("# name verdict malformed-reason (generated by tests/corpus/make_n2.py; see there)\n")
    for name, frame, verdict, reason in cases:
        with open(os.path.join(OUT, name + ".bin"), "wb") as fh:
            fh.write(frame)
        m.write(f"{name} {verdict} {reason}\n")
print(f"wrote {len(cases)} cases to {OUT}", file=sys.stderr)
