//! A three-member etcd cluster (Debian's etcd-server) for the fleet lab, in a namespace of its
//! own (the *hub*), on addresses of that namespace only, with its data in a temporary directory.
//!
//! ```text
//!   hub netns: lo 10.201.0.11, .12, .13 (etcd members e0, e1, e2: client :2379, peer :2380)
//!     fl1h 10.201.1.1/24 ==== fl1 10.201.1.2/24   guard host 1's CORE netns (route 10.201.0.0/24)
//!     fl2h 10.201.2.1/24 ==== fl2 10.201.2.2/24   guard host 2's CORE netns
//! ```
//!
//! The members are killed (SIGKILL) and their data removed on drop, also while unwinding from a
//! panic, and get SIGKILL if the lab process dies (`PR_SET_PDEATHSIG`). Traffic stays inside the
//! namespaces this lab created.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::netns::{unique_name, Netns, VethEnd, VethPair};

/// Members in the cluster.
pub const MEMBERS: usize = 3;
const CLIENT_PORT: u16 = 2379;
const PEER_PORT: u16 = 2380;

/// Member `k`'s address in the hub.
pub fn member_addr(k: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 201, 0, 11 + k as u8)
}

/// Member `k`'s client URL.
pub fn client_url(k: usize) -> String {
    format!("http://{}:{CLIENT_PORT}", member_addr(k))
}

/// The cluster.
pub struct EtcdCluster {
    members: Vec<Option<Child>>,
    dir: PathBuf,
    token: String,
    pub hub: Netns,
}

impl EtcdCluster {
    /// The hub namespace and three members, healthy.
    pub fn new(dir: &Path) -> Result<EtcdCluster> {
        let hub = Netns::new("oghub")?;
        for k in 0..MEMBERS {
            hub.ip(&["addr", "add", &format!("{}/32", member_addr(k)), "dev", "lo"])?;
        }
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut c = EtcdCluster {
            members: (0..MEMBERS).map(|_| None).collect(),
            dir: dir.to_owned(),
            token: unique_name("ogetcd"),
            hub,
        };
        for k in 0..MEMBERS {
            c.start(k)?;
        }
        c.wait_healthy(Duration::from_secs(30))?;
        Ok(c)
    }

    /// Every client URL, as a guard's `[fleet] endpoints`.
    pub fn endpoints() -> Vec<String> {
        (0..MEMBERS).map(client_url).collect()
    }

    /// Start member `k` (its data directory is kept: a restarted member rejoins with its log).
    pub fn start(&mut self, k: usize) -> Result<()> {
        let peers: Vec<String> = (0..MEMBERS).map(|i| format!("e{i}=http://{}:{PEER_PORT}", member_addr(i))).collect();
        let me = member_addr(k);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("etcd-{k}.log")))
            .context("etcd log")?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", self.hub.name(), "etcd", "--name", &format!("e{k}")])
            .arg("--data-dir")
            .arg(self.dir.join(format!("e{k}.etcd")))
            .args(["--listen-client-urls", &client_url(k), "--advertise-client-urls", &client_url(k)])
            .args(["--listen-peer-urls", &format!("http://{me}:{PEER_PORT}")])
            .args(["--initial-advertise-peer-urls", &format!("http://{me}:{PEER_PORT}")])
            .args(["--initial-cluster", &peers.join(","), "--initial-cluster-token", &self.token])
            .args(["--initial-cluster-state", "new"])
            // Quick elections on one machine (defaults 100 ms / 1 s).
            .args(["--heartbeat-interval", "100", "--election-timeout", "1000"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        crate::netns::die_with_parent(&mut cmd, libc::SIGKILL);
        let child = cmd.spawn().context("starting etcd (Debian etcd-server; `cargo xtask setup` installs it)")?;
        self.members[k] = Some(child);
        Ok(())
    }

    /// SIGKILL member `k`.
    pub fn kill(&mut self, k: usize) {
        if let Some(mut c) = self.members[k].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `etcdctl` against the members that run, from the hub.
    pub fn etcdctl(&self, args: &[&str]) -> Result<Output> {
        let eps: Vec<String> = (0..MEMBERS).filter(|k| self.members[*k].is_some()).map(client_url).collect();
        Command::new("ip")
            .args(["netns", "exec", self.hub.name(), "etcdctl", "--dial-timeout", "1s", "--command-timeout", "2s"])
            .arg(format!("--endpoints={}", eps.join(",")))
            .args(args)
            .output()
            .context("etcdctl (Debian etcd-client)")
    }

    /// Wait until every running member says it is healthy (a quorum with a leader).
    pub fn wait_healthy(&self, limit: Duration) -> Result<()> {
        let t0 = Instant::now();
        while t0.elapsed() < limit {
            if self.etcdctl(&["endpoint", "health"]).is_ok_and(|o| o.status.success()) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let logs: String = (0..MEMBERS)
            .map(|k| std::fs::read_to_string(self.dir.join(format!("etcd-{k}.log"))).unwrap_or_default())
            .map(|l| l.lines().rev().take(5).collect::<Vec<_>>().join("\n"))
            .collect::<Vec<_>>()
            .join("\n---\n");
        bail!("etcd did not become healthy in {limit:?}: {logs}")
    }

    /// The value of `key`, if any (a failed read is `Err`).
    pub fn get(&self, key: &str) -> Result<Option<String>> {
        let o = self.etcdctl(&["get", key, "--print-value-only"])?;
        if !o.status.success() {
            bail!("etcdctl get {key}: {}", String::from_utf8_lossy(&o.stderr));
        }
        let v = String::from_utf8_lossy(&o.stdout).trim().to_owned();
        Ok((!v.is_empty()).then_some(v))
    }

    /// GET /metrics of member `k` (etcd serves it on its client URL).
    pub fn metrics(&self, k: usize) -> Option<String> {
        use std::io::{Read as _, Write as _};
        let addr = member_addr(k);
        self.hub
            .run(move || {
                let mut s = std::net::TcpStream::connect((addr, CLIENT_PORT)).ok()?;
                s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
                s.write_all(b"GET /metrics HTTP/1.0\r\nHost: etcd\r\n\r\n").ok()?;
                let mut body = String::new();
                s.read_to_string(&mut body).ok()?;
                body.contains("200 OK").then_some(body)
            })
            .ok()
            .flatten()
    }

    /// A link from a guard host's namespace to the hub: `fl<i>` 10.201.<i>.2/24 there,
    /// `fl<i>h` 10.201.<i>.1/24 here, and a route to the members' addresses through it.
    pub fn connect(&self, host: &Netns, i: u8) -> Result<VethPair> {
        let pair = VethPair::new(
            VethEnd::new(host, &format!("fl{i}")).addr(&format!("10.201.{i}.2/24")),
            VethEnd::new(&self.hub, &format!("fl{i}h")).addr(&format!("10.201.{i}.1/24")),
            1500,
        )
        .context("the fleet link")?;
        host.ip(&["route", "add", "10.201.0.0/24", "via", &format!("10.201.{i}.1")])?;
        Ok(pair)
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for k in 0..MEMBERS {
            self.kill(k);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Sum of every sample of the series `name` (all label sets) in a Prometheus text body.
pub fn metric_sum(body: &str, name: &str) -> f64 {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.strip_prefix(name).is_some_and(|r| r.starts_with('{') || r.starts_with(' ')))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
