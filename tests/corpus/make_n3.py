#!/usr/bin/python3
"""Craft the N3 hostile-input corpus with scapy, an implementation independent of the guard.

Each case is one Ethernet frame (tests/corpus/n3/<name>.bin) and one MANIFEST line:
    <name> <verdict> <malformed reason or ->
The expected verdict and reason are written here by hand from the specs (TS 29.281 §5.1/§5.2,
RFC 791, RFC 768, IEEE 802.1Q) and the guard's documented verdict names (docs/dataplane.md),
with malformed-GTP-U enforcement on and every other protection off. tests/tests/corpus_n3.rs
replays every case through BPF_PROG_TEST_RUN and through the host parser.

Regenerate with: /usr/bin/python3 tests/corpus/make_n3.py   (Debian's python3-scapy)
"""
import os
import sys

from scapy.all import ARP, IP, UDP, Dot1Q, Ether, IPv6, Raw, raw
from scapy.contrib.gtp import GTP_U_Header, GTPPDUSessionContainer

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "n3")
GNB, CORE, UE, SRV = "10.200.0.11", "10.200.0.1", "10.45.0.2", "192.0.2.10"


def eth():
    return Ether(src="02:00:00:00:00:11", dst="02:00:00:00:00:01")


def outer(dport=2152):
    return IP(src=GNB, dst=CORE) / UDP(sport=2152, dport=dport)


def inner():
    return IP(src=UE, dst=SRV) / UDP(sport=40000, dport=5683) / Raw(b"meter reading 0042")


def gpdu(teid=0x1001, **kw):
    return GTP_U_Header(teid=teid, gtp_type=255, **kw)


def patch(frame, off, new):
    b = bytearray(raw(frame))
    b[off:off + len(new)] = new
    return bytes(b)


ETH, IP4, UDPH = 14, 20, 8
GTP = ETH + IP4 + UDPH  # offset of the GTP-U header in an untagged IPv4 frame

cases = []


def case(name, frame, verdict, reason="-"):
    cases.append((name, frame if isinstance(frame, bytes) else raw(frame), verdict, reason))


# --- Well-formed: the baseline the malformed cases are mutations of --------------------------
case("gpdu_v4", eth() / outer() / gpdu() / inner(), "pass_gpdu")
case("gpdu_pdu_session_qfi9", eth() / outer() / gpdu(E=1, next_ex=0x85)
     / GTPPDUSessionContainer(type=1, QFI=9, NextExtHdr=0) / inner(), "pass_gpdu")
case("gpdu_seq", eth() / outer() / gpdu(S=1, seq=7) / inner(), "pass_gpdu")
case("gpdu_outer_v6", eth() / IPv6(src="fd00:200::11", dst="fd00:200::1") / UDP(sport=2152, dport=2152)
     / gpdu() / inner(), "pass_gpdu")
case("gpdu_qinq", Ether(src="02:00:00:00:00:11", dst="02:00:00:00:00:01", type=0x88a8) / Dot1Q(vlan=100)
     / Dot1Q(vlan=200) / outer() / gpdu() / inner(), "pass_gpdu")
case("echo_request", eth() / outer() / GTP_U_Header(gtp_type=1, S=1, seq=1, teid=0), "pass_signalling")
case("end_marker", eth() / outer() / GTP_U_Header(gtp_type=254, teid=0x1001), "pass_signalling")

# --- Not GTP-U: passed untouched --------------------------------------------------------------
case("arp", Ether(dst="ff:ff:ff:ff:ff:ff") / ARP(psrc=GNB, pdst=CORE), "pass_not_gtp")
case("udp_dns", eth() / outer(dport=53) / Raw(b"\x00" * 12), "pass_not_gtp")
# RFC 791 §3.2: the first fragment (MF set, offset 0) carries the UDP and GTP-U headers: judged
# like the whole G-PDU. A later fragment carries neither: passed, counted as pass_fragment (its
# first fragment was not dropped). docs/dataplane.md, "Outer IP fragments".
case("ipv4_fragment", eth() / IP(src=GNB, dst=CORE, flags="MF", frag=0, proto=17) / UDP(sport=2152, dport=2152)
     / gpdu() / inner(), "pass_gpdu")
case("ipv4_later_fragment", eth() / IP(src=GNB, dst=CORE, frag=185, proto=17) / Raw(b"\x5a" * 64), "pass_fragment")
# A later fragment of another protocol is not the guard's business.
case("ipv4_later_fragment_tcp", eth() / IP(src=GNB, dst=CORE, frag=185, proto=6) / Raw(b"\x5a" * 64), "pass_not_gtp")

# --- Malformed below GTP-U: counted, passed for the kernel stack to drop ----------------------
case("ipv4_ihl_4", patch(eth() / outer() / gpdu() / inner(), ETH, b"\x44"), "pass_malformed", "ipv4_bad_ihl")
case("ipv4_truncated", raw(eth() / outer() / gpdu() / inner())[:ETH + 12], "pass_malformed", "ipv4_truncated")
case("vlan_three_tags", Ether(type=0x88a8) / Dot1Q(vlan=1, type=0x88a8) / Dot1Q(vlan=2, type=0x8100)
     / Dot1Q(vlan=3) / outer() / gpdu() / inner(), "pass_malformed", "vlan_too_deep")

# --- Malformed GTP-U (TS 29.281 §5.1/§5.2): dropped -------------------------------------------
# Octet 1 bits 8-6: Version must be 1.
case("gtp_version_2", patch(eth() / outer() / gpdu() / inner(), GTP, b"\x50"), "drop_malformed", "gtp_bad_version")
# Octet 1 bit 5: PT = 0 is GTP', not GTP-U.
case("gtp_prime", patch(eth() / outer() / gpdu() / inner(), GTP, b"\x20"), "drop_malformed", "gtp_bad_protocol_type")
# Octets 3-4: Length claims 64 octets more than the UDP payload holds.
g = eth() / outer() / gpdu() / inner()
glen = len(raw(g)) - GTP - 8
case("gtp_length_lie", patch(g, GTP + 2, (glen + 64).to_bytes(2, "big")), "drop_malformed", "gtp_length_mismatch")
# UDP payload of 4 octets: not even the mandatory 8-octet header.
case("gtp_header_cut", eth() / outer() / Raw(b"\x30\xff\x00\x00"), "drop_malformed", "gtp_truncated")
# Message type 0x99 is not in TS 29.281 Table 6.1-1.
case("gtp_unknown_type", eth() / outer() / GTP_U_Header(gtp_type=0x99, teid=1), "drop_malformed", "unknown_message_type")
# §5.2.1: an extension header Length of 0 is invalid (it counts 4-octet units, at least 1).
case("ext_zero_length", patch(eth() / outer() / gpdu(E=1, next_ex=0x85)
     / GTPPDUSessionContainer(type=1, QFI=9, NextExtHdr=0) / inner(), GTP + 12, b"\x00"),
     "drop_malformed", "ext_zero_length")
# §5.2.1: an extension header Length running past the GTP-U message.
case("ext_overrun", patch(eth() / outer() / gpdu(E=1, next_ex=0x85)
     / GTPPDUSessionContainer(type=1, QFI=9, NextExtHdr=0) / inner(), GTP + 12, b"\x7f"),
     "drop_malformed", "ext_overrun")
# Non-IP T-PDUs (TS 23.501 §5.6.10): Ethernet and Unstructured PDU sessions. Whatever the first
# nibble, a T-PDU that is not an IP packet of its own length is a non-IP G-PDU, never malformed.
case("tpdu_3_octets_0x45", eth() / outer() / gpdu() / Raw(b"\x45\x00\x00"), "pass_gpdu")
case("tpdu_ethernet_dst_mac_0x45", eth() / outer() / gpdu()
     / Ether(src="02:00:00:00:aa:01", dst="45:00:00:54:00:01") / IP(src="192.168.7.2", dst="192.168.7.1")
     / UDP(sport=1, dport=2) / Raw(b"plc"), "pass_gpdu")
case("tpdu_unstructured_0x60", eth() / outer() / gpdu() / Raw(b"\x60\x00\x00\x00\x00\x08" + b"\x5a" * 60), "pass_gpdu")

os.makedirs(OUT, exist_ok=True)
for f in os.listdir(OUT):
    if f.endswith(".bin"):
        os.remove(os.path.join(OUT, f))
with open(os.path.join(OUT, "MANIFEST"), "w") as m:
    m.write("# name verdict malformed-reason (generated by tests/corpus/make_n3.py; see there)\n")
    for name, frame, verdict, reason in cases:
        with open(os.path.join(OUT, name + ".bin"), "wb") as f:
            f.write(frame)
        m.write(f"{name} {verdict} {reason}\n")
print(f"wrote {len(cases)} cases to {OUT}", file=sys.stderr)
