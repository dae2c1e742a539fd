//! GTP-U path supervision between the real peers: Echo Requests from every sgsnemu address (each
//! a GTP-U path to the GGSN) answered by osmo-ggsn's libgtp, through the guard.
//!
//! The requests are built by an independent encoder (a few lines of Python `struct`, not this
//! project's frame builder) and sent from a UDP socket bound to the path's RAN address on an
//! ephemeral port (TS 29.281 §4.4.2.1: the request's source port is locally allocated; the
//! response goes back to it). Rate, as the spec allows and no more: TS 29.281 §7.2.1, an Echo
//! Request is not sent more often than every 60 s on a path; an unanswered request is
//! retransmitted with the same sequence number after T3-RESPONSE, at most N3-REQUESTS times
//! (TS 29.281 §7.6 refers to TS 29.060 §7.6; the values are the operator's: 3 s and 3 here).
//! The header is TS 29.281 §5.1 for path management: S = 1, TEID 0; the response must be
//! message type 2 with the same sequence number and a Recovery IE (§7.2.2).

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::peer::PeerProc;
use crate::netns::Netns;

/// T3-RESPONSE and N3-REQUESTS (TS 29.060 §7.6 via TS 29.281 §7.6).
pub const T3_RESPONSE_S: f64 = 3.0;
pub const N3_REQUESTS: u32 = 3;
/// TS 29.281 §7.2.1: at most one Echo Request per path per 60 s.
pub const MIN_INTERVAL_S: f64 = 60.0;

const SCRIPT: &str = r#"
import json, select, socket, struct, sys, time
ggsn, t0, t3, n3 = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
paths = sys.argv[5].split(",")
rounds = [float(x) for x in sys.argv[6].split(",")]
socks = {}
for p in paths:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((p, 0))
    s.setblocking(False)
    socks[p] = s
seq = {p: 1000 * (i + 1) for i, p in enumerate(paths)}
def request(sq):
    # TS 29.281 5.1: version 1, PT 1, S 1 (0x32); type 1 Echo Request; length 4 (the optional
    # fields); TEID 0; sequence number; N-PDU number 0; next extension header 0.
    return struct.pack("!BBHIHBB", 0x32, 1, 4, 0, sq, 0, 0)
def answer(data, sq):
    if len(data) < 12:
        return None
    flags, mt, ln, teid, rsq = struct.unpack("!BBHIH", data[:10])
    if mt != 2 or rsq != sq:
        return None
    ies = data[12:8 + ln]
    return {"teid": teid, "recovery_ie": len(ies) >= 2 and ies[0] == 14}
for r, at in enumerate(rounds):
    now = time.time()
    if t0 + at > now:
        time.sleep(t0 + at - now)
    pending = {}
    for p in paths:
        seq[p] += 1
        pending[p] = {"path": p, "round": r, "seq": seq[p], "attempts": 0, "answered": 0, "first_sent": None, "rtt_ms": None, "recovery_ie": False, "teid": None}
    for attempt in range(n3 + 1):
        waiting = [p for p, e in pending.items() if e["answered"] == 0]
        if not waiting:
            break
        for p in waiting:
            e = pending[p]
            e["attempts"] += 1
            e["last_sent"] = time.time()
            if e["first_sent"] is None:
                e["first_sent"] = e["last_sent"]
            socks[p].sendto(request(e["seq"]), (ggsn, 2152))
        end = time.time() + t3
        while time.time() < end and any(pending[p]["answered"] == 0 for p in waiting):
            rd, _, _ = select.select([socks[p] for p in waiting], [], [], max(0.0, end - time.time()))
            for p in waiting:
                if socks[p] in rd:
                    try:
                        data, _ = socks[p].recvfrom(2048)
                    except BlockingIOError:
                        continue
                    a = answer(data, pending[p]["seq"])
                    if a is not None and pending[p]["answered"] == 0:
                        e = pending[p]
                        e["answered"] = e["attempts"]
                        e["rtt_ms"] = (time.time() - e["last_sent"]) * 1000.0
                        e["recovery_ie"] = a["recovery_ie"]
                        e["teid"] = a["teid"]
    for e in pending.values():
        print(json.dumps(e), flush=True)
"#;

/// One Echo exchange on one path (one round): how many attempts it took.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Exchange {
    pub path: Ipv4Addr,
    pub round: u32,
    pub seq: u32,
    /// Requests sent (1 + retransmissions).
    pub attempts: u32,
    /// The attempt that was answered (1-based), 0 if none was.
    pub answered: u32,
    pub first_sent: Option<f64>,
    pub rtt_ms: Option<f64>,
    pub recovery_ie: bool,
    pub teid: Option<u32>,
}

/// The prober process, running its rounds in the background.
pub struct Prober {
    proc: PeerProc,
    pub rounds_s: Vec<f64>,
    pub paths: Vec<Ipv4Addr>,
}

impl Prober {
    /// Start it in `ran`: rounds at `rounds_s` after `t0` (Unix seconds), one request per path
    /// per round. Rounds closer than 60 s are refused (TS 29.281 §7.2.1).
    pub fn start(
        ran: &Netns,
        ggsn: Ipv4Addr,
        paths: &[Ipv4Addr],
        t0: f64,
        rounds_s: &[f64],
        log: &Path,
    ) -> Result<Prober> {
        if rounds_s.windows(2).any(|w| w[1] - w[0] < MIN_INTERVAL_S) {
            anyhow::bail!("Echo rounds {rounds_s:?} closer than {MIN_INTERVAL_S} s on a path (TS 29.281 §7.2.1)");
        }
        let join = |v: Vec<String>| v.join(",");
        let argv = vec![
            crate::oracle::python_with_scapy().to_owned(),
            "-".to_owned(),
            ggsn.to_string(),
            format!("{t0:.3}"),
            T3_RESPONSE_S.to_string(),
            N3_REQUESTS.to_string(),
            join(paths.iter().map(ToString::to_string).collect()),
            join(rounds_s.iter().map(|r| format!("{r:.3}")).collect()),
        ];
        let proc = PeerProc::spawn("echo-prober", ran, &argv, log, Some(SCRIPT))?;
        Ok(Prober { proc, rounds_s: rounds_s.to_vec(), paths: paths.to_vec() })
    }

    /// Seconds after t0 by which the last round is over (all retransmissions included).
    pub fn done_by_s(&self) -> f64 {
        self.rounds_s.last().copied().unwrap_or(0.0) + T3_RESPONSE_S * f64::from(N3_REQUESTS + 1) + 1.0
    }

    /// Wait for the last round (bounded by `deadline`) and read every exchange.
    pub fn finish(mut self, deadline: Instant) -> Result<Vec<Exchange>> {
        if self.proc.wait_until(deadline).is_none() {
            self.proc.stop(Duration::from_secs(1));
        }
        let text = self.proc.output();
        let mut v = Vec::new();
        for l in text.lines().filter(|l| l.starts_with('{')) {
            v.push(serde_json::from_str::<Exchange>(l).with_context(|| format!("echo prober line {l:?}"))?);
        }
        if v.len() != self.paths.len() * self.rounds_s.len() {
            anyhow::bail!(
                "echo prober reported {} exchanges, expected {} (log {}):\n{}",
                v.len(),
                self.paths.len() * self.rounds_s.len(),
                self.proc.log().display(),
                self.proc.tail(10)
            );
        }
        Ok(v)
    }
}

/// Totals over all exchanges: requests sent (with retransmissions), requests answered, exchanges
/// that never got an answer.
pub fn totals(ex: &[Exchange]) -> (u32, u32, u32) {
    let sent = ex.iter().map(|e| e.attempts).sum();
    let answered = ex.iter().filter(|e| e.answered > 0).count() as u32;
    let lost_paths = ex.iter().filter(|e| e.answered == 0).count() as u32;
    (sent, answered, lost_paths)
}
