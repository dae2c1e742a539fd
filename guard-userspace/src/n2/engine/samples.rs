//! What the controller reads from `N2_CELLS` / `N2_DEVICES` for the engine, and how cells and
//! devices are written in the hook payload and the audit log.

use super::*;

/// One cell's cumulative counters, as read from `N2_CELLS`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CellSample {
    pub key: N2CellKey,
    pub initial_ue: u64,
    pub registration_requests: u64,
    pub priority: u64,
    /// The RAN node that last reported the cell.
    pub peer: L3Addr,
    pub tac: u32,
    /// SUCI-only attempts (no temporary identity), in all and by RRC establishment cause.
    pub suci_only: u64,
    pub suci_causes: [u32; RRC_CAUSE_SLOTS],
}

impl CellSample {
    pub fn from_state(key: N2CellKey, s: &N2CellState) -> Self {
        CellSample {
            key,
            initial_ue: s.initial_ue,
            registration_requests: s.registration_requests,
            priority: s.priority,
            peer: s.last_peer,
            tac: s.tac,
            suci_only: s.suci_only,
            suci_causes: s.suci_causes,
        }
    }
}

/// One device's cumulative counters, as read from `N2_DEVICES`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceSample {
    pub key: N2DeviceKey,
    pub attempts: u64,
    pub registration_requests: u64,
    pub cell: N2CellKey,
    pub peer: L3Addr,
}

impl DeviceSample {
    pub fn from_state(key: N2DeviceKey, s: &N2DeviceState) -> Self {
        DeviceSample {
            key,
            attempts: s.attempts,
            registration_requests: s.registration_requests,
            cell: s.cell,
            peer: s.peer,
        }
    }
}

/// `nr:<plmn hex>:<nci hex>` / `eutra:<plmn hex>:<eci hex>`.
pub fn cell_str(k: &N2CellKey) -> String {
    let plmn = format!("{:02x}{:02x}{:02x}", k.plmn[0], k.plmn[1], k.plmn[2]);
    match k.kind {
        CELL_KIND_NR => format!("nr:{plmn}:{:#011x}", k.cell_id),
        CELL_KIND_EUTRA => format!("eutra:{plmn}:{:#09x}", k.cell_id),
        _ => "unknown".to_owned(),
    }
}

/// A device key as the hook and the audit log write it.
pub fn n2_device_str(k: &N2DeviceKey) -> String {
    let id = &k.id;
    match k.kind {
        N2_DEV_KIND_5G_S_TMSI => {
            let sp = u16::from_be_bytes([id[0], id[1]]);
            let tmsi = u32::from_be_bytes([id[2], id[3], id[4], id[5]]);
            format!("5g-s-tmsi:{}:{}:{tmsi:#010x}", sp >> 6, sp & 0x3f)
        }
        N2_DEV_KIND_S_TMSI => {
            format!("s-tmsi:{:#04x}:{:#010x}", id[0], u32::from_be_bytes([id[1], id[2], id[3], id[4]]))
        }
        N2_DEV_KIND_RAN_UE_V4 => {
            let a = L3Addr { family: FAMILY_IPV4, addr: *id };
            format!("ran-ue:{}:{}", addr_str(&a), k.aux)
        }
        N2_DEV_KIND_RAN_UE_V6 => {
            let a = L3Addr { family: FAMILY_IPV6, addr: *id };
            format!("ran-ue:{}:{}", addr_str(&a), k.aux)
        }
        other => format!("kind{other}:{id:02x?}"),
    }
}

/// The inverse of [`n2_device_str`] for the identities that name a device wherever it shows up:
/// `5g-s-tmsi:<AMF Set ID, 10 bits>:<AMF Pointer, 6 bits>:0x<5G-TMSI>` (TS 23.003 §2.11) and
/// `s-tmsi:0x<MMEC>:0x<M-TMSI>` (§2.9). One spelling each (the one [`n2_device_str`] writes), so
/// a key or list entry another tool spelled differently is not a second device.
pub fn parse_n2_device(s: &str) -> Option<N2DeviceKey> {
    let hex32 = |h: &str| h.strip_prefix("0x").filter(|h| h.len() == 8).and_then(|h| u32::from_str_radix(h, 16).ok());
    let k = if let Some(rest) = s.strip_prefix("5g-s-tmsi:") {
        let mut it = rest.split(':');
        let (set, ptr, tmsi) = (it.next()?, it.next()?, it.next()?);
        if it.next().is_some() {
            return None;
        }
        let set: u16 = set.parse().ok().filter(|v| *v < 1024)?;
        let ptr: u8 = ptr.parse().ok().filter(|v| *v < 64)?;
        N2DeviceKey::five_g_s_tmsi(set, ptr, hex32(tmsi)?)
    } else {
        let (mmec, m_tmsi) = s.strip_prefix("s-tmsi:")?.split_once(':')?;
        let mmec = mmec.strip_prefix("0x").filter(|h| h.len() == 2).and_then(|h| u8::from_str_radix(h, 16).ok())?;
        N2DeviceKey::s_tmsi(mmec, hex32(m_tmsi)?)
    };
    (n2_device_str(&k) == s).then_some(k)
}
