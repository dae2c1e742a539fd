/// An open type / unconstrained length determinant and the contents (X.691 §11.9).
pub fn open(v: &[u8]) -> Vec<u8> {
    let mut o = if v.len() < 128 {
        vec![v.len() as u8]
    } else {
        assert!(v.len() < 16384, "fragmented lengths are not built");
        vec![0x80 | (v.len() >> 8) as u8, v.len() as u8]
    };
    o.extend_from_slice(v);
    o
}

/// ProtocolIE-Field: id (2), criticality (2 bits, padded), value as an open type.
pub fn ie(id: u16, criticality: u8, value: &[u8]) -> Vec<u8> {
    let mut o = id.to_be_bytes().to_vec();
    o.push(criticality << 6);
    o.extend_from_slice(&open(value));
    o
}

/// A whole PDU: CHOICE index (0 initiating, 1 successful, 2 unsuccessful), procedureCode,
/// criticality, and the message SEQUENCE (extension bit 0, IE count, IEs) as an open type.
pub fn pdu(choice: u8, proc_code: u8, criticality: u8, ies: &[Vec<u8>]) -> Vec<u8> {
    let mut v = vec![0x00];
    v.extend_from_slice(&(ies.len() as u16).to_be_bytes());
    for i in ies {
        v.extend_from_slice(i);
    }
    let mut o = vec![choice << 5, proc_code, criticality << 6];
    o.extend_from_slice(&open(&v));
    o
}

/// A constrained whole number with a range above 64K (X.691 §11.5.7.4): the octet count minus
/// one in `len_bits` bits (padded to an octet), then the minimal big-endian octets.
pub fn big_uint(v: u64, len_bits: u32) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take(7).take_while(|b| **b == 0).count();
    let n = 8 - skip;
    let mut o = vec![((n - 1) as u8) << (8 - len_bits)];
    o.extend_from_slice(&bytes[skip..]);
    o
}

pub const REJECT: u8 = 0;
pub const IGNORE: u8 = 1;
