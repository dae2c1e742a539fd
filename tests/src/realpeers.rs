//! Shared plumbing of the real-peer lab scenarios (`real-n3`, `real-n2`): the options every
//! scenario takes and the check lines it reports. The peers themselves are implementations nobody
//! on this project wrote (osmo-ggsn and sgsnemu for GTP, libusrsctp for SCTP, pycrate for NGAP),
//! so what they count is an oracle independent of the guard's own counters.

use std::path::PathBuf;

use serde::Serialize;

/// Options of one real-peer scenario run.
#[derive(Clone, Debug)]
pub struct RealOpts {
    /// The `guard` binary to run as the data plane under test.
    pub guard_bin: PathBuf,
    /// The scenario writes `<out>/<scenario>/report.md`, `report.json` and its captures here.
    pub out: PathBuf,
    /// The bounded version for `cargo xtask test` (under 2 minutes, fewer peers).
    pub quick: bool,
    /// Print progress.
    pub verbose: bool,
}

/// One acceptance check of a real-peer scenario.
#[derive(Clone, Debug, Serialize)]
pub struct RealCheck {
    pub scenario: String,
    pub criterion: String,
    pub pass: bool,
    /// The measured value and where it came from (which peer's statistics).
    pub detail: String,
}

impl RealCheck {
    pub fn new(scenario: &str, criterion: &str, pass: bool, detail: impl Into<String>) -> RealCheck {
        RealCheck { scenario: scenario.into(), criterion: criterion.into(), pass, detail: detail.into() }
    }
}

impl RealCheck {
    /// A measurement that an open issue's target applies to but that does not gate this
    /// scenario yet (printed as `OPEN`, listed in the report, never counted as a pass).
    pub fn open(scenario: &str, criterion: &str, detail: impl Into<String>) -> RealCheck {
        RealCheck {
            scenario: scenario.into(),
            criterion: criterion.into(),
            pass: true,
            detail: format!("OPEN: {}", detail.into()),
        }
    }
}

/// The Python with pycrate (and Debian's scapy): the venv `cargo xtask setup` makes at
/// `<workspace>/target/pyvenv`. An error that says how to make it if it is missing.
pub fn python() -> anyhow::Result<PathBuf> {
    let py = crate::guard_bin::workspace().join("target/pyvenv/bin/python3");
    if !py.exists() {
        anyhow::bail!("no pycrate venv at {} (run `cargo xtask setup`)", py.display());
    }
    Ok(py)
}
