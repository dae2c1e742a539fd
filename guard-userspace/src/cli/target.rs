//! Where a sub-command finds an interface's pinned state: `--iface`, `--config`, `--pin-base`
//! ([`Target`]), and what an interface name may be ([`ifname`]).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use crate::{bpf::pins::PinDir, config::Config};

/// `--iface` and `--n2-iface`: a name the kernel could give an interface
/// ([`crate::config::valid_ifname`]), never a path: the pin directory is named after it.
pub(crate) fn ifname(s: &str) -> Result<String, String> {
    if crate::config::valid_ifname(s) {
        Ok(s.to_owned())
    } else {
        Err(format!("`{s}` is not a network interface name (1 to 15 characters, no '/', ':' or whitespace)"))
    }
}

/// The package's configuration (its conffile), which the service runs with.
pub const INSTALLED_CONFIG: &str = "/etc/overload-guard/guard.toml";

/// Where to find an interface's pinned state. Shared by all sub-commands.
#[derive(Args, Debug, Clone)]
pub struct Target {
    /// The N3 interface. Default: the one interface `[guard] interfaces` of the config names
    /// (one guard process per interface: with several listed, name one here).
    #[arg(long, short = 'i', value_parser = ifname)]
    pub iface: Option<String>,
    /// The configuration file. `guard run` takes everything from it (interfaces, modes, ladder,
    /// metrics listener, pin directory, audit log); other commands read the pin directory, the
    /// audit log and the interface from it. Without it, the package's
    /// /etc/overload-guard/guard.toml when that exists (so a pin on a packaged host is audited
    /// where the service's decisions are), else the built-in defaults.
    #[arg(long, short = 'c', env = "GUARD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Override the bpffs base directory of pins (default from the config, else
    /// /sys/fs/bpf/overload-guard).
    #[arg(long)]
    pub pin_base: Option<PathBuf>,
}

impl Target {
    pub fn load_config(&self) -> Result<Config> {
        let installed = std::path::Path::new(INSTALLED_CONFIG);
        match &self.config {
            Some(p) => Config::load(p).with_context(|| format!("configuration {}", p.display())),
            None if installed.exists() => Config::load(installed)
                .with_context(|| format!("configuration {INSTALLED_CONFIG} (the package's; --config names another)")),
            None => Ok(Config::default()),
        }
    }

    /// The interface: `--iface`, else the config's only `[guard] interfaces` entry.
    pub fn iface(&self, cfg: &Config) -> Result<String> {
        if let Some(i) = &self.iface {
            return Ok(i.clone());
        }
        match cfg.guard.interfaces.as_slice() {
            [one] => Ok(one.clone()),
            [] => anyhow::bail!(
                "no interface: give --iface, or list it in the config's [guard] interfaces (= [\"ens1f0\"])"
            ),
            many => anyhow::bail!(
                "the config lists {} interfaces ({}); one guard runs per interface: name it with --iface",
                many.len(),
                many.join(", ")
            ),
        }
    }

    /// The N2 interface: `--iface`, else the config's `[guard] n2_interface`.
    pub fn n2_iface(&self, cfg: &Config) -> Result<String> {
        match (&self.iface, &cfg.guard.n2_interface) {
            (Some(i), _) | (None, Some(i)) => Ok(i.clone()),
            (None, None) => {
                anyhow::bail!("no N2 interface: give --iface, or set the config's [guard] n2_interface (= \"ens2f0\")")
            }
        }
    }

    pub fn pins(&self, cfg: &Config) -> Result<PinDir> {
        let base = self.pin_base.clone().unwrap_or_else(|| cfg.guard.pin_dir.clone());
        Ok(PinDir::new(&base, &self.iface(cfg)?))
    }
}
