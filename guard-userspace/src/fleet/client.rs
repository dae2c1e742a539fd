//! The etcd connection from `[fleet]`: endpoints, deadlines, TLS (a CA, optionally a client
//! certificate). A thin layer over `etcd-client`: no protocol of our own.

use std::time::Duration;

use anyhow::{Context, Result};
use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};

use crate::config::FleetSection;

fn read(path: &std::path::Path, what: &str) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading the etcd {what} {} (fleet)", path.display()))
}

/// HTTP/2 keep-alive pings at most this often. etcd answers a client that pings more often than
/// its `--grpc-keepalive-min-time` (default 5 s) with GOAWAY "too many pings" and closes the
/// connection, every watch on it included (seen in the fleet lab: a watch broken every 4 s with a
/// 1 s interval). A lost etcd is noticed by the lease keep-alive's deadline anyway.
pub const HTTP2_PING_EVERY: Duration = Duration::from_secs(10);

/// The connection options `cfg` asks for. `require_leader`: a request or watch on a member that
/// lost its cluster's quorum fails instead of hanging, which is how a member notices.
pub fn options(cfg: &FleetSection) -> Result<ConnectOptions> {
    let timeout = Duration::from_nanos(cfg.sync.timeout.0);
    let mut o = ConnectOptions::new()
        .with_connect_timeout(timeout)
        .with_timeout(timeout)
        .with_keep_alive(HTTP2_PING_EVERY, timeout)
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

/// Connect to the fleet's etcd: one endpoint at a time, the first that answers with a leader.
///
/// Not one channel balanced over every endpoint: such a channel sends a request to a dead
/// member and fails it ("connection refused") while the others are up (seen in the fleet lab
/// with one of three members killed), so `guard fleet pin` failed and a member lost its session.
/// Each attempt starts at another endpoint (`start`), so members spread over the cluster and a
/// reconnection after a lost member moves on to the next one.
pub async fn connect_from(cfg: &FleetSection, start: usize) -> Result<Client> {
    let opts = options(cfg)?;
    let timeout = Duration::from_nanos(cfg.sync.timeout.0);
    let n = cfg.endpoints.len();
    let mut errors = Vec::new();
    for i in 0..n {
        let ep = &cfg.endpoints[(start + i) % n];
        let attempt = async {
            let mut c = Client::connect([ep], Some(opts.clone())).await?;
            // A member cut off from its quorum answers `status` but has no leader: a linearizable
            // read fails on it (require_leader), so the next endpoint is tried.
            c.get("/overload-guard/", Some(etcd_client::GetOptions::new().with_count_only())).await?;
            Ok::<Client, etcd_client::Error>(c)
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(Ok(c)) => return Ok(c),
            Ok(Err(e)) => errors.push(format!("{ep}: {e}")),
            Err(_) => errors.push(format!("{ep}: no answer within {}", cfg.sync.timeout)),
        }
    }
    anyhow::bail!("no etcd endpoint answered with a leader ({})", errors.join("; "))
}

/// Connect to the fleet's etcd (the CLI), starting at an endpoint picked by this process (see
/// [`connect_from`]). Two rounds over the endpoints, a `retry` apart: a member just lost may
/// have been the leader, and the others answer without one until they have elected another
/// (an election timeout, 1 s by default; seen in the fleet lab).
pub async fn connect(cfg: &FleetSection) -> Result<Client> {
    let start = std::process::id() as usize;
    match connect_from(cfg, start).await {
        Ok(c) => Ok(c),
        Err(first) => {
            tokio::time::sleep(Duration::from_nanos(cfg.sync.retry.0)).await;
            connect_from(cfg, start + 1).await.with_context(|| format!("{first:#}; and again"))
        }
    }
}
