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
    // Scraped once a second: the metrics endpoint's own work is in the process's CPU.
    let scan =
        || -> Result<f64> { Ok(scrape(lab, port)?.get("overload_guard_device_scan_seconds").copied().unwrap_or(0.0)) };
    let step = Duration::from_millis(100);
    let mut last = scan()?;
    let mut ended = 0u32;
    let (mut c0, mut t0) = (0u64, Instant::now());
    let start = Instant::now();
    let mut steps = 0u64;
    // Walk 1 was under way when this began; walks 2 and later are measured whole.
    while ended < WINDOW_WALKS + 1 {
        if start.elapsed() > Duration::from_secs(300) {
            bail!("the controller completed {ended} walks in 300 s");
        }
        let s0 = Instant::now();
        every_100ms()?;
        steps += 1;
        if steps % 10 == 0 {
            let now = scan()?;
            // A walk exactly as long as the last one (to the gauge's precision) hides its end,
            // which only lengthens the window by a walk.
            if now != last {
                last = now;
                ended += 1;
                if ended == 1 {
                    (c0, t0) = (sys::proc_cpu_ns(pid)?, Instant::now());
                }
            }
        }
        if let Some(rest) = step.checked_sub(s0.elapsed()) {
            std::thread::sleep(rest);
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    Ok(Window { cpu: ratio((sys::proc_cpu_ns(pid)? - c0) as f64 / 1e9, secs), secs })
}

/// Sessions replaced a second in the churn phase: 1M sessions living 8 minutes on average.
pub(super) const CHURN_PER_S: u32 = 2000;

/// What the churn phase measured.
pub(super) struct Churned {
    /// Sessions replaced at once before the window: the history of a controller that has run
    /// for a while (at `CHURN_PER_S`, `aged / CHURN_PER_S` seconds of it).
    pub aged: u32,
    pub window: Window,
    /// Sessions replaced during the window and the walk before it.
    pub replaced: u32,
    /// Tracks the engine evicted from the aging to the window's end
    /// (`overload_guard_evicted_devices_total`): about `aged + replaced` when only ended
    /// sessions make room, more when live ones are evicted and tracked again.
    pub evicted: f64,
    /// Readings of new devices the engine left untracked meanwhile
    /// (`overload_guard_untracked_readings_total`: no track known gone to replace, tracked at a
    /// later walk).
    pub untracked: f64,
}

/// The steady state as a controller that has run for a while meets it: sessions end and start
/// (removed from `N3_DEVICES`, as an idle session's end or the LRU would; new TEIDs inserted at
/// rest, as their first packets would). First `n / 2` sessions are replaced at once, then
/// `CHURN_PER_S` a second go on while the controller's CPU is measured over whole walks.
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
    let counts = || -> Result<(f64, f64)> {
        let m = scrape(lab, port)?;
        let get = |k: &str| m.get(k).copied().unwrap_or(0.0);
        Ok((get("overload_guard_evicted_devices_total"), get("overload_guard_untracked_readings_total")))
    };
    let (evicted0, untracked0) = counts()?;
    let aged = n / 2;
    println!("bench: churn: {aged} sessions replaced at once, then {CHURN_PER_S} a second (guard pid {pid})");
    replace(&mut m, aged)?;
    let mut replaced = 0u32;
    let window = cpu_over_walks(lab, port, pid, || {
        replaced += CHURN_PER_S / 10;
        replace(&mut m, CHURN_PER_S / 10)
    })?;
    let (evicted, untracked) = counts()?;
    Ok(Churned { aged, window, replaced, evicted: evicted - evicted0, untracked: untracked - untracked0 })
}
