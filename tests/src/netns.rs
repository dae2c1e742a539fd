//! RAII network-namespace fixtures: [`Netns`] (deleted on drop, also while unwinding from a
//! panic), [`VethPair`] (a veth between two namespaces, deleted on drop), and helpers to run code
//! or commands inside a namespace.
//!
//! Every namespace this process creates is recorded in a registry so that
//! [`install_sigint_cleanup`] can delete them when the lab binary is interrupted with Ctrl-C
//! (tests rely on `Drop`).

use std::collections::BTreeSet;
use std::ffi::CString;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, Once};
use std::thread;

use anyhow::{bail, Context, Result};

/// Where `ip netns` keeps its bind mounts.
pub const NETNS_RUN_DIR: &str = "/run/netns";
/// Longest interface name Linux accepts (IFNAMSIZ - 1).
pub const IFNAME_MAX: usize = 15;

static COUNTER: AtomicU32 = AtomicU32::new(0);
static LIVE: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

fn base36(mut n: u64, min_width: usize) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    while n > 0 || out.len() < min_width {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    // SAFETY: getrandom writes at most `b.len()` bytes into the buffer we own.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n == 8 {
        u64::from_ne_bytes(b)
    } else {
        // Fall back on the clock; uniqueness still comes from pid + counter.
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
    }
}

/// A name unique to this process and call: `prefix` (at most 4 characters kept) + pid + a
/// per-process counter + a random suffix, all base 36, at most [`IFNAME_MAX`] characters so it is
/// also usable as an interface name. Parallel test processes differ in pid and random suffix;
/// threads of one process differ in the counter.
pub fn unique_name(prefix: &str) -> String {
    let p: String = prefix.chars().filter(|c| c.is_ascii_alphanumeric()).take(4).collect();
    let pid = base36(u64::from(std::process::id()), 1);
    let ctr = base36(u64::from(COUNTER.fetch_add(1, Ordering::Relaxed)) % (36 * 36), 2);
    let room = IFNAME_MAX.saturating_sub(p.len() + pid.len() + ctr.len()).clamp(2, 4);
    let rnd = base36(random_u64() % 36u64.pow(room as u32), room);
    let mut s = format!("{p}{pid}{ctr}{rnd}");
    s.truncate(IFNAME_MAX);
    s
}

/// Run a command, failing with its stderr if it does not exit 0.
pub fn run_cmd(program: &str, args: &[&str]) -> Result<Output> {
    let out = Command::new(program).args(args).output().with_context(|| format!("spawning {program} {args:?}"))?;
    if !out.status.success() {
        bail!("{program} {} failed ({}): {}", args.join(" "), out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(out)
}

/// Names listed by `ip netns list`.
pub fn list_netns() -> Result<Vec<String>> {
    let out = run_cmd("ip", &["netns", "list"])?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect())
}

/// Whether the effective uid is 0.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The first line of a test that needs root (BPF, namespaces, raw sockets, the lab): panics, naming
/// the test, when not root. Such a test is `#[ignore = "needs root: cargo xtask test runs it"]`,
/// so an unprivileged `cargo test` counts it as ignored, never as passed (docs/testing.md); run
/// anyway without root (`--ignored`, `--include-ignored`) it fails, it never returns early as
/// if it had passed.
#[track_caller]
pub fn assert_root(what: &str) {
    assert!(
        is_root(),
        "{what} needs root (BPF, network namespaces, raw sockets): run it as root, e.g. `cargo xtask test` \
         or `cargo test -- --include-ignored` as root"
    );
}

/// Move the calling thread into the named network namespace.
pub fn enter_netns(name: &str) -> Result<()> {
    let path = CString::new(format!("{NETNS_RUN_DIR}/{name}")).context("namespace name contains NUL")?;
    // SAFETY: valid NUL-terminated path; the returned fd is checked and closed below.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error()).with_context(|| format!("opening {NETNS_RUN_DIR}/{name}"));
    }
    // SAFETY: fd is an open namespace file; setns affects only this thread for CLONE_NEWNET.
    let rc = unsafe { libc::setns(fd, libc::CLONE_NEWNET) };
    let err = io::Error::last_os_error();
    // SAFETY: fd was opened above and is not used after this.
    unsafe { libc::close(fd) };
    if rc != 0 {
        return Err(err).with_context(|| format!("setns into {name}"));
    }
    Ok(())
}

/// A named network namespace (`ip netns add`), deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Create a uniquely named namespace (see [`unique_name`]) with `lo` up.
    pub fn new(prefix: &str) -> Result<Netns> {
        let mut last = None;
        for _ in 0..5 {
            let name = unique_name(prefix);
            if std::path::Path::new(NETNS_RUN_DIR).join(&name).exists() {
                continue;
            }
            match run_cmd("ip", &["netns", "add", &name]) {
                Ok(_) => {
                    register(&name);
                    let ns = Netns { name };
                    ns.exec_ok(&["ip", "link", "set", "lo", "up"])?;
                    return Ok(ns);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("no free namespace name for prefix {prefix}")))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Path of the namespace file, for `setns` or aya's netns-aware calls.
    pub fn path(&self) -> String {
        format!("{NETNS_RUN_DIR}/{}", self.name)
    }

    /// Run `f` on a dedicated thread that has entered this namespace; sockets it creates live in
    /// the namespace (and stay there when handed back). A panic in `f` is propagated.
    pub fn run<F, R>(&self, f: F) -> Result<R>
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        let name = self.name.as_str();
        thread::scope(|s| {
            let h = s.spawn(move || -> Result<R> {
                enter_netns(name)?;
                Ok(f())
            });
            match h.join() {
                Ok(r) => r,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }

    /// Spawn a long-lived thread inside this namespace. The thread does not keep the namespace
    /// alive in `ip netns list`, but keep the `Netns` around while it runs.
    pub fn spawn<F, R>(&self, thread_name: &str, f: F) -> Result<thread::JoinHandle<Result<R>>>
    where
        F: FnOnce() -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let name = self.name.clone();
        thread::Builder::new()
            .name(thread_name.to_owned())
            .spawn(move || {
                enter_netns(&name)?;
                f()
            })
            .context("spawning a thread")
    }

    /// `ip netns exec NAME args...`, returning the output whatever the exit status.
    pub fn exec(&self, args: &[&str]) -> Result<Output> {
        let mut full = vec!["netns", "exec", self.name.as_str()];
        full.extend_from_slice(args);
        Command::new("ip").args(&full).output().with_context(|| format!("ip {}", full.join(" ")))
    }

    /// Like [`Netns::exec`] but fails unless the command exits 0; returns stdout.
    pub fn exec_ok(&self, args: &[&str]) -> Result<String> {
        let out = self.exec(args)?;
        if !out.status.success() {
            bail!(
                "in netns {}: {} failed ({}): {}",
                self.name,
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `ip -n NAME args...` (faster than exec for `ip` itself).
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        Ok(String::from_utf8_lossy(&run_cmd("ip", &full)?.stdout).into_owned())
    }

    /// Interface index of `ifname` inside this namespace.
    pub fn ifindex(&self, ifname: &str) -> Result<u32> {
        let c = CString::new(ifname).context("ifname contains NUL")?;
        let idx = self.run(move || {
            // SAFETY: valid NUL-terminated string.
            unsafe { libc::if_nametoindex(c.as_ptr()) }
        })?;
        if idx == 0 {
            bail!("no interface {ifname} in netns {}", self.name);
        }
        Ok(idx)
    }

    /// Kernel counters of `ifname` (from `ip -s -j link`).
    pub fn link_stats(&self, ifname: &str) -> Result<LinkStats> {
        let out = self.ip(&["-s", "-j", "link", "show", "dev", ifname])?;
        let v: serde_json::Value = serde_json::from_str(&out).context("parsing ip -j output")?;
        let s = &v[0]["stats64"];
        let n = |dir: &str, k: &str| s[dir][k].as_u64().unwrap_or(0);
        Ok(LinkStats {
            rx_packets: n("rx", "packets"),
            rx_dropped: n("rx", "dropped"),
            tx_packets: n("tx", "packets"),
            tx_dropped: n("tx", "dropped"),
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = run_cmd("ip", &["netns", "del", &self.name]) {
            eprintln!("labkit: could not delete netns {}: {e:#}", self.name);
        }
        unregister(&self.name);
    }
}

/// Check plain IP reachability without `ping`: a UDP datagram sent from `src` (bound, inside
/// `src_ns`) must arrive at a socket bound to `dst` inside `dst_ns` within two seconds.
pub fn udp_reachable(src_ns: &Netns, src: std::net::IpAddr, dst_ns: &Netns, dst: std::net::IpAddr) -> Result<()> {
    use std::net::{SocketAddr, UdpSocket};
    let rx = dst_ns.run(move || UdpSocket::bind(SocketAddr::new(dst, 0)))?.with_context(|| format!("bind {dst}"))?;
    rx.set_read_timeout(Some(std::time::Duration::from_secs(1)))?;
    let to = rx.local_addr()?;
    let tx = src_ns.run(move || UdpSocket::bind(SocketAddr::new(src, 0)))?.with_context(|| format!("bind {src}"))?;
    let token = unique_name("probe");
    let mut buf = [0u8; 64];
    // Up to 5 probes a second apart: an IPv6 neighbour solicitation sent before the other end
    // was up is retried only after RetransTimer (1 s, RFC 4861 §10), and the first datagram
    // waits for it; a loaded machine takes longer still.
    for _ in 0..5 {
        tx.send_to(token.as_bytes(), to).with_context(|| format!("send {src} -> {to}"))?;
        match rx.recv_from(&mut buf) {
            Ok((n, from)) if &buf[..n] == token.as_bytes() && from.ip() == src => return Ok(()),
            Ok((_, from)) => bail!("unexpected datagram from {from}"),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => continue,
            Err(e) => return Err(e).with_context(|| format!("receiving {src} -> {to}")),
        }
    }
    bail!("no datagram {src} -> {to} in 5 probes a second apart")
}

/// A few interface counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    pub rx_packets: u64,
    pub rx_dropped: u64,
    pub tx_packets: u64,
    pub tx_dropped: u64,
}

/// One end of a veth pair.
#[derive(Clone, Debug)]
pub struct VethEnd<'a> {
    pub ns: &'a Netns,
    pub ifname: String,
    /// Fixed MAC address, or a random one.
    pub mac: Option<[u8; 6]>,
    /// Addresses with prefix length, e.g. "10.200.0.1/24" or "fd00:200::1/64".
    pub addrs: Vec<String>,
}

impl<'a> VethEnd<'a> {
    pub fn new(ns: &'a Netns, ifname: &str) -> Self {
        VethEnd { ns, ifname: ifname.to_owned(), mac: None, addrs: Vec::new() }
    }

    pub fn mac(mut self, mac: [u8; 6]) -> Self {
        self.mac = Some(mac);
        self
    }

    pub fn addr(mut self, cidr: &str) -> Self {
        self.addrs.push(cidr.to_owned());
        self
    }
}

/// Format a MAC address as `aa:bb:cc:dd:ee:ff`.
pub fn mac_string(m: &[u8; 6]) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// A veth pair created directly inside two namespaces (it never exists in the caller's
/// namespace, so fixed names cannot collide between labs), configured and up; deleted on drop.
#[derive(Debug)]
pub struct VethPair {
    a_ns: String,
    a_if: String,
    b_ns: String,
    b_if: String,
}

impl VethPair {
    pub fn new(a: VethEnd<'_>, b: VethEnd<'_>, mtu: u32) -> Result<VethPair> {
        for e in [&a, &b] {
            if e.ifname.is_empty() || e.ifname.len() > IFNAME_MAX {
                bail!("interface name {:?} must be 1..={IFNAME_MAX} characters", e.ifname);
            }
        }
        run_cmd(
            "ip",
            &[
                "link",
                "add",
                &a.ifname,
                "netns",
                a.ns.name(),
                "type",
                "veth",
                "peer",
                "name",
                &b.ifname,
                "netns",
                b.ns.name(),
            ],
        )?;
        let pair = VethPair {
            a_ns: a.ns.name().to_owned(),
            a_if: a.ifname.clone(),
            b_ns: b.ns.name().to_owned(),
            b_if: b.ifname.clone(),
        };
        let mtu = mtu.to_string();
        for e in [&a, &b] {
            if let Some(m) = e.mac {
                e.ns.ip(&["link", "set", "dev", &e.ifname, "address", &mac_string(&m)])?;
            }
            e.ns.ip(&["link", "set", "dev", &e.ifname, "mtu", &mtu])?;
            for addr in &e.addrs {
                let mut args = vec!["addr", "add", addr.as_str(), "dev", e.ifname.as_str()];
                if addr.contains(':') {
                    // No duplicate address detection: the address is usable at once.
                    args.push("nodad");
                }
                e.ns.ip(&args)?;
            }
            e.ns.ip(&["link", "set", "dev", &e.ifname, "up"])?;
        }
        Ok(pair)
    }

    /// (namespace, ifname) of the first end.
    pub fn a(&self) -> (&str, &str) {
        (&self.a_ns, &self.a_if)
    }

    /// (namespace, ifname) of the second end.
    pub fn b(&self) -> (&str, &str) {
        (&self.b_ns, &self.b_if)
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        // Deleting one end deletes both. If the namespace is already gone, so is the pair.
        if std::path::Path::new(NETNS_RUN_DIR).join(&self.a_ns).exists() {
            if let Err(e) = run_cmd("ip", &["-n", &self.a_ns, "link", "del", "dev", &self.a_if]) {
                eprintln!("labkit: could not delete veth {} in {}: {e:#}", self.a_if, self.a_ns);
            }
        }
    }
}

fn register(name: &str) {
    if let Ok(mut live) = LIVE.lock() {
        live.insert(name.to_owned());
    }
}

fn unregister(name: &str) {
    if let Ok(mut live) = LIVE.lock() {
        live.remove(name);
    }
}

/// Namespaces created by this process and not yet dropped.
pub fn live_namespaces() -> Vec<String> {
    LIVE.lock().map(|l| l.iter().cloned().collect()).unwrap_or_default()
}

static SIGINT_ONCE: Once = Once::new();
/// What [`install_sigint_cleanup`]'s watcher runs before it deletes the namespaces.
static INTERRUPT_CLEANUPS: Mutex<Vec<fn()>> = Mutex::new(Vec::new());

/// Have [`install_sigint_cleanup`]'s watcher run `f` on Ctrl-C / SIGTERM before it deletes the
/// namespaces (e.g. stop the guard processes running inside them and remove their pins).
pub fn on_interrupt(f: fn()) {
    if let Ok(mut c) = INTERRUPT_CLEANUPS.lock() {
        c.push(f);
    }
}

/// For the lab binary: on SIGINT (Ctrl-C) or SIGTERM, run the [`on_interrupt`] cleanups, delete
/// every namespace this process created (which removes their veths) and exit with status 130.
/// The signals are taken by signal-hook (its handler only wakes a watcher thread, which does the
/// work outside signal context). Idempotent.
pub fn install_sigint_cleanup() -> Result<()> {
    let mut result = Ok(());
    SIGINT_ONCE.call_once(|| {
        result = (|| -> Result<()> {
            let mut signals = signal_hook::iterator::Signals::new([libc::SIGINT, libc::SIGTERM])
                .context("registering SIGINT and SIGTERM")?;
            thread::Builder::new()
                .name("labkit-sigint".into())
                .spawn(move || {
                    if signals.forever().next().is_some() {
                        let cleanups = INTERRUPT_CLEANUPS.lock().map(|c| c.clone()).unwrap_or_default();
                        for f in cleanups {
                            f();
                        }
                        for name in live_namespaces() {
                            eprintln!("labkit: interrupted, deleting netns {name}");
                            // Own process group: a second Ctrl-C must not kill `ip` half-way.
                            let _ = Command::new("ip").args(["netns", "del", &name]).process_group(0).status();
                        }
                        std::process::exit(130);
                    }
                })
                .context("spawning the SIGINT watcher")?;
            Ok(())
        })();
    });
    result
}

/// Have the kernel send `sig` to the child spawned from `cmd` when the spawning thread exits, so
/// a lab process that dies without running its Drop guards (SIGKILL, a timeout) takes its peers
/// and guards with it. `PR_SET_PDEATHSIG` survives the exec of `ip netns exec` and of the program.
pub fn die_with_parent(cmd: &mut Command, sig: libc::c_int) {
    // SAFETY: prctl(2) is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// A child process killed and reaped on drop, on every way out of its owner (a failing assertion
/// included); the process is `.0`.
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Stop a child: `sig`, then up to `grace` for it to exit, then SIGKILL; always reaped.
pub fn stop_child(child: &mut Child, sig: libc::c_int, grace: std::time::Duration) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as libc::pid_t, sig) };
    let end = std::time::Instant::now() + grace;
    while std::time::Instant::now() < end {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_fit_ifnamsiz_and_differ() {
        let mut seen = BTreeSet::new();
        for p in ["", "ran", "core", "averylongprefix"] {
            for _ in 0..200 {
                let n = unique_name(p);
                assert!(n.len() <= IFNAME_MAX, "{n}");
                assert!(n.chars().all(|c| c.is_ascii_alphanumeric()), "{n}");
                assert!(seen.insert(n.clone()), "duplicate {n}");
            }
        }
    }
}
