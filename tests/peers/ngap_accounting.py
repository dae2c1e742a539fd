#!/usr/bin/env python3
"""The oracle of the NGAP accounting tests (tests/tests/accounting_n2.rs, issue 18 item 5).

Every PDU is encoded by pycrate (ALIGNED PER, an encoder nobody on this project wrote), every
frame built by scapy (Ethernet / IPv4 / SCTP with its CRC32c and DATA chunks, RFC 9260 §3.3.1).
What the guard must read comes from the values given to pycrate, and the RRC establishment cause
from pycrate's own enumeration (its root and extension lists, TS 38.413 §9.3.1.111 and
TS 36.413 §9.2.1.3a), so the test does not take the guard's numbering on trust.

Writes one JSON object per case on stdout:
  {"name": str, "proto": "ngap" | "s1ap", "peer": "a.b.c.d", "frame": hex,
   "ues": [{"ran_ue": int, "cell": int, "tac": int, "cause": int, "cause_name": str,
            "s_tmsi": [set, ptr, tmsi] | [mmec, m_tmsi] | null, "guti": [set, ptr, tmsi] | null,
            "suci": bool, "nas": int,
            "nas_len": int}],
   "walked": int}       # how many of "ues" the guard walks (the rest are beyond MAX_CHUNKS)
"""
import json
import sys

from pycrate_asn1dir.NGAP import NGAP_IEs as NI
from pycrate_asn1dir.NGAP import NGAP_PDU_Descriptions as ND
from pycrate_asn1dir.S1AP import S1AP_IEs as SI
from pycrate_asn1dir.S1AP import S1AP_PDU_Descriptions as SD
from scapy.layers.inet import IP
from scapy.layers.l2 import Ether
from scapy.layers.sctp import SCTP, SCTPChunkData, SCTPChunkSACK

PLMN = bytes.fromhex("00f110")  # MCC 001, MNC 01 (TS 24.008 §10.5.1.3)
NGAP_PORT, S1AP_PORT = 38412, 36412
AMF = "10.100.0.1"
MAX_CHUNKS = 16  # guard-common/src/parse/n2.rs


def cause_index(enum, name):
    """The enumeration's own number of `name`: root values first, then the extension additions."""
    if name in enum._root:
        return enum._root.index(name)
    return len(enum._root) + enum._ext.index(name)


# --- NAS (plain, TS 24.501 / TS 24.301) -----------------------------------------------------------
def suci(msin):
    """5GS mobile identity, SUCI, SUPI format IMSI, null scheme (TS 24.501 §9.11.3.4): LV-E."""
    digits = "%010d" % (msin % 10**10)
    bcd = bytes(int(digits[i + 1]) << 4 | int(digits[i]) for i in range(0, 10, 2))
    v = bytes([0x01]) + PLMN + bytes([0xF0, 0xFF, 0x00, 0x00]) + bcd
    return len(v).to_bytes(2, "big") + v


def guti(set_id, ptr, tmsi):
    """5GS mobile identity, 5G-GUTI (§9.11.3.4): LV-E, 11 octets."""
    v = bytes([0xF2]) + PLMN + bytes([0xCA, (set_id >> 2) & 0xFF, ((set_id & 3) << 6) | (ptr & 0x3F)])
    v += tmsi.to_bytes(4, "big")
    return len(v).to_bytes(2, "big") + v


def registration(ident, total=0):
    """Registration Request (§8.2.6): EPD 0x7e, plain, 0x41, ngKSI + initial registration, the
    identity, UE security capability (IEI 0x2e); padded to `total` octets with a payload
    container (IEI 0x7b, LV-E) when asked."""
    n = bytes([0x7E, 0x00, 0x41, 0x79]) + ident + bytes([0x2E, 0x02, 0xF0, 0xF0])
    if total:
        pad = total - len(n) - 3
        n += bytes([0x7B]) + pad.to_bytes(2, "big") + bytes((i * 13) & 0xFF for i in range(pad))
    return n


def service_request(set_id, ptr, tmsi):
    """Service Request (§8.2.16) with its 5G-S-TMSI (type 4)."""
    v = bytes([0xF4, (set_id >> 2) & 0xFF, ((set_id & 3) << 6) | (ptr & 0x3F)]) + tmsi.to_bytes(4, "big")
    return bytes([0x7E, 0x00, 0x4C, 0x00]) + len(v).to_bytes(2, "big") + v


def attach_imsi():
    """EMM Attach Request (TS 24.301 §8.2.4), plain: EPS attach type 1, KSI 7, EPS mobile identity
    IMSI 001010123456789 (§9.9.3.12: odd number of digits, type 1), a short UE network capability
    and an empty ESM container."""
    # Octet 1: digit 1 << 4 | odd count (1) << 3 | type 1 (IMSI); then digit pairs, low nibble
    # first, the last one padded with 0xF.
    digits = "001010123456789"
    b = [(int(digits[0]) << 4) | 0x08 | 0x01]
    rest = digits[1:]
    for i in range(0, len(rest), 2):
        lo = int(rest[i])
        hi = int(rest[i + 1]) if i + 1 < len(rest) else 0xF
        b.append(hi << 4 | lo)
    imsi = bytes(b)
    return bytes([0x07, 0x41, 0x71, len(imsi)]) + imsi + bytes([0x02, 0xE0, 0xE0, 0x00, 0x00])


def attach_guti_free():
    """EMM Attach Request with a GUTI (type 6): not a permanent-only identity."""
    g = bytes([0xF6]) + PLMN + bytes([0x80, 0x01, 0x11, 0xCA, 0xFE, 0xF0, 0x0D])
    return bytes([0x07, 0x41, 0x71, len(g)]) + g + bytes([0x02, 0xE0, 0xE0, 0x00, 0x00])


# --- NGAP / S1AP (pycrate) -------------------------------------------------------------------------
def ngap_iue(ran_ue, nci, tac, cause, nas, s_tmsi=None):
    """InitialUEMessage (TS 38.413 §9.2.5.1): RAN-UE-NGAP-ID, NAS-PDU, then UserLocationInformation,
    RRCEstablishmentCause, FiveG-S-TMSI: the NAS-PDU precedes the ULI."""
    ies = [
        {"id": 85, "criticality": "reject", "value": ("RAN-UE-NGAP-ID", ran_ue)},
        {"id": 38, "criticality": "reject", "value": ("NAS-PDU", nas)},
        {"id": 121, "criticality": "reject", "value": ("UserLocationInformation", ("userLocationInformationNR", {
            "nR-CGI": {"pLMNIdentity": PLMN, "nRCellIdentity": (nci, 36)},
            "tAI": {"pLMNIdentity": PLMN, "tAC": tac.to_bytes(3, "big")}}))},
        {"id": 90, "criticality": "ignore", "value": ("RRCEstablishmentCause", cause)},
    ]
    if s_tmsi:
        s, p, t = s_tmsi
        ies.append({"id": 26, "criticality": "reject", "value": ("FiveG-S-TMSI", {
            "aMFSetID": (s, 10), "aMFPointer": (p, 6), "fiveG-TMSI": t.to_bytes(4, "big")})})
    ies.append({"id": 112, "criticality": "ignore", "value": ("UEContextRequest", "requested")})
    pdu = ND.NGAP_PDU
    pdu.set_val(("initiatingMessage", {"procedureCode": 15, "criticality": "ignore",
                                       "value": ("InitialUEMessage", {"protocolIEs": ies})}))
    return pdu.to_aper()


def s1ap_iue(enb_ue, eci, tac, cause, nas, s_tmsi=None):
    """S1AP Initial UE Message (TS 36.413 §9.1.7.1): eNB-UE-S1AP-ID, NAS-PDU, TAI, E-UTRAN CGI,
    RRC Establishment Cause, S-TMSI."""
    ies = [
        {"id": 8, "criticality": "reject", "value": ("ENB-UE-S1AP-ID", enb_ue)},
        {"id": 26, "criticality": "reject", "value": ("NAS-PDU", nas)},
        {"id": 67, "criticality": "reject", "value": ("TAI", {"pLMNidentity": PLMN, "tAC": tac.to_bytes(2, "big")})},
        {"id": 100, "criticality": "ignore", "value": ("EUTRAN-CGI", {"pLMNidentity": PLMN, "cell-ID": (eci, 28)})},
        {"id": 134, "criticality": "ignore", "value": ("RRC-Establishment-Cause", cause)},
    ]
    if s_tmsi:
        mmec, mt = s_tmsi
        ies.append({"id": 96, "criticality": "reject", "value": ("S-TMSI", {
            "mMEC": bytes([mmec]), "m-TMSI": mt.to_bytes(4, "big")})})
    pdu = SD.S1AP_PDU
    pdu.set_val(("initiatingMessage", {"procedureCode": 12, "criticality": "ignore",
                                       "value": ("InitialUEMessage", {"protocolIEs": ies})}))
    return pdu.to_aper()


def frame(peer, port, ppid, pdus, sack=True):
    """One SCTP packet: a SACK (as a real stack bundles with its DATA), then one DATA chunk per PDU
    (B and E set: each a whole message), consecutive TSNs on stream 1."""
    p = Ether(src="02:00:00:00:00:02", dst="02:00:00:00:00:01") / IP(src=peer, dst=AMF, id=1) / SCTP(
        sport=port, dport=port, tag=0x1234ABCD)
    if sack:
        p = p / SCTPChunkSACK(cumul_tsn_ack=7, a_rwnd=106496)
    for i, d in enumerate(pdus):
        p = p / SCTPChunkData(beginning=1, ending=1, tsn=100 + i, stream_id=1, stream_seq=i, proto_id=ppid, data=d)
    return bytes(p)


def ue(ran_ue, cell, tac, cause, enum, nas, s_tmsi=None, suci_only=False, guti_of=None):
    return {"ran_ue": ran_ue, "cell": cell, "tac": tac, "cause": cause_index(enum, cause), "cause_name": cause,
            "s_tmsi": list(s_tmsi) if s_tmsi else None, "guti": list(guti_of) if guti_of else None,
            "suci": suci_only, "nas": nas[2] if nas[0] == 0x7E else nas[1],
            "nas_len": len(nas)}


def ngap_case(name, peer, msgs, walked=None):
    pdus = [ngap_iue(m["ran_ue"], m["cell"], m["tac"], m["cause_name"], m["_nas"], m["_tmsi"]) for m in msgs]
    for m in msgs:
        del m["_nas"], m["_tmsi"]
    f = frame(peer, NGAP_PORT, 60, pdus)
    return {"name": name, "proto": "ngap", "peer": peer, "frame": f.hex(), "ues": msgs,
            "walked": len(msgs) if walked is None else walked}


def nmsg(ran_ue, cell, cause, nas, tmsi=None, suci_only=False, tac=1, guti_of=None):
    m = ue(ran_ue, cell, tac, cause, NI.RRCEstablishmentCause, nas, tmsi, suci_only, guti_of)
    m["_nas"], m["_tmsi"] = nas, tmsi
    return m


def cases():
    out = []
    # 1. Four InitialUEMessages in one packet (SACK + 4 DATA), four cells, every identity kind.
    t1, t2 = (0x155, 0x2A, 0xDEAD0001), (0x0F0, 0x01, 0xDEAD0002)
    out.append(ngap_case("bundle_4", "10.100.0.21", [
        nmsg(101, 0x1_0000_4001, "mo-Signalling", registration(suci(5550001)), suci_only=True),
        nmsg(102, 0x1_0000_4002, "mo-Data", service_request(*t1), tmsi=t1),
        nmsg(103, 0x1_0000_4003, "mt-Access", registration(guti(*t2)), guti_of=t2),
        nmsg(104, 0x1_0000_4004, "emergency", registration(suci(5550004)), suci_only=True),
    ]))
    # 2. Eighteen in one packet (about 1.8 kB): the first 16 chunks are walked (MAX_CHUNKS), the
    # other two are beyond the walk. 15 DATA + SACK = 16 chunks: 15 walked.
    many = [nmsg(200 + i, 0x1_0000_4010, "mo-Signalling", registration(suci(5560000 + i)), suci_only=True)
            for i in range(18)]
    out.append(ngap_case("bundle_18", "10.100.0.22", many, walked=MAX_CHUNKS - 1))
    # 3. A 600-octet NAS-PDU (NAS-PDU precedes ULI): the ULI and the FiveG-S-TMSI sit past octet
    # 600 of the packet; bundled behind another long one so the second starts past octet 650.
    t3 = (0x3FF, 0x3F, 0xCAFE0003)
    out.append(ngap_case("long_nas_600", "10.100.0.23", [
        nmsg(301, 0x1_0000_4020, "mo-Signalling", registration(suci(5570001), total=600), tmsi=t3),
        nmsg(302, 0x1_0000_4021, "mo-Data", registration(suci(5570002), total=600), suci_only=True),
    ]))
    # 4. NGAP extension causes (TS 38.413 §9.3.1.111 after the "..."): notAvailable,
    # mo-ExceptionData, beside root ones.
    out.append(ngap_case("ngap_ext_causes", "10.100.0.24", [
        nmsg(401, 0x1_0000_4030, "notAvailable", registration(suci(5580001)), suci_only=True),
        nmsg(402, 0x1_0000_4030, "mo-ExceptionData", registration(suci(5580002)), suci_only=True),
        nmsg(403, 0x1_0000_4030, "mcs-PriorityAccess", service_request(*t1), tmsi=t1),
    ]))
    # 5. S1AP extension causes (TS 36.413: delay-TolerantAccess, mo-VoiceCall, mo-ExceptionData),
    # IMSI attaches (the EPS SUCI-only) and one with an S-TMSI.
    sm = []
    for i, (cause, nas, st) in enumerate([
        ("delay-TolerantAccess", attach_imsi(), None),
        ("mo-VoiceCall", attach_guti_free(), (0x11, 0xCAFEF00D)),
        ("mo-ExceptionData", attach_imsi(), None),
        ("mo-Data", attach_imsi(), None),
    ]):
        m = ue(0x500 + i, 0x0ABC_D001, 7, cause, SI.RRC_Establishment_Cause, nas, st,
               suci_only=st is None and nas[4] & 7 == 1)
        m["_nas"], m["_tmsi"] = nas, st
        sm.append(m)
    pdus = [s1ap_iue(m["ran_ue"], m["cell"], m["tac"], m["cause_name"], m["_nas"], m["_tmsi"]) for m in sm]
    for m in sm:
        del m["_nas"], m["_tmsi"]
    out.append({"name": "s1ap_ext_causes", "proto": "s1ap", "peer": "10.100.0.25",
                "frame": frame("10.100.0.25", S1AP_PORT, 18, pdus).hex(), "ues": sm, "walked": len(sm)})
    return out


def main():
    for c in cases():
        sys.stdout.write(json.dumps(c) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
