//! Shared by the integration tests that load the XDP object themselves.
use guard::bpf::pins::PinDir;

/// A bpffs pin directory unique to this test process (`/sys/fs/bpf/og-<tag>-<pid>/t`), removed
/// on drop, also when the test panics.
pub struct Pins(pub PinDir, std::path::PathBuf);

impl Pins {
    pub fn new(tag: &str) -> Pins {
        let base = std::path::PathBuf::from(format!("/sys/fs/bpf/og-{tag}-{}", std::process::id()));
        Pins(PinDir::new(&base, "t"), base)
    }
}

impl Drop for Pins {
    fn drop(&mut self) {
        let _ = self.0.purge();
        let _ = std::fs::remove_dir(&self.1);
    }
}
