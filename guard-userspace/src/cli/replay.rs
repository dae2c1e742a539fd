//! `guard replay`: the arguments, the progress output, the summary and the exit status.

use std::{io::IsTerminal as _, path::PathBuf};

use anyhow::Result;
use clap::Args;

use crate::replay::{self, Options, Pacing, Progress};

#[derive(Args, Debug)]
#[command(after_long_help = REPLAY_EXAMPLES)]
pub struct ReplayArgs {
    /// The capture: pcap or pcapng, of an N3 NIC (a mirror port, a tcpdump), or of an N2 NIC with
    /// --n2-config. Ethernet (with
    /// 802.1Q / QinQ tags), raw IP and Linux cooked (`tcpdump -i any`) link types; IPv4 or
    /// IPv6 outer headers.
    pub capture: PathBuf,
    /// The guard configuration to replay with (the `guard run --config` file).
    #[arg(long)]
    pub config: PathBuf,
    /// N2 settings (the `guard run --n2-config` file): the capture also goes through guard_n2 and
    /// the N2 controller; their report is OUT/n2/ (peer setup stages, storm classification, the
    /// responses the hook would have been sent: the hook itself is never called).
    #[arg(long)]
    pub n2_config: Option<PathBuf>,
    /// An address of the guarded host itself (repeatable): the AMF's N2 addresses, the UPF's N3
    /// addresses. A capture of a mirror port holds both directions, the guard's XDP programs see
    /// only what arrives: a frame from one of these was sent by the host. N3: not replayed
    /// (`guard.n3_addrs` count too). N2: run through the egress classifier guard_n2_egress, which
    /// learns the AMF's INIT ACK tags and association ports, so `cookie_check = require` replays
    /// as configured; without --local it replays as `prefer`.
    #[arg(long, value_name = "ADDR")]
    pub local: Vec<std::net::IpAddr>,
    /// Replay the same capture with this second configuration too, and write the difference
    /// (compare.md, compare.json; B's own report under OUT/compare/).
    #[arg(long)]
    pub compare: Option<PathBuf>,
    /// Where the reports go: report.md, report.json, decisions.json, timeline.svg, audit.jsonl.
    #[arg(long, default_value = "replay-out")]
    pub out: PathBuf,
    /// Replay at N times the capture's own speed (for watching it; the decisions are the same
    /// at any speed, because the clock is the capture's).
    #[arg(long, value_name = "N", conflicts_with = "as_fast_as_possible")]
    pub speed: Option<f64>,
    /// Replay as fast as the machine goes (the default).
    #[arg(long)]
    pub as_fast_as_possible: bool,
}

const REPLAY_EXAMPLES: &str = "\
How it works: every frame runs through the real guard_n3 program (BPF_PROG_TEST_RUN; nothing is \
attached, nothing stays pinned), whose clock is set to the frame's capture time; the real \
controller ticks on the same clock, reading the whole device map each tick. So an hour of capture \
replays in minutes with the decisions `guard run` would have made (within a tick's alignment; \
docs/replay.md says what a replay cannot reproduce). Needs root (it loads a BPF program).

Exit status: 0 when the capture was read to its end; 1 when it could not be (truncated, corrupt, \
unknown link type, out of time order): the report then covers the frames read and says where it \
stopped.

Examples:
  guard replay incident.pcapng --config /etc/overload-guard/guard.toml --out /tmp/r
  guard replay n3-mirror.pcap --config shadow.toml --compare enforce.toml --out /tmp/cmp
  guard replay short.pcap --config guard.toml --speed 1      # in real time
  guard replay amf-n2.pcapng --config guard.toml --n2-config n2.toml --out /tmp/n2   # N2: OUT/n2/report.md
  guard replay amf-n2.pcapng --config guard.toml --n2-config n2.toml --local 10.100.0.1   # both directions";

pub fn run(a: ReplayArgs) -> Result<()> {
    let pacing = match a.speed {
        // Below 0.001 (1,000 times slower than the capture) a pause would not fit a `Duration`.
        Some(x) if (0.001..=f64::MAX).contains(&x) => Pacing::Speed(x),
        Some(x) => anyhow::bail!("--speed {x}: must be a number from 0.001 up"),
        None => Pacing::AsFastAsPossible,
    };
    let o = Options {
        capture: a.capture,
        config: a.config,
        compare: a.compare,
        n2_config: a.n2_config,
        local: a.local,
        out: a.out,
        pacing,
    };
    let mut progress: Box<dyn Progress> =
        if std::io::stderr().is_terminal() { Box::new(Bar::new()) } else { Box::new(Lines::default()) };
    let outcome = replay::replay(&o, progress.as_mut())?;
    drop(progress);
    let r = &outcome.report;
    println!(
        "{} frames replayed: {} passed, {} dropped; {} decisions; {} devices staged, {} gNBs affected",
        r.capture.frames_replayed,
        r.actions.passed,
        r.actions.dropped,
        r.decisions.len(),
        r.staged_devices().len(),
        r.gnbs.len()
    );
    if r.capture.egress > 0 {
        println!("{} frames sent by the host itself (--local, guard.n3_addrs): not replayed", r.capture.egress);
    }
    println!("report: {}", o.out.join("report.md").display());
    if let Some((_, c)) = &outcome.compared {
        println!(
            "compare: {} staged by A only, {} by B only, {} by both: {}",
            c.staged_only_a.len(),
            c.staged_only_b.len(),
            c.staged_both.len(),
            o.out.join("compare.md").display()
        );
    }
    if let Some(n2) = &outcome.n2 {
        println!(
            "N2: {} frames through guard_n2: {} passed, {} dropped; {} from the AMF through guard_n2_egress; peers \
             staged: {}; {} responses: {}",
            n2.capture.frames_replayed,
            n2.actions.passed,
            n2.actions.dropped,
            n2.capture.egress,
            n2.peers_staged.len(),
            n2.responses,
            o.out.join("n2/report.md").display()
        );
        if !n2.egress_classifier {
            println!(
                "N2: no --local AMF address, so no egress classifier: cookie_check replayed as {}",
                n2.cookie_check
            );
        }
    }
    if !outcome.complete() {
        let why = [Some(r), outcome.compared.as_ref().map(|(b, _)| b)]
            .into_iter()
            .flatten()
            .find_map(|r| r.capture.error.clone())
            .unwrap_or_default();
        anyhow::bail!(
            "the capture was not read to its end: {why}\nthe report covers the {} frames read before that",
            r.capture.frames_read
        );
    }
    Ok(())
}

/// A progress bar on a terminal (stderr).
struct Bar {
    bar: indicatif::ProgressBar,
}

impl Bar {
    fn new() -> Bar {
        let bar = indicatif::ProgressBar::new(0);
        let style = indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        bar.set_style(style);
        Bar { bar }
    }
}

impl Progress for Bar {
    fn step(&mut self, what: &str) {
        self.bar.println(format!("replay: {what}"));
    }
    fn position(&mut self, done: u64, total: u64, t_s: f64) {
        self.bar.set_length(total);
        self.bar.set_position(done);
        self.bar.set_message(format!("{t_s:.1} s of capture"));
    }
    fn done(&mut self, summary: &str) {
        self.bar.set_position(self.bar.length().unwrap_or(0));
        self.bar.println(format!("replay: {summary}"));
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

/// One line per step, and one per tenth of the capture read (logs, pipes).
#[derive(Default)]
struct Lines {
    tenth: u64,
}

impl Progress for Lines {
    fn step(&mut self, what: &str) {
        eprintln!("replay: {what}");
        self.tenth = 0;
    }
    fn position(&mut self, done: u64, total: u64, t_s: f64) {
        let tenth = done.saturating_mul(10).checked_div(total).unwrap_or(0);
        if tenth > self.tenth {
            self.tenth = tenth;
            eprintln!("replay: {}0% of the capture read, {t_s:.1} s of capture time", tenth);
        }
    }
    fn done(&mut self, summary: &str) {
        eprintln!("replay: {summary}");
    }
}
