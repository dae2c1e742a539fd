//! The hostile-input corpora of `tests/corpus/<n3|n2>/` as test cases: each `MANIFEST` line names
//! a frame, the verdict the program must give it and its malformed reason (`-` for none), and the
//! fuzzer's crash inputs (`guard-common/fuzz/artifacts/<target>/`) join them as regression cases
//! whose expected outcome is what the host parser predicts. One reader for both interfaces, so
//! the two corpus tests cannot read their manifests differently.

use std::path::{Path, PathBuf};

/// A verdict or malformed reason as the manifest spells it.
pub trait Named: Copy + 'static {
    fn all() -> &'static [Self];
    fn name(self) -> &'static str;
}

macro_rules! named {
    ($($t:ty),*) => {$(
        impl Named for $t {
            fn all() -> &'static [Self] {
                &<$t>::ALL
            }
            fn name(self) -> &'static str {
                <$t>::name(self)
            }
        }
    )*};
}
named!(
    guard_common::policy::Verdict,
    guard_common::parse::Malformed,
    guard_common::policy_n2::N2Verdict,
    guard_common::parse::n2::N2Malformed
);

/// One frame and what the program must do with it.
pub struct Case<V, R> {
    pub name: String,
    pub frame: Vec<u8>,
    pub verdict: V,
    pub reason: Option<R>,
}

/// `tests/corpus/<iface>/`.
pub fn dir(iface: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(iface)
}

fn by_name<T: Named>(name: &str, what: &str) -> T {
    T::all().iter().copied().find(|v| v.name() == name).unwrap_or_else(|| panic!("MANIFEST: unknown {what} {name}"))
}

/// The MANIFEST's cases of `tests/corpus/<iface>/`.
pub fn manifest<V: Named, R: Named>(iface: &str) -> Vec<Case<V, R>> {
    let dir = dir(iface);
    let manifest =
        std::fs::read_to_string(dir.join("MANIFEST")).unwrap_or_else(|e| panic!("tests/corpus/{iface}/MANIFEST: {e}"));
    let mut out = Vec::new();
    for line in manifest.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let f: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(f.len(), 3, "MANIFEST line {line:?}");
        let verdict = by_name(f[1], "verdict");
        let reason = (f[2] != "-").then(|| by_name(f[2], "reason"));
        let frame = std::fs::read(dir.join(format!("{}.bin", f[0]))).expect("corpus frame");
        out.push(Case { name: f[0].to_owned(), frame, verdict, reason });
    }
    out
}

/// The MANIFEST's cases plus the fuzzer's crash inputs for `fuzz_target`, each of those expected
/// to get what `predict` (the host parser) says. BPF_PROG_TEST_RUN refuses XDP input shorter than
/// an Ethernet header, so shorter artifacts are left to the host-side fuzz regression.
pub fn with_artifacts<V: Named, R: Named>(
    iface: &str,
    fuzz_target: &str,
    predict: impl Fn(&[u8]) -> (V, Option<R>),
) -> Vec<Case<V, R>> {
    let mut cases = manifest(iface);
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guard-common/fuzz/artifacts").join(fuzz_target);
    for e in std::fs::read_dir(&artifacts).into_iter().flatten().flatten() {
        let frame = std::fs::read(e.path()).expect("artifact");
        if frame.len() >= 14 {
            let (verdict, reason) = predict(&frame);
            cases.push(Case { name: e.file_name().to_string_lossy().into_owned(), frame, verdict, reason });
        }
    }
    cases
}
