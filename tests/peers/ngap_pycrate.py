#!/usr/bin/env python3
"""NGAP PDUs for the real-n2 lab, encoded by pycrate (an encoder nobody on this project wrote).

Reads one JSON object per line on stdin, writes one line per object on stdout: the APER
encoding of the NGAP-PDU in hex (TS 38.413 §9.4, ALIGNED PER). The NAS PDUs inside are built
here from TS 24.501 (plain 5GMM, no security header), independently of labkit's Rust encoder.

Kinds:
  {"k": "ng_setup", "gnb_id": int, "name": str, "tac": int}
  {"k": "iue", "ran_ue": int, "nci": int, "tac": int, "cause": str, "s_tmsi": [set, ptr, tmsi] | null,
   "nas": "reg_guti" | "reg_suci" | "service" | "long", "guti": [set, ptr, tmsi] | null,
   "ue_ctx_req": bool, "amf_set": [region, set, ptr] | null}
  {"k": "ng_setup_response", "name": str}
  {"k": "ulnas", "amf_ue": int, "ran_ue": int, "nci": int, "tac": int, "nas_len": int}
"""
import json
import sys

from pycrate_asn1dir.NGAP import NGAP_PDU_Descriptions as D

PLMN = bytes.fromhex("00f110")  # MCC 001 MNC 01 (TS 24.008 §10.5.1.3 BCD)


def nas_guti(set_id, ptr, tmsi):
    """5GS mobile identity IE, type 5G-GUTI (TS 24.501 §9.11.3.4): LV-E, 11 octets."""
    v = bytes([0xF2]) + PLMN + bytes([0xCA, (set_id >> 2) & 0xFF, ((set_id & 3) << 6) | (ptr & 0x3F)])
    v += tmsi.to_bytes(4, "big")
    return len(v).to_bytes(2, "big") + v


def nas_suci(msin):
    """5GS mobile identity IE, type SUCI, SUPI format IMSI, null scheme (§9.11.3.4)."""
    digits = "%010d" % (msin % 10**10)
    bcd = bytes(int(digits[i + 1]) << 4 | int(digits[i]) for i in range(0, 10, 2))
    v = bytes([0x01]) + PLMN + bytes([0xF0, 0xFF, 0x00, 0x00]) + bcd
    return len(v).to_bytes(2, "big") + v


def registration_request(ident, pad=0):
    """Registration Request (§8.2.6): EPD 0x7e, plain, type 0x41, ngKSI 7 + initial registration
    (FOR 1), the mobile identity, then UE security capability (IEI 0x2e) and, for the long
    variant, a payload container (IEI 0x7b, LV-E) so the NAS-PDU needs a 2-octet length."""
    n = bytes([0x7E, 0x00, 0x41, 0x79]) + ident + bytes([0x2E, 0x02, 0xF0, 0xF0])
    if pad:
        n += bytes([0x7B]) + pad.to_bytes(2, "big") + bytes((i * 7) & 0xFF for i in range(pad))
    return n


def service_request(set_id, ptr, tmsi):
    """Service Request (§8.2.16): ngKSI + service type, 5G-S-TMSI identity (§9.11.3.4, type 4)."""
    v = bytes([0xF4, (set_id >> 2) & 0xFF, ((set_id & 3) << 6) | (ptr & 0x3F)]) + tmsi.to_bytes(4, "big")
    return bytes([0x7E, 0x00, 0x4C, 0x00]) + len(v).to_bytes(2, "big") + v


def uli(nci, tac):
    """UserLocationInformationNR: NR-CGI (PLMN, 36-bit NCI) and TAI (§9.3.1.16)."""
    return ("userLocationInformationNR", {
        "nR-CGI": {"pLMNIdentity": PLMN, "nRCellIdentity": (nci, 36)},
        "tAI": {"pLMNIdentity": PLMN, "tAC": tac.to_bytes(3, "big")},
    })


def ie(id_, crit, name, val):
    return {"id": id_, "criticality": crit, "value": (name, val)}


def initiating(code, name, ies, crit="ignore"):
    return ("initiatingMessage", {"procedureCode": code, "criticality": crit, "value": (name, {"protocolIEs": ies})})


def ng_setup(m):
    ies = [
        ie(27, "reject", "GlobalRANNodeID", ("globalGNB-ID", {
            "pLMNIdentity": PLMN, "gNB-ID": ("gNB-ID", (m["gnb_id"], 22))})),
        ie(82, "ignore", "RANNodeName", m["name"]),
        ie(102, "reject", "SupportedTAList", [{
            "tAC": m["tac"].to_bytes(3, "big"),
            "broadcastPLMNList": [{"pLMNIdentity": PLMN,
                                   "tAISliceSupportList": [{"s-NSSAI": {"sST": b"\x01"}}]}]}]),
        ie(21, "ignore", "PagingDRX", "v128"),
    ]
    return initiating(21, "NGSetupRequest", ies, "reject")


def initial_ue(m):
    if m["nas"] == "reg_suci":
        nas = registration_request(nas_suci(m["ran_ue"]))
    elif m["nas"] == "service":
        nas = service_request(*m["s_tmsi"])
    elif m["nas"] == "long":
        nas = registration_request(nas_suci(m["ran_ue"]), pad=300)
    else:
        nas = registration_request(nas_guti(*m["guti"]))
    ies = [
        ie(85, "reject", "RAN-UE-NGAP-ID", m["ran_ue"]),
        ie(38, "reject", "NAS-PDU", nas),
        ie(121, "reject", "UserLocationInformation", uli(m["nci"], m["tac"])),
        ie(90, "ignore", "RRCEstablishmentCause", m["cause"]),
    ]
    if m.get("s_tmsi"):
        s, p, t = m["s_tmsi"]
        ies.append(ie(26, "reject", "FiveG-S-TMSI", {
            "aMFSetID": (s, 10), "aMFPointer": (p, 6), "fiveG-TMSI": t.to_bytes(4, "big")}))
    if m.get("amf_set"):
        ies.append(ie(3, "ignore", "AMFSetID", (m["amf_set"][1], 10)))
    if m.get("ue_ctx_req"):
        ies.append(ie(112, "ignore", "UEContextRequest", "requested"))
    return initiating(15, "InitialUEMessage", ies)


def uplink_nas(m):
    n = m["nas_len"]
    nas = bytes([0x7E, 0x00, 0x57, 0x2D, 0x10]) + bytes((m["ran_ue"] + i) & 0xFF for i in range(max(n - 5, 0)))
    ies = [
        ie(10, "reject", "AMF-UE-NGAP-ID", m["amf_ue"]),
        ie(85, "reject", "RAN-UE-NGAP-ID", m["ran_ue"]),
        ie(38, "reject", "NAS-PDU", nas),
        ie(121, "ignore", "UserLocationInformation", uli(m["nci"], m["tac"])),
    ]
    return initiating(46, "UplinkNASTransport", ies)


def ng_setup_response(m):
    """NGSetupResponse (§9.2.6.2): AMF name, served GUAMI, relative capacity, PLMN support."""
    ies = [
        ie(1, "reject", "AMFName", m["name"]),
        ie(96, "reject", "ServedGUAMIList", [{"gUAMI": {
            "pLMNIdentity": PLMN, "aMFRegionID": (0xCA, 8), "aMFSetID": (1, 10), "aMFPointer": (1, 6)}}]),
        ie(86, "ignore", "RelativeAMFCapacity", 255),
        ie(80, "reject", "PLMNSupportList", [{
            "pLMNIdentity": PLMN, "sliceSupportList": [{"s-NSSAI": {"sST": b"\x01"}}]}]),
    ]
    return ("successfulOutcome", {"procedureCode": 21, "criticality": "reject",
                                  "value": ("NGSetupResponse", {"protocolIEs": ies})})


KINDS = {"ng_setup": ng_setup, "ng_setup_response": ng_setup_response, "iue": initial_ue, "ulnas": uplink_nas}


def main():
    pdu = D.NGAP_PDU
    out = sys.stdout
    for n, line in enumerate(sys.stdin):
        line = line.strip()
        if not line:
            continue
        m = json.loads(line)
        try:
            pdu.set_val(KINDS[m["k"]](m))
            out.write(pdu.to_aper().hex() + "\n")
        except Exception as e:  # report which spec failed, then stop: the lab treats it as fatal
            sys.stderr.write("ngap_pycrate: line %d %r: %s\n" % (n + 1, m, e))
            return 1
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
