//! The controller's CPU over whole walks of the device map, and with sessions ending and
//! starting as on a live core (the controller run's steady-state and churn phases).

use super::guard_child::scrape;
use super::*;

/// Whole walks a CPU window spans.
pub(super) const WINDOW_WALKS: u32 = 2;

/// The controller's share of one core over whole walks, and the window's length.
pub(super) struct Window {
    pub cpu: f64,
    pub secs: f64,
    /// The controller's metrics as scraped when the window closed.
    pub end: StdHashMap<String, f64>,
}

/// Wait for the controller's walk of the device map to end (its last walk's wall time, a metric,
/// takes a new value), then measure its CPU until `WINDOW_WALKS` more have ended, calling
/// `every_100ms` meanwhile. Bounded: 300 s.
pub(super) fn cpu_over_walks(
    lab: &Lab,
    port: u16,
    pid: u32,
    mut every_100ms: impl FnMut() -> Result<()>,
) -> Result<Window> {
    let mut w = cpu_over_walk_windows(lab, port, pid, 1, |_| every_100ms())?;
    w.pop().context("one window measured")
}

/// As [`cpu_over_walks`], `windows` windows of `WINDOW_WALKS` walks each, one after the other
/// (each begins where the one before ended); `every_100ms` is told how many have closed.
/// Bounded: 300 s a window.
pub(super) fn cpu_over_walk_windows(
    lab: &Lab,
    port: u16,
    pid: u32,
    windows: u32,
    mut every_100ms: impl FnMut(usize) -> Result<()>,
) -> Result<Vec<Window>> {
    const SCAN: &str = "overload_guard_device_scan_seconds";
    // Scraped once a second: the metrics endpoint's own work is in the process's CPU.
    let step = Duration::from_millis(100);
    let mut last = scrape(lab, port)?.get(SCAN).copied().unwrap_or(0.0);
    let mut ended = 0u32;
    let (mut c0, mut t0) = (0u64, Instant::now());
    let start = Instant::now();
    let mut steps = 0u64;
    let mut out = Vec::new();
    // Walk 1 was under way when this began; walks 2 and later are measured whole.
    while ended < windows * WINDOW_WALKS + 1 {
        if start.elapsed() > Duration::from_secs(300 * u64::from(windows)) {
            bail!("the controller completed {ended} walks in {} s", 300 * windows);
        }
        let s0 = Instant::now();
        every_100ms(out.len())?;
        steps += 1;
        if steps % 10 == 0 {
            let metrics = scrape(lab, port)?;
            let now = metrics.get(SCAN).copied().unwrap_or(0.0);
            // A walk exactly as long as the last one (to the gauge's precision) hides its end,
            // which only lengthens the window by a walk.
            if now != last {
                last = now;
                ended += 1;
                if ended > 1 && (ended - 1) % WINDOW_WALKS == 0 {
                    let c = sys::proc_cpu_ns(pid)?;
                    let secs = t0.elapsed().as_secs_f64();
                    out.push(Window { cpu: ratio((c - c0) as f64 / 1e9, secs), secs, end: metrics });
                }
                if (ended - 1) % WINDOW_WALKS == 0 {
                    (c0, t0) = (sys::proc_cpu_ns(pid)?, Instant::now());
                }
            }
        }
        if let Some(rest) = step.checked_sub(s0.elapsed()) {
            std::thread::sleep(rest);
        }
    }
    Ok(out)
}

/// Sessions replaced a second in the churn phase: 1M sessions living 8 minutes on average.
pub(super) const CHURN_PER_S: u32 = 2000;

/// What the churn phase measured: the catch-up after `aged` sessions were replaced at once, then
/// the steady churn of `CHURN_PER_S` a second.
pub(super) struct Churned {
    /// Sessions replaced at once before the catch-up: the history of a controller that has run
    /// for a while (at `CHURN_PER_S`, `aged / CHURN_PER_S` seconds of it).
    pub aged: u32,
    /// The walks that absorb them (the new sessions tracked, the ended ones evicted), with
    /// `CHURN_PER_S` going on.
    pub catch_up: Phase,
    /// The walks after, with `CHURN_PER_S` only: the row's churn figure.
    pub steady: Phase,
}

/// One window of the churn phase.
pub(super) struct Phase {
    pub window: Window,
    /// Sessions replaced during the window (the catch-up's: and during the walk before it).
    pub replaced: u32,
    /// Tracks the engine evicted meanwhile (`overload_guard_evicted_devices_total`): about
    /// the sessions ended when only ended sessions make room, more when live ones are evicted
    /// and tracked again.
    pub evicted: f64,
    /// Readings of new devices the engine left untracked meanwhile
    /// (`overload_guard_untracked_readings_total`: no track known gone to replace, tracked at a
    /// later walk).
    pub untracked: f64,
}

/// The steady state as a controller that has run for a while meets it: sessions end and start
/// (removed from `N3_DEVICES`, as an idle session's end or the LRU would; new TEIDs inserted at
/// rest, as their first packets would). First `n / 2` sessions are replaced at once and the
/// controller's CPU is measured over the whole walks that absorb them; then over as many more
/// walks, with only the `CHURN_PER_S` a second that went on all along. Measured in one window,
/// as before, the catch-up counted ~260 s of churn in ~70 s, five times the stated rate.
pub(super) fn churn(
    lab: &Lab,
    port: u16,
    pins: &PinDir,
    n: u32,
    offenders: &std::collections::HashSet<u32>,
    pid: u32,
) -> Result<Churned> {
    let mut m = N3Maps::open_pinned(pins)?;
    // Gone: the oldest benign TEIDs, in order; new: TEIDs above the filled range.
    let mut gone = (0..n).map(|i| FILL_BASE + i).filter(|t| !offenders.contains(t));
    let mut next_new = FILL_BASE + n;
    let mut replace = |m: &mut N3Maps, k: u32| -> Result<()> {
        for _ in 0..k {
            if let Some(t) = gone.next() {
                let _ = m.devices.remove(&device_id::fteid(0, t));
            }
            m.devices
                .insert(device_id::fteid(0, next_new), device(next_new, 1), 0)
                .context("inserting a new session")?;
            next_new += 1;
        }
        Ok(())
    };
    let counts = |m: &StdHashMap<String, f64>| {
        let get = |k: &str| m.get(k).copied().unwrap_or(0.0);
        (get("overload_guard_evicted_devices_total"), get("overload_guard_untracked_readings_total"))
    };
    let c0 = counts(&scrape(lab, port)?);
    let aged = n / 2;
    println!("bench: churn: {aged} sessions replaced at once, then {CHURN_PER_S} a second (guard pid {pid})");
    replace(&mut m, aged)?;
    // Sessions replaced during each window (and the walk before the first).
    let mut replaced = [0u32; 2];
    let mut w = cpu_over_walk_windows(lab, port, pid, 2, |closed| {
        replaced[closed.min(1)] += CHURN_PER_S / 10;
        replace(&mut m, CHURN_PER_S / 10)
    })?
    .into_iter();
    let (Some(catch_up), Some(window)) = (w.next(), w.next()) else {
        bail!("the churn phase measured fewer than two windows");
    };
    let (c1, c2) = (counts(&catch_up.end), counts(&window.end));
    Ok(Churned {
        aged,
        catch_up: Phase { window: catch_up, replaced: replaced[0], evicted: c1.0 - c0.0, untracked: c1.1 - c0.1 },
        steady: Phase { window, replaced: replaced[1], evicted: c2.0 - c1.0, untracked: c2.1 - c1.1 },
    })
}
