//! sgsnemu (from Debian `osmo-ggsn` 1.9): an SGSN emulator that creates PDP contexts over GTP-C
//! and pings through GTP-U. What its source (`sgsnemu/sgsnemu.c`, tag 1.9.0) does, and what this
//! module relies on:
//!
//! - One instance binds GTP-C 2123 and GTP-U 2152 on its `--listen` address, so every instance
//!   gets its own RAN address (one "gNB" each).
//! - `--contexts N` creates N contexts at start; context n has IMSI `imsi_add(base, n)`, which
//!   reads the base IMSI as a decimal number (leading zeros dropped) and adds 10·n, so bases that
//!   differ by ≥ 10 000 give disjoint IMSI sets for up to 1000 contexts each.
//! - Pings go round-robin over the contexts (`ctx_arr[pingseq % contexts]`) at `--pingrate`
//!   pings per second for the whole instance; ICMP sequence number = `pingseq` (16 bits on the
//!   wire). So context c sends the pings with `seq % N == c`.
//! - G-PDUs carry a sequence number (S flag) unless `--no-tx-gpdu-seq`: kept, it is the real
//!   variant that takes the guard's full parser.
//! - At the end (`--pingcount` reached and every reply in, `--timelimit`, or SIGTERM) it prints
//!   `N packets transmitted in T seconds, M packets received, P% packet loss`: the oracle for
//!   loss. Without `--pingquiet` every reply is printed (`84 bytes from H: icmp_seq=S ...`),
//!   which gives the loss per context.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::peer::PeerProc;
use crate::netns::Netns;

/// What its final statistics line contains.
const STATS_MARK: &str = " packets transmitted in ";

/// One sgsnemu instance to run.
#[derive(Clone, Debug, Serialize)]
pub struct Spec {
    pub name: String,
    pub benign: bool,
    /// Its RAN address (GTP-C and GTP-U source; the guard's "cell").
    pub listen: Ipv4Addr,
    pub contexts: u32,
    /// Pings per second for the whole instance (spread round-robin over its contexts).
    pub pingrate: u32,
    pub pingcount: u64,
    /// sgsnemu's own time limit (a backstop; the scenario stops it with SIGTERM before).
    pub timelimit_s: u32,
    pub imsi: String,
}

impl Spec {
    /// The base IMSI of instance `k` (MCC 001, MNC 01): disjoint from every other instance's
    /// IMSIs for up to 1000 contexts (see the module doc).
    pub fn imsi_for(k: usize) -> String {
        format!("00101{:06}0001", k % 1_000_000)
    }

    fn argv(&self, ggsn: Ipv4Addr, pinghost: Ipv4Addr, statedir: &Path) -> Vec<String> {
        let s = |v: &dyn ToString| v.to_string();
        // stdbuf -oL: the reply lines and the statistics reach the log even if the process has
        // to be killed.
        vec![
            s(&"stdbuf"),
            s(&"-oL"),
            s(&"sgsnemu"),
            s(&"-l"),
            s(&self.listen),
            s(&"-r"),
            s(&ggsn),
            s(&"--contexts"),
            s(&self.contexts),
            s(&"--pinghost"),
            s(&pinghost),
            s(&"--pingrate"),
            s(&self.pingrate),
            s(&"--pingcount"),
            s(&self.pingcount),
            s(&"--timelimit"),
            s(&self.timelimit_s),
            s(&"-i"),
            s(&self.imsi),
            s(&"--statedir"),
            statedir.display().to_string(),
            s(&"--pidfile"),
            statedir.join("sgsnemu.pid").display().to_string(),
        ]
    }
}

/// A running instance; Drop stops it.
pub struct Instance {
    pub spec: Spec,
    pub proc: PeerProc,
    pub started: SystemTime,
    stats_seen: Option<Instant>,
}

impl Instance {
    pub fn start(
        ran: &Netns,
        spec: Spec,
        ggsn: Ipv4Addr,
        pinghost: Ipv4Addr,
        dir: &Path,
        statedir: &Path,
    ) -> Result<Instance> {
        std::fs::create_dir_all(statedir).with_context(|| format!("creating {}", statedir.display()))?;
        let argv = spec.argv(ggsn, pinghost, statedir);
        let log = dir.join(format!("{}.log", spec.name));
        let started = SystemTime::now();
        let proc = PeerProc::spawn(&spec.name, ran, &argv, &log, None)?;
        Ok(Instance { spec, proc, started, stats_seen: None })
    }

    /// Once it has printed its statistics it only deletes its contexts, then idles in select()
    /// for up to 10 s before exiting (SIGTERM is ignored in that state); give it 2 s for the
    /// Delete PDP Context exchange and stop it.
    pub fn settle(&mut self) {
        if self.proc.exited().is_some() {
            return;
        }
        match self.stats_seen {
            None if self.proc.output().contains(STATS_MARK) => self.stats_seen = Some(Instant::now()),
            Some(t) if t.elapsed() > Duration::from_secs(2) => {
                self.proc.stop(Duration::from_millis(500));
            }
            _ => {}
        }
    }

    /// Its statistics, parsed from its output.
    pub fn stats(&self) -> Result<Stats> {
        parse_output(&self.proc.output(), self.spec.contexts)
            .with_context(|| format!("sgsnemu {} output ({})", self.spec.name, self.proc.log().display()))
    }
}

/// What one instance reported about itself.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Stats {
    /// From its final statistics line.
    pub transmitted: u64,
    pub received: u64,
    pub elapsed_s: f64,
    /// Its own "P% packet loss" (integer, as printed).
    pub printed_loss_pct: Option<u64>,
    /// "Received create PDP context response." lines with an address.
    pub contexts_up: usize,
    /// UE addresses the GGSN assigned (in the order the responses came).
    pub ue_addrs: Vec<Ipv4Addr>,
    /// Replies per context (from the `icmp_seq=` lines; `seq % contexts`).
    pub received_per_context: Vec<u64>,
    /// Whether its GTP-C Echo Request at start was answered ("Received echo response").
    pub echo_answered: bool,
    /// G-PDUs it received from itself on TEID 0: pings it sent on a context whose Create PDP
    /// Context Response had not arrived yet (no peer address: they go to 0.0.0.0, i.e. to
    /// itself, and never reach the guard). sgsnemu counts them as transmitted and lost.
    pub pings_to_itself: u64,
}

impl Stats {
    pub fn loss(&self) -> f64 {
        if self.transmitted == 0 {
            return 0.0;
        }
        self.transmitted.saturating_sub(self.received) as f64 / self.transmitted as f64
    }

    /// Pings sent on context `c` (seq numbers 0..transmitted with `seq % n == c`).
    pub fn sent_on(&self, c: usize) -> u64 {
        let n = self.received_per_context.len() as u64;
        if n == 0 {
            return 0;
        }
        let (q, r) = (self.transmitted / n, self.transmitted % n);
        q + u64::from((c as u64) < r)
    }

    /// The worst loss of any one context, and which.
    pub fn worst_context(&self) -> Option<(usize, f64)> {
        (0..self.received_per_context.len())
            .filter(|&c| self.sent_on(c) > 0)
            .map(|c| (c, 1.0 - self.received_per_context[c] as f64 / self.sent_on(c) as f64))
            .max_by(|a, b| a.1.total_cmp(&b.1))
    }
}

/// Parse sgsnemu's stdout. Fails when the final statistics line is missing (the process did
/// not finish its ping run, so there is no oracle to read).
pub fn parse_output(text: &str, contexts: u32) -> Result<Stats> {
    let mut st = Stats { received_per_context: vec![0; contexts as usize], ..Stats::default() };
    let mut have_stats = false;
    // The 16-bit ICMP sequence wraps at 65536; `seq % contexts` stays the context only while
    // the count is below that or `contexts` divides 65536.
    let mut wraps = 0u64;
    let mut last_seq: Option<u64> = None;
    for line in text.lines() {
        // sgsnemu's stdout shares the log with libosmocore's coloured stderr logging, so a line
        // can start with an ANSI colour reset; match on content, not on the whole line.
        const EUA: &str = "PDP ctx: received EUA with IP address: ";
        if line.contains("Unknown PDP context: TEI=0x0") && line.contains(" 32 ff ") {
            st.pings_to_itself += 1;
        } else if let Some(rest) = line.find(EUA).map(|i| &line[i + EUA.len()..]) {
            if let Ok(a) = rest.trim().parse() {
                st.ue_addrs.push(a);
            }
        } else if line.contains("Received create PDP context response.") {
            st.contexts_up += 1;
        } else if line.contains("Received echo response") {
            st.echo_answered = true;
        } else if let Some(i) = line.find("icmp_seq=") {
            let digits: String = line[i + 9..].chars().take_while(char::is_ascii_digit).collect();
            if let (Ok(seq), false) = (digits.parse::<u64>(), st.received_per_context.is_empty()) {
                if last_seq.is_some_and(|l| seq + 30_000 < l) {
                    wraps += 1;
                }
                last_seq = Some(seq);
                let full = seq + wraps * 65_536;
                let n = st.received_per_context.len() as u64;
                st.received_per_context[(full % n) as usize] += 1;
            }
        } else if line.contains(STATS_MARK) && line.contains(" packets received") {
            // "20 packets transmitted in 3.800 seconds, 20 packets received, 0% packet loss"
            let w: Vec<&str> = line.split_whitespace().collect();
            let num = |i: usize| w.get(i).and_then(|s| s.trim_end_matches(',').parse::<f64>().ok());
            let (Some(tx), Some(el), Some(rx)) = (num(0), num(4), num(6)) else {
                bail!("unreadable statistics line {line:?}");
            };
            st.transmitted = tx as u64;
            st.elapsed_s = el;
            st.received = rx as u64;
            st.printed_loss_pct = line
                .split(", ")
                .find(|p| p.ends_with("% packet loss"))
                .and_then(|p| p.trim_end_matches("% packet loss").trim().parse().ok());
            have_stats = true;
        }
    }
    if !have_stats {
        bail!("no final ping statistics line");
    }
    Ok(st)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUT: &str = "Received echo response\n\
Received create PDP context response.\n\
PDP ctx: received EUA with IP address: 172.20.0.2\n\
\x1b[0;mReceived create PDP context response.\n\
PDP ctx: received EUA with IP address: 172.20.0.3\n\
\x1b[38;5;35m<000d> gtp.c:2938 Packet from 10.200.0.11:2152, length: 96 content: 32 ff 00 58 : Unknown PDP context: TEI=0x0\n\
84 bytes from 172.20.0.1: icmp_seq=0 time=0.252 ms\n\
84 bytes from 172.20.0.1: icmp_seq=1 time=0.326 ms\n\
84 bytes from 172.20.0.1: icmp_seq=3 time=0.179 ms\n\
\n\
----172.20.0.1 PING Statistics----\n\
4 packets transmitted in 1.800 seconds, 3 packets received, 25% packet loss\n\
round-trip (ms)  min/avg/max = 0.126/0.173/0.326\n\
\n\
4 packets transmitted \n";

    #[test]
    fn parses_statistics_contexts_and_per_context_replies() {
        let st = parse_output(OUT, 2).expect("parses");
        assert_eq!((st.transmitted, st.received), (4, 3));
        assert_eq!(st.printed_loss_pct, Some(25));
        assert!((st.elapsed_s - 1.8).abs() < 1e-9);
        assert_eq!(st.contexts_up, 2);
        assert_eq!(st.ue_addrs, vec![Ipv4Addr::new(172, 20, 0, 2), Ipv4Addr::new(172, 20, 0, 3)]);
        assert!(st.echo_answered);
        assert_eq!(st.pings_to_itself, 1);
        assert_eq!(st.received_per_context, vec![1, 2]);
        assert_eq!((st.sent_on(0), st.sent_on(1)), (2, 2));
        let (c, l) = st.worst_context().expect("a context");
        assert_eq!(c, 0);
        assert!((l - 0.5).abs() < 1e-9);
    }

    #[test]
    fn missing_statistics_is_an_error() {
        assert!(parse_output("Received create PDP context response.\n", 1).is_err());
    }

    #[test]
    fn imsi_bases_are_15_digits_and_far_apart() {
        let a = Spec::imsi_for(0);
        let b = Spec::imsi_for(1);
        assert_eq!(a.len(), 15);
        let (x, y): (u64, u64) = (a.parse().expect("digits"), b.parse().expect("digits"));
        assert!(y - x >= 10_000);
    }
}
