//! Idempotent installation of everything the build, tests and lab need, one line per step.
//!
//! The verified toolchain (see ARCHITECTURE.md, "Build"): Debian bookworm-security's rustc-web
//! 1.96 (LLVM 22) builds `core` for `bpfel-unknown-none`; bpf-linker 0.13 must be built against the
//! same LLVM 22 (`--features llvm-22`, `LLVM_PREFIX=/usr/lib/llvm-22`), otherwise it picks
//! Debian's default llvm-config (14) and cannot link.

use std::{path::Path, process::Command};

use anyhow::{bail, Context, Result};

/// Debian packages: the BPF compiler and its LLVM, then the lab's and tests' tools.
const DEB_PACKAGES: &[&str] = &[
    "rustc-web",
    "cargo-web",
    "rust-web-src",
    "llvm-22-dev",
    "libpolly-22-dev",
    "zlib1g-dev",
    "libzstd-dev",
    "iproute2",
    "tshark",
    "python3-scapy",
    // The lab report's timeline plots (plotters draws its text through font-kit, whose build
    // links fontconfig and freetype; its Depends bring a font). A bare machine's lab build failed
    // without it.
    "libfontconfig-dev",
    "nftables",
    "ethtool",
    // Real peers nobody on this project wrote (issue 15): osmo-ggsn and sgsnemu (GTP), libusrsctp
    // (a userspace RFC 9260 stack: these kernels have no SCTP), and what builds and runs them.
    "osmo-ggsn",
    "libusrsctp-dev",
    "pkg-config",
    "python3-venv",
    // XDP programs nobody on this project wrote, for the chaining tests (issue 22): C built with
    // clang for the BPF target, loaded and pinned with bpftool.
    "clang",
    "bpftool",
    // Fleet mode (issue 23): `protoc` builds etcd-client's gRPC stubs, which import protobuf's
    // well-known types (google/protobuf/descriptor.proto, struct.proto): those are in
    // libprotobuf-dev, only a Recommends of protobuf-compiler, which `--no-install-recommends`
    // skips (a bare machine's build failed without it). A real etcd for its tests.
    "protobuf-compiler",
    "libprotobuf-dev",
    "etcd-server",
    // etcdctl, which the fleet tests use to write what an operator or a broken client would.
    "etcd-client",
];
/// pycrate (PyPI), the independent NGAP/S1AP APER encoder, in a venv of the workspace: Debian's
/// Python is externally managed. `--system-site-packages` keeps Debian's scapy visible.
const PYCRATE_VERSION: &str = "0.8.1";
const BPF_LINKER_VERSION: &str = "0.13.0";

fn step(msg: &str) {
    eprintln!("[setup] {msg}");
}

pub fn ensure_all() -> Result<()> {
    ensure_build()?;
    ensure_packaging()?;
    ensure_cargo_fuzz()
}

/// promtool, lintian, logrotate and cargo-deb: for `cargo xtask package` and the tests of what it ships.
pub fn ensure_packaging() -> Result<()> {
    let missing = missing_of(DEB_PACKAGING);
    if missing.is_empty() {
        step("Debian packages for packaging (promtool, lintian, logrotate, systemd-analyze, strace): ok");
    } else {
        if !is_root() {
            bail!("Debian packages missing: {}. Run as root so they can be installed (apt-get).", missing.join(" "));
        }
        step(&format!("installing Debian packages: {} (apt-get)", missing.join(" ")));
        run_quiet(
            Command::new("apt-get")
                .args(["install", "-y", "-q", "--no-install-recommends"])
                .args(&missing)
                .env("DEBIAN_FRONTEND", "noninteractive"),
            "apt-get install",
        )?;
    }
    ensure_cargo_deb()
}

const CARGO_MUTANTS_VERSION: &str = "27.1.0";

/// cargo-mutants (crates.io), for `cargo xtask mutants` only.
pub fn ensure_cargo_mutants() -> Result<()> {
    ensure_cargo_tool("cargo-mutants", CARGO_MUTANTS_VERSION, "a few minutes")
}

/// How a cargo subcommand prints its version: cargo-mutants only as `cargo-mutants mutants
/// --version` (the way cargo calls it); a bare `--version` is an error, which read as "missing"
/// and reinstalled it on every run.
fn version_args(tool: &str) -> &'static [&'static str] {
    if tool == "cargo-mutants" {
        &["mutants", "--version"]
    } else {
        &["--version"]
    }
}

/// A cargo subcommand installed from crates.io at exactly `version` (checked by its `--version`),
/// installed with `--locked` when missing or at another version.
fn ensure_cargo_tool(tool: &str, version: &str, takes: &str) -> Result<()> {
    let bin = cargo_bin_dir().join(tool);
    if let Ok(o) = Command::new(&bin).args(version_args(tool)).output() {
        if String::from_utf8_lossy(&o.stdout).contains(version) {
            step(&format!("{tool} {version}: ok"));
            return Ok(());
        }
    }
    step(&format!("installing {tool} {version} (cargo install, {takes})"));
    run_quiet(
        Command::new("cargo").args(["install", tool, "--version", version, "--locked"]),
        &format!("cargo install {tool}"),
    )?;
    step(&format!("{tool} installed"));
    Ok(())
}

const CARGO_DEB_VERSION: &str = "2.7.0";

/// cargo-deb (crates.io) builds the Debian package from `[package.metadata.deb]`.
fn ensure_cargo_deb() -> Result<()> {
    ensure_cargo_tool("cargo-deb", CARGO_DEB_VERSION, "about a minute")
}

/// What building, the lab and the bench need (not cargo-fuzz, which only `test` and `fuzz` run:
/// a minute saved on a fresh machine's `cargo xtask lab`).
///
/// On a fresh machine the steps overlap where they use different resources: the workspace's
/// crates are downloaded while apt installs (network beside dpkg), and pycrate is installed while
/// bpf-linker compiles (pip beside the compiler); bpf-linker needs LLVM 22 from apt, so it waits
/// for it. On a machine that has everything each step is a check of a second or less.
pub fn ensure_build() -> Result<()> {
    let fetch = std::thread::spawn(fetch_crates);
    let apt = ensure_debian_packages();
    let fetched = fetch.join().map_err(|_| anyhow::anyhow!("the crate download thread panicked"))?;
    apt?;
    fetched?;
    let py = std::thread::spawn(ensure_pycrate);
    let linker = ensure_bpf_linker();
    let py = py.join().map_err(|_| anyhow::anyhow!("the pycrate install thread panicked"))?;
    linker?;
    py
}

/// The workspace's crates from crates.io, as locked (`cargo fetch --locked`): no Debian package
/// is needed to download them, so this runs beside apt.
fn fetch_crates() -> Result<()> {
    let root = crate::run::root();
    for dir in [root.clone(), root.join("guard-ebpf")] {
        run_quiet(
            Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .current_dir(&dir)
                .args(["fetch", "--locked", "--quiet"]),
            &format!("cargo fetch in {}", dir.display()),
        )?;
    }
    step("crates.io dependencies: fetched (beside the Debian packages)");
    Ok(())
}

/// The venv holding pycrate: `<workspace>/target/pyvenv` (labkit's `realpeers::python` finds it).
pub fn pyvenv() -> std::path::PathBuf {
    crate::run::root().join("target/pyvenv")
}

fn ensure_pycrate() -> Result<()> {
    let venv = pyvenv();
    let py = venv.join("bin/python3");
    // The distribution is "pycrate"; its modules are pycrate_asn1dir, pycrate_asn1rt, ... (no
    // top-level `pycrate` module), so the version comes from the package metadata.
    let probe =
        "import importlib.metadata as m, pycrate_asn1dir.NGAP, pycrate_asn1dir.S1AP; print(m.version('pycrate'))";
    if let Ok(o) = Command::new(&py).args(["-c", probe]).output() {
        if o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == PYCRATE_VERSION {
            step(&format!("pycrate {PYCRATE_VERSION} (NGAP/S1AP encoder) in {}: ok", venv.display()));
            return Ok(());
        }
    }
    step(&format!("installing pycrate {PYCRATE_VERSION} into {} (python3 -m venv + pip)", venv.display()));
    run_quiet(
        Command::new("/usr/bin/python3").args(["-m", "venv", "--system-site-packages"]).arg(&venv),
        "python3 -m venv",
    )?;
    run_quiet(
        Command::new(venv.join("bin/pip")).args(["install", "-q", &format!("pycrate=={PYCRATE_VERSION}")]),
        "pip install pycrate",
    )?;
    let o = Command::new(&py).args(["-c", probe]).output().context("run the venv's python3")?;
    if !o.status.success() {
        bail!("pycrate installed but does not import: {}", String::from_utf8_lossy(&o.stderr).trim());
    }
    step("pycrate installed");
    Ok(())
}

/// What packaging and its checks need (issue 20): promtool (Debian's prometheus package) for the
/// metrics and alert-rule tests, lintian for the .deb. Only `test` and `package` install them.
/// logrotate, to check the shipped rotation file parses; systemd for `systemd-analyze verify`,
/// `security` and `syscall-filter` on the unit (a Debian container or chroot may lack it);
/// strace, to trace the system calls the guard makes against the unit's filter.
const DEB_PACKAGING: &[&str] = &["prometheus", "lintian", "logrotate", "systemd", "strace"];

fn missing_packages() -> Vec<&'static str> {
    missing_of(DEB_PACKAGES)
}

fn missing_of(list: &[&'static str]) -> Vec<&'static str> {
    list.iter()
        .copied()
        .filter(|p| {
            let out = Command::new("dpkg-query").args(["-W", "-f=${Status}", p]).output();
            !matches!(out, Ok(o) if String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        })
        .collect()
}

fn ensure_debian_packages() -> Result<()> {
    let missing = missing_packages();
    if missing.is_empty() {
        step("Debian packages (rustc-web 1.96, LLVM 22, tshark, scapy, nftables, iproute2, osmo-ggsn, libusrsctp, clang, bpftool, protoc, etcd): ok");
        return Ok(());
    }
    if !is_root() {
        bail!("Debian packages missing: {}. Run as root so they can be installed (apt-get).", missing.join(" "));
    }
    step(&format!("installing Debian packages: {} (apt-get, about a minute)", missing.join(" ")));
    // rustc-web 1.96 comes from bookworm-security: refresh the lists first, or apt may only know
    // an older candidate.
    run_quiet(Command::new("apt-get").args(["update", "-q"]), "apt-get update")?;
    run_quiet(
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
        "apt-get install",
    )?;
    let still = missing_packages();
    if !still.is_empty() {
        bail!("apt-get finished but these are still missing: {}", still.join(" "));
    }
    let v = Command::new("/usr/bin/rustc").arg("--version").output().context("run /usr/bin/rustc")?;
    step(&format!("installed; BPF compiler is {}", String::from_utf8_lossy(&v.stdout).trim()));
    Ok(())
}

fn cargo_bin_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
        .unwrap_or_else(|| "/root/.cargo".into())
        .join("bin")
}

fn ensure_bpf_linker() -> Result<()> {
    let bin = cargo_bin_dir().join("bpf-linker");
    if bin.exists() {
        let out = Command::new(&bin).arg("--version").output();
        if let Ok(o) = out {
            let v = String::from_utf8_lossy(&o.stdout);
            if v.contains(BPF_LINKER_VERSION) {
                step(&format!("bpf-linker {BPF_LINKER_VERSION} (LLVM 22): ok"));
                return Ok(());
            }
        }
    }
    step(&format!("building bpf-linker {BPF_LINKER_VERSION} against LLVM 22 (cargo install, about a minute)"));
    let path = format!("/usr/lib/llvm-22/bin:{}", std::env::var("PATH").unwrap_or_default());
    run_quiet(
        Command::new("cargo")
            .args(["install", "bpf-linker", "--version", BPF_LINKER_VERSION])
            .args(["--no-default-features", "--features", "llvm-22", "--locked"])
            .env("LLVM_PREFIX", "/usr/lib/llvm-22")
            .env("PATH", path),
        "cargo install bpf-linker",
    )?;
    step("bpf-linker installed");
    Ok(())
}

const CARGO_FUZZ_VERSION: &str = "0.13.1";

/// cargo-fuzz (libFuzzer) for the parsers' fuzz targets, from crates.io.
fn ensure_cargo_fuzz() -> Result<()> {
    ensure_cargo_tool("cargo-fuzz", CARGO_FUZZ_VERSION, "about a minute")
}

pub fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

/// Run a command, showing its output only if it fails.
fn run_quiet(cmd: &mut Command, what: &str) -> Result<()> {
    let out = cmd.output().with_context(|| format!("start {what}"))?;
    if !out.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&out.stdout));
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        bail!("{what} failed ({})", out.status);
    }
    Ok(())
}
