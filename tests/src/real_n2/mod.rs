//! `real-n2`: the N2 guard in front of a real SCTP stack (libusrsctp endpoints over raw IPv4 in
//! the RAN and core namespaces) carrying NGAP encoded by pycrate. Filled in by the real-n2 work.

use anyhow::{bail, Result};

use crate::realpeers::{RealCheck, RealOpts};

/// Run the scenario, write its report under `<out>/real-n2/`, return its checks.
pub fn run(_opts: &RealOpts) -> Result<Vec<RealCheck>> {
    bail!("real-n2 is not built yet")
}
