//! A minimal simulated data plane for the engine's tests: per-device token buckets for the
//! observe limit (the `over_limit` evidence) and for the device's stage (the drops, by packets
//! and, when the stage has a byte rate, by bytes), driven only by the engine's own decisions, so
//! escalation is exercised against real consequences. Every packet of device `i` carries
//! `size[i]` T-PDU octets (100 unless a test changes it).

use std::collections::HashMap;

use guard_common::abi::{ByteLimit, CellKey, DeviceKey, L3Addr, Limit, STAGE_FLAG_EXEMPT, STAGE_QUARANTINE};

use super::{CurrentStage, Decision, DeviceSample, Engine, Pass};
use crate::config::Config;

/// splitmix64: deterministic, dependency-free randomness for synthetic series.
pub(super) struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// `mean` with ±`jitter` relative uniform noise, rounded to whole packets.
    pub fn noisy(&mut self, mean: f64, jitter: f64) -> u64 {
        (mean * self.range(1.0 - jitter, 1.0 + jitter)).round().max(0.0) as u64
    }
}

#[derive(Debug, Clone)]
pub(super) struct Dev {
    pub key: DeviceKey,
    pub cell: CellKey,
    pub teid: u32,
    pub ue: L3Addr,
    pub dst: L3Addr,
    packets: u64,
    bytes: u64,
    over: u64,
    dropped: u64,
    obs_tokens: f64,
    stage_tokens: f64,
    /// Octets of credit of the stage's byte rate.
    byte_tokens: f64,
    /// T-PDU octets passed (what left the data plane).
    pub passed_bytes: u64,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Entry {
    pub stage: u32,
    pub flags: u32,
    pub limit: Limit,
    pub bytes: ByteLimit,
    pub expires_ns: u64,
    pub manual: bool,
}

pub(super) struct Sim {
    pub engine: Engine,
    pub cfg: Config,
    pub devs: Vec<Dev>,
    /// T-PDU octets per packet of each device.
    pub size: Vec<u64>,
    pub entries: HashMap<DeviceKey, Entry>,
    pub now: u64,
    pub tick_ns: u64,
    /// Every decision with the time it was taken.
    pub log: Vec<(u64, Decision)>,
    /// Engine-held entries that would have expired before the next tick (must stay 0).
    pub lapses: u64,
    /// Decisions that touched a manual pin (must stay empty).
    pub manual_violations: Vec<String>,
    /// Sample only devices that sent packets this window (like a controller reading a kernel LRU
    /// map in which idle devices have aged out).
    pub sample_active_only: bool,
    /// 0: every tick is a full pass. n: a full pass every n-th tick, [`Pass::Changed`] between
    /// (as the controller does while its walk of a large map is spread over ticks).
    pub full_pass_every: u32,
    /// 0: every device is read every tick. n: device `i` is read on the ticks `t` with
    /// `(t + i) % n == 0` (a walk spread over n ticks).
    pub read_slices: u32,
    ticks: u32,
}

impl Dev {
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

/// Device `i`: TEID `i + 1`, UE 10.x.y.z, on gNB 192.0.2.(i % cells + 1).
pub(super) fn key_of(i: usize) -> DeviceKey {
    DeviceKey::teid(i as u32 + 1)
}

pub(super) fn index_of(k: &DeviceKey) -> usize {
    u32::from_be_bytes([k.id[0], k.id[1], k.id[2], k.id[3]]) as usize - 1
}

pub(super) fn cell_of(c: usize) -> CellKey {
    L3Addr::v4([192, 0, 2, c as u8 + 1])
}

impl Sim {
    /// `n` devices over `cells` gNBs, clock starting at 1000 s (monotonic clocks are never 0).
    pub fn new(cfg: Config, n: usize, cells: usize) -> Sim {
        let devs = (0..n)
            .map(|i| Dev {
                key: key_of(i),
                cell: cell_of(i % cells.max(1)),
                teid: i as u32 + 1,
                ue: L3Addr::v4([10, (i >> 16) as u8, (i >> 8) as u8, i as u8]),
                dst: L3Addr::v4([198, 51, 100, 10]),
                packets: 0,
                bytes: 0,
                over: 0,
                dropped: 0,
                obs_tokens: 0.0,
                stage_tokens: 0.0,
                byte_tokens: 0.0,
                passed_bytes: 0,
            })
            .collect();
        let tick_ns = cfg.guard.tick.0;
        Sim {
            engine: Engine::new(&cfg),
            cfg,
            size: vec![100; n],
            devs,
            entries: HashMap::new(),
            now: 1_000_000_000_000,
            tick_ns,
            log: Vec::new(),
            lapses: 0,
            manual_violations: Vec::new(),
            sample_active_only: false,
            full_pass_every: 0,
            read_slices: 0,
            ticks: 0,
        }
    }

    pub fn secs(&self) -> f64 {
        self.now as f64 / 1e9 - 1000.0
    }

    /// The stage the data plane applies to device `i` right now.
    pub fn live_stage(&self, i: usize) -> u32 {
        self.entries.get(&self.devs[i].key).filter(|e| e.expires_ns > self.now).map_or(0, |e| e.stage)
    }

    /// Put a stage in the map as the controller would find it at restart, and tell the engine.
    pub fn restore(&mut self, stages: &[CurrentStage]) {
        for s in stages {
            self.entries.insert(
                s.key,
                Entry {
                    stage: s.stage,
                    flags: s.flags,
                    limit: s.limit,
                    bytes: ByteLimit::UNLIMITED,
                    expires_ns: s.expires_ns,
                    manual: s.flags & guard_common::abi::STAGE_FLAG_MANUAL != 0,
                },
            );
        }
        self.engine.restore(stages, self.now);
    }

    /// An operator pin through the control socket.
    pub fn pin(&mut self, i: usize, stage: u32, limit: Limit) {
        let key = self.devs[i].key;
        let expires = self.now + 3600 * 1_000_000_000;
        self.entries.insert(
            key,
            Entry { stage, flags: 1, limit, bytes: ByteLimit::UNLIMITED, expires_ns: expires, manual: true },
        );
        self.engine.pin_manual(key, stage, limit, expires, self.now);
    }

    /// Run `ticks` windows; `offered(i, t_seconds, live_stage)` is device `i`'s packets this window.
    pub fn run(&mut self, ticks: u32, mut offered: impl FnMut(usize, f64, u32) -> u64) {
        for _ in 0..ticks {
            self.step(&mut offered);
        }
    }

    fn step(&mut self, offered: &mut impl FnMut(usize, f64, u32) -> u64) {
        self.now += self.tick_ns;
        let dt = self.tick_ns as f64 / 1e9;
        let t = self.secs();
        let obs = self.cfg.dataplane.observe;
        let mut samples = Vec::with_capacity(self.devs.len());
        for i in 0..self.devs.len() {
            let live = self.entries.get(&self.devs[i].key).copied().filter(|e| e.expires_ns > self.now);
            let n = offered(i, t, live.map_or(0, |e| e.stage));
            let size = self.size[i];
            let d = &mut self.devs[i];
            d.obs_tokens = (d.obs_tokens + obs.pps as f64 * dt).min(obs.burst as f64);
            let within = (n as f64).min(d.obs_tokens.floor());
            d.obs_tokens -= within;
            d.over += n - within as u64;
            let passed = match live {
                Some(e) if e.flags & STAGE_FLAG_EXEMPT != 0 => n,
                Some(e) if e.stage == STAGE_QUARANTINE => 0,
                Some(e) if e.stage > 0 && (e.limit.interval_ns > 0 || !e.bytes.is_unlimited()) => {
                    // Both limits must allow a packet (`rate::admit_both`).
                    let mut p = n as f64;
                    if e.limit.interval_ns > 0 {
                        let pps = 1e9 / e.limit.interval_ns as f64;
                        d.stage_tokens = (d.stage_tokens + pps * dt).min(e.limit.burst() as f64);
                        p = p.min(d.stage_tokens.floor());
                    }
                    if !e.bytes.is_unlimited() {
                        let bps = e.bytes.bits_per_sec() as f64 / 8.0;
                        d.byte_tokens = (d.byte_tokens + bps * dt).min(e.bytes.burst_bytes() as f64);
                        p = p.min((d.byte_tokens / size as f64).floor());
                        d.byte_tokens -= p * size as f64;
                    }
                    if e.limit.interval_ns > 0 {
                        d.stage_tokens -= p;
                    }
                    p as u64
                }
                _ => n,
            };
            d.dropped += n - passed;
            d.packets += n;
            d.bytes += n * size;
            d.passed_bytes += passed * size;
            if self.sample_active_only && n == 0 {
                continue;
            }
            if self.read_slices > 0 && !(self.ticks + 1 + i as u32).is_multiple_of(self.read_slices) {
                continue;
            }
            samples.push(DeviceSample {
                key: d.key,
                cell: d.cell,
                packets: d.packets,
                bytes: d.bytes,
                over_limit: d.over,
                dropped: d.dropped,
                inner_dst: d.dst,
                ue_addr: d.ue,
                teid: d.teid,
            });
        }
        self.ticks += 1;
        let pass = if self.full_pass_every == 0 || self.ticks.is_multiple_of(self.full_pass_every) {
            Pass::Full
        } else {
            Pass::Changed
        };
        let decisions = self.engine.tick_pass(self.now, &samples, &[], pass);
        for d in decisions {
            self.apply(&d);
            self.log.push((self.now, d));
        }
        let horizon = self.now + self.tick_ns;
        self.lapses += self.entries.values().filter(|e| !e.manual && e.expires_ns <= horizon).count() as u64;
    }

    fn apply(&mut self, d: &Decision) {
        let key = match d {
            Decision::SetDeviceStage { key, .. } | Decision::ReleaseDevice { key, .. } => *key,
            _ => return,
        };
        if self.entries.get(&key).is_some_and(|e| e.manual && e.expires_ns > self.now) {
            self.manual_violations.push(format!("{} at {}: {d:?}", index_of(&key), self.secs()));
            return;
        }
        match d {
            Decision::SetDeviceStage { stage, flags, limit, bytes, ttl_ns, refresh, .. } => {
                let e = Entry {
                    stage: *stage,
                    flags: *flags,
                    limit: *limit,
                    bytes: *bytes,
                    expires_ns: self.now + ttl_ns,
                    manual: false,
                };
                if !refresh || !self.entries.contains_key(&key) {
                    let d = &mut self.devs[index_of(&key)];
                    d.stage_tokens = limit.burst() as f64;
                    d.byte_tokens = bytes.burst_bytes() as f64;
                }
                self.entries.insert(key, e);
            }
            Decision::ReleaseDevice { .. } => {
                self.entries.remove(&key);
            }
            _ => {}
        }
    }

    /// Decisions of one kind, with their time in scenario seconds.
    pub fn decisions<'a>(
        &'a self,
        pred: impl Fn(&Decision) -> bool + 'a,
    ) -> impl Iterator<Item = (f64, &'a Decision)> + 'a {
        self.log.iter().filter(move |(_, d)| pred(d)).map(|(t, d)| (*t as f64 / 1e9 - 1000.0, d))
    }

    /// The devices the engine ever put under a stage (exempt marks excluded), by index.
    pub fn staged(&self) -> std::collections::BTreeSet<usize> {
        self.decisions(|d| matches!(d, Decision::SetDeviceStage { stage, .. } if *stage > 0))
            .filter_map(|(_, d)| match d {
                Decision::SetDeviceStage { key, .. } => Some(index_of(key)),
                _ => None,
            })
            .collect()
    }

    /// Non-refresh stage changes of device `i`: (time, stage, reason).
    pub fn stage_changes(&self, i: usize) -> Vec<(f64, u32, super::Reason)> {
        let key = self.devs[i].key;
        self.decisions(|d| !d.is_refresh())
            .filter_map(|(t, d)| match d {
                Decision::SetDeviceStage { key: k, stage, reason, .. } if *k == key => Some((t, *stage, *reason)),
                Decision::ReleaseDevice { key: k, reason, .. } if *k == key => Some((t, 0, *reason)),
                _ => None,
            })
            .collect()
    }
}
