//! `cargo xtask package [--check]`: the Debian package `overload-guard` (issue 20, item 1).
//!
//! Build: the release binary; its man pages and completions (`guard generate`, from the clap
//! definitions); the shadow-mode default configuration (`guard config default --profile
//! shadow`) as the conffile; then cargo-deb with `[package.metadata.deb]` of guard-userspace.
//!
//! `--check` then proves the package on this machine: lintian reports no error; `dpkg -i`
//! installs it; the installed `guard` validates the installed conffile; `systemd-analyze verify`
//! accepts the installed unit and `systemd-analyze security` scores it; the installed alert rules
//! pass their unit tests (`promtool test rules`); `dpkg --purge` removes
//! it, and nothing is left under /etc/overload-guard, /var/log/overload-guard or bpffs. It
//! refuses to touch a machine where overload-guard is already installed, and purges what it
//! installed also when a step fails.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context, Result};

use crate::run::root;

const PKG: &str = "overload-guard";

fn say(msg: &str) {
    eprintln!("[package] {msg}");
}

fn output(cmd: &mut Command, what: &str) -> Result<String> {
    let out = cmd.output().with_context(|| format!("start: {what}"))?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        bail!("{what} failed ({}):\n{text}", out.status);
    }
    Ok(text)
}

/// Build the package; returns the path of the .deb.
pub fn build() -> Result<PathBuf> {
    let root = root();
    let stage = root.join("target/package");
    let _ = std::fs::remove_dir_all(&stage);
    std::fs::create_dir_all(&stage).with_context(|| format!("creating {}", stage.display()))?;
    say("building the release binary (XDP objects included)");
    output(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())).current_dir(&root).args([
            "build",
            "--release",
            "-p",
            "guard-userspace",
        ]),
        "cargo build --release -p guard-userspace",
    )?;
    let guard = root.join("target/release/guard");
    // Debian policy §10.1: binaries are shipped stripped (the release profile keeps symbols).
    let shipped = stage.join("guard");
    std::fs::copy(&guard, &shipped).context("copying the release binary")?;
    output(Command::new("strip").args(["--strip-unneeded"]).arg(&shipped), "strip the guard binary")?;
    say("generating man pages and shell completions from the clap definitions");
    output(Command::new(&guard).arg("generate").arg(&stage), "guard generate")?;
    for e in std::fs::read_dir(stage.join("man")).context("target/package/man")? {
        let p = e?.path();
        // Debian policy §12.1: man pages compressed with gzip -9n (no name, no timestamp).
        output(Command::new("gzip").args(["-9nf"]).arg(&p), "gzip -9n a man page")?;
    }
    // Debian policy §12.7: a changelog, compressed like the man pages.
    let changelog = stage.join("changelog.Debian");
    std::fs::copy(root.join("packaging/changelog"), &changelog).context("packaging/changelog")?;
    output(Command::new("gzip").args(["-9nf"]).arg(&changelog), "gzip -9n the changelog")?;
    say("writing the shadow-mode default configurations (guard.toml, n2.toml) as the conffiles");
    let cfg = output(Command::new(&guard).args(["config", "default", "--profile", "shadow"]), "guard config default")?;
    std::fs::write(stage.join("guard.toml"), cfg).context("target/package/guard.toml")?;
    let n2 = output(
        Command::new(&guard).args(["config", "default", "--n2", "--profile", "shadow"]),
        "guard config default --n2",
    )?;
    std::fs::write(stage.join("n2.toml"), n2).context("target/package/n2.toml")?;
    say("cargo deb");
    output(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(&root)
            .args(["deb", "-p", "guard-userspace", "--no-build", "--no-strip", "--output"])
            .arg(&stage),
        "cargo deb",
    )?;
    let deb = std::fs::read_dir(&stage)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .context("cargo deb wrote no .deb")?;
    say(&format!("built {}", deb.display()));
    Ok(deb)
}

fn installed() -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", PKG])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

/// Purges the package on drop (also when a check step failed).
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["--purge", PKG]).output();
    }
}

const LEFTOVERS: &[&str] = &[
    "/etc/overload-guard",
    "/etc/logrotate.d/overload-guard",
    "/var/log/overload-guard",
    "/sys/fs/bpf/overload-guard",
];

/// Install, exercise, purge (see the module comment).
pub fn check(deb: &Path) -> Result<()> {
    say("lintian");
    let lint = Command::new("lintian").args(["--no-tag-display-limit"]).arg(deb).output().context("start lintian")?;
    let text = String::from_utf8_lossy(&lint.stdout).into_owned();
    let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("E:")).collect();
    for l in text.lines() {
        say(&format!("lintian: {l}"));
    }
    if !errors.is_empty() {
        bail!("lintian reports {} error(s):\n{}", errors.len(), errors.join("\n"));
    }
    // Exit 1 is its errors (above); anything else but 0 is lintian failing to check the package
    // (exit 2), which must not pass for a clean package.
    if !lint.status.success() {
        bail!("lintian failed ({}): {}", lint.status, String::from_utf8_lossy(&lint.stderr).trim());
    }
    if installed() {
        bail!("{PKG} is already installed here: the check installs and purges it, so it will not touch this machine");
    }
    for p in LEFTOVERS {
        if Path::new(p).exists() {
            bail!("{p} exists before the install: the check would remove it on purge; refusing");
        }
    }
    say("dpkg -i");
    let guard = Installed;
    output(Command::new("dpkg").arg("-i").arg(deb), "dpkg -i")?;
    let out = output(
        Command::new("/usr/bin/guard").args(["config", "check", "/etc/overload-guard/guard.toml"]),
        "guard config check /etc/overload-guard/guard.toml",
    )?;
    say(&format!("installed conffile: {}", out.lines().next().unwrap_or_default()));
    if !out.contains("shadow") {
        bail!("the installed configuration is not the shadow profile:\n{out}");
    }
    let out = output(
        Command::new("/usr/bin/guard").args(["config", "check", "/etc/overload-guard/n2.toml"]),
        "guard config check /etc/overload-guard/n2.toml",
    )?;
    if !out.contains("enforced (may drop): none") {
        bail!("the installed N2 settings are not the shadow profile:\n{out}");
    }
    say("installed N2 conffile: valid N2 settings, nothing enforced (shadow)");
    let unit = "/lib/systemd/system/overload-guard.service";
    let v = Command::new("systemd-analyze").args(["verify", unit]).output().context("systemd-analyze verify")?;
    let vtext = format!("{}{}", String::from_utf8_lossy(&v.stdout), String::from_utf8_lossy(&v.stderr));
    if !v.status.success() || !vtext.trim().is_empty() {
        bail!("systemd-analyze verify {unit}:\n{vtext}");
    }
    say("systemd-analyze verify: clean");
    let sec = output(
        Command::new("systemd-analyze").args(["security", "--offline=true", "--no-pager", unit]),
        "systemd-analyze security",
    )?;
    if let Some(l) = sec.lines().find(|l| l.contains("Overall exposure level")) {
        say(&format!("systemd-analyze security: {}", l.trim_start_matches(['→', ' '])));
    }
    // The rotation file parses and names the audit log (`--debug` reads, rotates nothing).
    let lr = output(
        Command::new("logrotate").args(["--debug", "/etc/logrotate.d/overload-guard"]),
        "logrotate --debug /etc/logrotate.d/overload-guard",
    )?;
    if !lr.contains("/var/log/overload-guard/*.jsonl") {
        bail!("logrotate does not read the audit log's rule:\n{lr}");
    }
    say("logrotate --debug: parses, rotates /var/log/overload-guard/*.jsonl");
    // The installed alert rules load, and pass their unit tests (one firing and one quiet case
    // per alert), as an operator would run them (docs/operations.md).
    let rules = output(
        Command::new("promtool")
            .args(["test", "rules", "prometheus-rules.test.yml"])
            .current_dir("/usr/share/overload-guard"),
        "promtool test rules /usr/share/overload-guard/prometheus-rules.test.yml",
    )?;
    if !rules.contains("SUCCESS") {
        bail!("promtool test rules did not report success:\n{rules}");
    }
    say("promtool test rules: the installed alert rules pass their unit tests");
    for p in ["/usr/share/man/man1/guard-run.1.gz", "/usr/share/bash-completion/completions/guard"] {
        if !Path::new(p).exists() {
            bail!("the package did not install {p}");
        }
    }
    say("dpkg --purge");
    drop(guard);
    if installed() {
        bail!("{PKG} is still installed after dpkg --purge");
    }
    let left: Vec<&&str> = LEFTOVERS.iter().filter(|p| Path::new(p).exists()).collect();
    if !left.is_empty() {
        bail!("left behind after purge: {left:?}");
    }
    say("installed, checked and purged cleanly");
    Ok(())
}
