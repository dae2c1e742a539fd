//! Why a packet was malformed: one counter per reason in `N3_MALFORMED`.

/// Reasons, in counter-index order. Reasons before [`Malformed::UdpTruncated`] (inclusive) are
/// found before the packet is known to be GTP-U: those packets pass (the kernel stack validates
/// and drops them itself). Reasons after it are malformed GTP-U, which the guard drops when
/// `PROT_MALFORMED` is enforced, as TS 29.281 §7.x asks receivers to discard them.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Malformed {
    EthTruncated = 0,
    VlanTruncated = 1,
    VlanTooDeep = 2,
    Ipv4Truncated = 3,
    Ipv4BadVersion = 4,
    Ipv4BadIhl = 5,
    Ipv6Truncated = 6,
    Ipv6BadVersion = 7,
    Ipv6ExtTruncated = 8,
    Ipv6ExtTooDeep = 9,
    UdpTruncated = 10,
    UdpBadLength = 11,
    GtpTruncated = 12,
    GtpBadVersion = 13,
    GtpBadProtocolType = 14,
    GtpLengthMismatch = 15,
    GtpOptionalTruncated = 16,
    ExtZeroLength = 17,
    ExtOverrun = 18,
    ExtChainTooLong = 19,
    /// No longer produced: a T-PDU that does not parse as IP is a non-IP T-PDU (an Ethernet or
    /// Unstructured PDU session, TS 23.501 §5.6.10), never malformed. Kept so the counter
    /// indexes (and the metric label) of the other reasons stay where they were.
    InnerTruncated = 20,
    UnknownMessageType = 21,
}

impl Malformed {
    pub const COUNT: u32 = 22;

    pub const ALL: [Malformed; Self::COUNT as usize] = [
        Malformed::EthTruncated,
        Malformed::VlanTruncated,
        Malformed::VlanTooDeep,
        Malformed::Ipv4Truncated,
        Malformed::Ipv4BadVersion,
        Malformed::Ipv4BadIhl,
        Malformed::Ipv6Truncated,
        Malformed::Ipv6BadVersion,
        Malformed::Ipv6ExtTruncated,
        Malformed::Ipv6ExtTooDeep,
        Malformed::UdpTruncated,
        Malformed::UdpBadLength,
        Malformed::GtpTruncated,
        Malformed::GtpBadVersion,
        Malformed::GtpBadProtocolType,
        Malformed::GtpLengthMismatch,
        Malformed::GtpOptionalTruncated,
        Malformed::ExtZeroLength,
        Malformed::ExtOverrun,
        Malformed::ExtChainTooLong,
        Malformed::InnerTruncated,
        Malformed::UnknownMessageType,
    ];

    /// True when the packet was already known to be GTP-U (UDP to the GTP-U port).
    pub const fn is_gtp(self) -> bool {
        self as u32 > Malformed::UdpTruncated as u32
    }

    /// A stable snake_case name (metric label, JSON, CLI).
    pub const fn name(self) -> &'static str {
        match self {
            Malformed::EthTruncated => "eth_truncated",
            Malformed::VlanTruncated => "vlan_truncated",
            Malformed::VlanTooDeep => "vlan_too_deep",
            Malformed::Ipv4Truncated => "ipv4_truncated",
            Malformed::Ipv4BadVersion => "ipv4_bad_version",
            Malformed::Ipv4BadIhl => "ipv4_bad_ihl",
            Malformed::Ipv6Truncated => "ipv6_truncated",
            Malformed::Ipv6BadVersion => "ipv6_bad_version",
            Malformed::Ipv6ExtTruncated => "ipv6_ext_truncated",
            Malformed::Ipv6ExtTooDeep => "ipv6_ext_too_deep",
            Malformed::UdpTruncated => "udp_truncated",
            Malformed::UdpBadLength => "udp_bad_length",
            Malformed::GtpTruncated => "gtp_truncated",
            Malformed::GtpBadVersion => "gtp_bad_version",
            Malformed::GtpBadProtocolType => "gtp_bad_protocol_type",
            Malformed::GtpLengthMismatch => "gtp_length_mismatch",
            Malformed::GtpOptionalTruncated => "gtp_optional_truncated",
            Malformed::ExtZeroLength => "ext_zero_length",
            Malformed::ExtOverrun => "ext_overrun",
            Malformed::ExtChainTooLong => "ext_chain_too_long",
            Malformed::InnerTruncated => "inner_truncated",
            Malformed::UnknownMessageType => "unknown_message_type",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_index_order() {
        for (i, r) in Malformed::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
    }
}
