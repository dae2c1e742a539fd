//! `real-n3`: the guard in front of a real GTP stack (osmo-ggsn in the core namespace, sgsnemu
//! instances in the RAN namespace). Filled in by the real-n3 work.

use anyhow::{bail, Result};

use crate::realpeers::{RealCheck, RealOpts};

/// Run the scenario, write its report under `<out>/real-n3/`, return its checks.
pub fn run(_opts: &RealOpts) -> Result<Vec<RealCheck>> {
    bail!("real-n3 is not built yet")
}
