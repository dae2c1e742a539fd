//! The etcd connection from `[fleet]`: endpoints, deadlines, TLS (a CA, optionally a client
//! certificate). A thin layer over `etcd-client`: no protocol of our own.

use std::time::Duration;

use anyhow::{Context, Result};
use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};

use crate::config::FleetSection;

fn read(path: &std::path::Path, what: &str) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading the etcd {what} {} (fleet)", path.display()))
}

/// The connection options `cfg` asks for. `require_leader`: a request or watch on a member that
/// lost its cluster's quorum fails instead of hanging, which is how a member notices.
pub fn options(cfg: &FleetSection) -> Result<ConnectOptions> {
    let timeout = Duration::from_nanos(cfg.sync.timeout.0);
    let mut o = ConnectOptions::new()
        .with_connect_timeout(timeout)
        .with_timeout(timeout)
        .with_keep_alive(timeout, timeout)
        .with_keep_alive_while_idle(true)
        .with_require_leader(true);
    if cfg.tls() {
        let mut tls = TlsOptions::new();
        if let Some(ca) = &cfg.ca {
            tls = tls.ca_certificate(Certificate::from_pem(read(ca, "CA certificate")?));
        }
        if let (Some(cert), Some(key)) = (&cfg.cert, &cfg.key) {
            tls = tls.identity(Identity::from_pem(read(cert, "client certificate")?, read(key, "client key")?));
        }
        o = o.with_tls(tls);
    }
    Ok(o)
}

/// Connect to the fleet's etcd.
pub async fn connect(cfg: &FleetSection) -> Result<Client> {
    let opts = options(cfg)?;
    let timeout = Duration::from_nanos(cfg.sync.timeout.0);
    tokio::time::timeout(timeout, Client::connect(&cfg.endpoints, Some(opts)))
        .await
        .map_err(|_| anyhow::anyhow!("no answer within {}", cfg.sync.timeout))?
        .with_context(|| format!("connecting to etcd at {}", cfg.endpoints.join(", ")))
}
