//! XDP programs nobody on the project wrote the loader for, for the chaining tests (issue 22):
//! small C programs in `tests/peers/` (`xdp_upf.c`: counts and drops UDP to 9999, like a UPF's
//! own verdicts; `xdp_root.c`: a root that tail-calls slots 1 then 2), compiled with clang and
//! loaded and pinned with bpftool (Debian's `clang` and `bpftool`; `cargo xtask setup`
//! installs both). A [`Pinned`] removes its pins (program and maps) and directory on drop.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context, Result};
use aya::maps::{Array, HashMap, Map, MapData};

use crate::netns::unique_name;

/// The C source directory.
pub fn peers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("peers")
}

/// Compile `tests/peers/<name>.c` for BPF into a temporary object of a name of its own
/// (parallel tests compile the same source); the object's path.
pub fn compile(name: &str) -> Result<PathBuf> {
    let src = peers_dir().join(format!("{name}.c"));
    let obj = std::env::temp_dir().join(format!("og-{name}-{}.o", unique_name("o")));
    // Debian keeps <asm/types.h>, which <linux/bpf.h> includes, under the multiarch directory.
    let out = Command::new("clang")
        .args(["-O2", "-g", "-target", "bpf", "-I/usr/include/x86_64-linux-gnu", "-c"])
        .arg(&src)
        .arg("-o")
        .arg(&obj)
        .output()
        .context("running clang (Debian package `clang`; `cargo xtask setup` installs it)")?;
    if !out.status.success() {
        bail!("clang {}: {}", src.display(), String::from_utf8_lossy(&out.stderr));
    }
    Ok(obj)
}

/// Run bpftool with `args`; its stdout.
pub fn bpftool(args: &[&str]) -> Result<String> {
    let out = Command::new("bpftool")
        .args(args)
        .output()
        .context("running bpftool (Debian package `bpftool`; `cargo xtask setup` installs it)")?;
    if !out.status.success() {
        bail!(
            "bpftool {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A program loaded with bpftool and pinned at `<dir>/prog`, its maps under `<dir>/maps/`.
#[derive(Debug)]
pub struct Pinned {
    pub dir: PathBuf,
}

impl Pinned {
    /// Compile `tests/peers/<name>.c` and load it with bpftool into a fresh bpffs directory.
    pub fn load(name: &str) -> Result<Pinned> {
        let dir = PathBuf::from(format!("/sys/fs/bpf/og-xdp-{}", unique_name(name)));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let p = Pinned { dir };
        let obj = compile(name)?;
        let r = bpftool(&[
            "prog",
            "load",
            &obj.display().to_string(),
            &p.prog().display().to_string(),
            "type",
            "xdp",
            "pinmaps",
            &p.maps().display().to_string(),
        ]);
        let _ = std::fs::remove_file(&obj);
        r?;
        Ok(p)
    }

    pub fn prog(&self) -> PathBuf {
        self.dir.join("prog")
    }

    pub fn maps(&self) -> PathBuf {
        self.dir.join("maps")
    }

    pub fn map(&self, name: &str) -> PathBuf {
        self.maps().join(name)
    }

    /// The program's kernel ID.
    pub fn id(&self) -> u32 {
        aya::programs::ProgramInfo::from_pin(self.prog()).map(|i| i.id()).unwrap_or(0)
    }

    /// `BPF_PROG_TEST_RUN` of the pinned program on `frame`, through bpftool; the XDP action.
    pub fn run(&self, frame: &[u8]) -> Result<u32> {
        let f = std::env::temp_dir().join(format!("og-frame-{}", unique_name("f")));
        std::fs::write(&f, frame).context("writing the frame")?;
        let out = bpftool(&[
            "prog",
            "run",
            "pinned",
            &self.prog().display().to_string(),
            "data_in",
            &f.display().to_string(),
        ]);
        let _ = std::fs::remove_file(&f);
        let out = out?;
        let rv = out
            .lines()
            .find_map(|l| l.strip_prefix("Return value: "))
            .and_then(|r| r.split(',').next())
            .and_then(|n| n.trim().parse().ok());
        rv.with_context(|| format!("no return value in bpftool's output: {out}"))
    }

    /// Entry `i` of the pinned `u32 → u64` array `map`.
    pub fn counter(&self, map: &str, i: u32) -> u64 {
        let data = MapData::from_pin(self.map(map)).unwrap_or_else(|e| panic!("opening {map}: {e}"));
        let a: Array<_, u64> = Array::try_from(Map::Array(data)).unwrap_or_else(|e| panic!("{map}: {e}"));
        a.get(&i, 0).unwrap_or_else(|e| panic!("{map}[{i}]: {e}"))
    }

    /// The value of `key` in the pinned `u32 → u64` hash `map` (0 when absent).
    pub fn hash_u32(&self, map: &str, key: u32) -> u64 {
        let data = MapData::from_pin(self.map(map)).unwrap_or_else(|e| panic!("opening {map}: {e}"));
        let h: HashMap<_, u32, u64> = HashMap::try_from(Map::HashMap(data)).unwrap_or_else(|e| panic!("{map}: {e}"));
        match h.get(&key, 0) {
            Ok(v) => v,
            Err(aya::maps::MapError::KeyNotFound) => 0,
            Err(e) => panic!("{map}[{key}]: {e}"),
        }
    }

    /// Remove the program's pin only (as a UPF that unloads its program would): its maps stay.
    pub fn unpin_prog(&self) {
        let _ = std::fs::remove_file(self.prog());
    }

    /// Re-load the program at the same pin (a UPF restart: a new program ID, new maps).
    /// Compiled first, so the pin is missing only for the moment bpftool takes to load.
    pub fn reload(&self, name: &str) -> Result<()> {
        let unique = compile(name)?;
        self.unpin_prog();
        for e in std::fs::read_dir(self.maps()).into_iter().flatten().flatten() {
            let _ = std::fs::remove_file(e.path());
        }
        let _ = std::fs::remove_dir(self.maps());
        let r = bpftool(&[
            "prog",
            "load",
            &unique.display().to_string(),
            &self.prog().display().to_string(),
            "type",
            "xdp",
            "pinmaps",
            &self.maps().display().to_string(),
        ]);
        let _ = std::fs::remove_file(&unique);
        r.map(|_| ())
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        fn rm(p: &Path) {
            if p.is_dir() {
                for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
                    rm(&e.path());
                }
                let _ = std::fs::remove_dir(p);
            } else {
                let _ = std::fs::remove_file(p);
            }
        }
        rm(&self.dir);
    }
}
