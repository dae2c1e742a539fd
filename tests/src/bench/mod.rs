//! `cargo xtask bench`: performance measured, not asserted (DESIGN §5 "Per-cost", "What users
//! would use instead").
//!
//! - [`cost`]: part 1, the per-packet cost (BPF_PROG_TEST_RUN): the guard's programs against the
//!   references, the operation prices, the new-device cost, a perf profile.
//! - [`multicore`]: part 1's multi-core table: the same cases on one CPU, then on two at once.
//! - [`progs`]: the reference programs (`xdp_baseline`, the floor `xdp_floor`, `xdp_parse_only`
//!   and the `xdp_op_*` operation probes) from the guard's own object, and the
//!   BPF_PROG_TEST_RUN timing helpers.
//! - [`sys`]: host facts for the report (kernel, CPU, load), CPU time from the scheduler and
//!   /proc/stat, and the kernel's memory accounting of BPF maps.
//! - [`wire`]: the flood over the lab's veth pair: no filter, the guard, an nftables TEID meter.
//! - [`live`]: the flood as XDP frames (live-frames mode, or [`relay`] where the kernel refuses it):
//!   each filter's own CPU per frame.
//! - [`scale`]: 1M and 10M devices, the spoofed-TEID flood, the controller at 1M devices.
//! - here: medians and the tables printed to the terminal and written to BENCHMARKS.md.
//!
//! Machines are noisy: every figure is a median over interleaved rounds, and per-packet costs are
//! reported as a ratio against a minimal XDP program measured in the same run.

pub mod ab;
pub mod cost;
pub mod live;
pub mod multicore;
pub mod progs;
pub mod relay;
pub mod scale;
pub mod sys;
pub mod wire;

/// The least finite value of `v` (a set of rounds' least disturbed one); infinity for none.
pub fn minimum(v: &[f64]) -> f64 {
    v.iter().copied().filter(|x| x.is_finite()).fold(f64::INFINITY, f64::min)
}

/// The median of `v` (mean of the middle two for an even count); 0 for an empty slice.
pub fn median(v: &[f64]) -> f64 {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return 0.0;
    }
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// `a / b`, or NaN when `b` is 0 (printed as "-").
pub fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        f64::NAN
    }
}

/// One row of the summary of the goals: the goal, what this run measured, whether that
/// meets it, and (only where it does not) what bounds it, which `why` writes.
pub fn goal_row(goal: impl Into<String>, measured: String, met: bool, why: impl FnOnce() -> String) -> Vec<String> {
    vec![goal.into(), measured, (if met { "yes" } else { "no" }).to_owned(), if met { String::new() } else { why() }]
}

/// A number with `prec` decimals, "-" for NaN.
pub fn num(x: f64, prec: usize) -> String {
    if x.is_finite() {
        format!("{x:.prec$}")
    } else {
        "-".into()
    }
}

/// Packets per second in a compact form: 1.23 M, 456 k.
pub fn pps(x: f64) -> String {
    if !x.is_finite() {
        "-".into()
    } else if x >= 1e6 {
        format!("{:.2} M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.0} k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

/// Bytes in a compact binary form.
pub fn bytes(x: u64) -> String {
    let f = x as f64;
    if f >= (1u64 << 30) as f64 {
        format!("{:.2} GiB", f / (1u64 << 30) as f64)
    } else if f >= (1u64 << 20) as f64 {
        format!("{:.1} MiB", f / (1u64 << 20) as f64)
    } else if f >= 1024.0 {
        format!("{:.1} KiB", f / 1024.0)
    } else {
        format!("{x} B")
    }
}

/// A table with a title, column headers and rows of cells, rendered as aligned text or Markdown.
#[derive(Clone, Debug, Default)]
pub struct Table {
    pub title: String,
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// Lines printed under the table.
    pub notes: Vec<String>,
}

impl Table {
    pub fn new(title: &str, headers: &[&str]) -> Table {
        Table { title: title.into(), headers: headers.iter().map(|s| (*s).to_owned()).collect(), ..Table::default() }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn note(&mut self, n: impl Into<String>) {
        self.notes.push(n.into());
    }

    fn widths(&self) -> Vec<usize> {
        let mut w: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate() {
                if i < w.len() {
                    w[i] = w[i].max(c.chars().count());
                }
            }
        }
        w
    }

    /// Aligned plain text: the first column left-aligned, the others right-aligned.
    pub fn text(&self) -> String {
        let w = self.widths();
        let line = |cells: &[String]| -> String {
            let mut s = String::new();
            for (i, width) in w.iter().enumerate() {
                let c = cells.get(i).map(String::as_str).unwrap_or("");
                let pad = width.saturating_sub(c.chars().count());
                if i == 0 {
                    s.push_str(c);
                    s.push_str(&" ".repeat(pad));
                } else {
                    s.push_str("  ");
                    s.push_str(&" ".repeat(pad));
                    s.push_str(c);
                }
            }
            s.trim_end().to_owned()
        };
        let mut out = format!("== {} ==\n", self.title);
        out.push_str(&line(&self.headers));
        out.push('\n');
        out.push_str(&"-".repeat(w.iter().sum::<usize>() + 2 * w.len().saturating_sub(1)));
        out.push('\n');
        for r in &self.rows {
            out.push_str(&line(r));
            out.push('\n');
        }
        for n in &self.notes {
            out.push_str("  * ");
            out.push_str(n);
            out.push('\n');
        }
        out
    }

    /// A Markdown table under a `###` heading.
    pub fn markdown(&self) -> String {
        let mut out = format!("### {}\n\n", self.title);
        out.push_str(&format!("| {} |\n", self.headers.join(" | ")));
        let align: Vec<&str> = (0..self.headers.len()).map(|i| if i == 0 { ":--" } else { "--:" }).collect();
        out.push_str(&format!("|{}|\n", align.join("|")));
        for r in &self.rows {
            out.push_str(&format!("| {} |\n", r.join(" | ")));
        }
        if !self.notes.is_empty() {
            out.push('\n');
            for n in &self.notes {
                out.push_str(&format!("- {n}\n"));
            }
        }
        out.push('\n');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[]), 0.0);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }

    #[test]
    fn tables_render() {
        let mut t = Table::new("t", &["a", "bb"]);
        t.row(vec!["x".into(), "1".into()]);
        assert!(t.text().contains("x   1"));
        assert!(t.markdown().contains("| x | 1 |"));
    }
}
