//! `cargo xtask`: the project's own commands. Each installs what it needs first, idempotently,
//! printing one line per step.

mod ab;
mod disk;
mod mutants;
mod package;
mod prereqs;
mod run;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Build, test, run the lab and benchmark the overload guard",
    long_about = "Build, test, run the lab and benchmark the overload guard.\n\n\
        Every command first makes sure the toolchain is installed (Debian's rustc-web 1.96 with \
        LLVM 22 for the BPF target, bpf-linker 0.13 built against LLVM 22, and the lab's tools: \
        iproute2, tshark, scapy, nftables). Installing is idempotent: a step that is already \
        done prints `ok` and costs nothing. Most commands need root (BPF, network namespaces)."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install the prerequisites only (Debian packages, bpf-linker).
    Setup,
    /// Build the XDP object and the `guard` binary (release).
    Build,
    /// Run every test: host unit/property tests, BPF_PROG_TEST_RUN verdict tests and the veth
    /// end-to-end tests. Needs root. This is what CI runs.
    Test {
        /// Extra arguments passed to `cargo test` (e.g. a test name filter).
        #[arg(trailing_var_arg = true)]
        args: Vec<String>,
    },
    /// Build and run the guard in the veth lab with a scenario, and write the report.
    Lab {
        /// `default`: a representative set that fits in 10 minutes from a fresh clone (the
        /// flood, deliberate-triggering and forgery N3 scenarios beside the naive cap, the N2
        /// registration storm, and the bounded real-peer scenarios); `all`: every scenario, the
        /// real-peer ones and the fleet lab in full; or one name or file (`lab/scenarios/`,
        /// `real-n3`, `real-n2`, `fleet`: a three-member etcd cluster and two AMF-side guards,
        /// `fleet-n3`: the same cluster and two UPF-side guards sharing one overloaded gNB, with
        /// and without `[fleet]`; docs/fleet.md).
        #[arg(long, default_value = "default")]
        scenario: String,
        /// Where the report, JSON and plots go.
        #[arg(long, default_value = "lab-out")]
        out: String,
        /// N3 modes to run side by side, comma-separated: off (no guard), naive_cell_cap, guard.
        /// The default leaves out the guard-off baseline (which always delivers everything and
        /// drops nothing), which would add a third run to every N3 scenario; add it with
        /// `--modes off,naive_cell_cap,guard`.
        #[arg(long, default_value = "naive_cell_cap,guard")]
        modes: String,
    },
    /// Benchmark and write BENCHMARKS.md: per-packet cost (BPF_PROG_TEST_RUN) as ratios to a
    /// minimal XDP program and to the floor program measured in the same run, a veth flood
    /// against nftables, and scale (1M/10M devices, controller tick, spoofed-TEID flood).
    Bench {
        /// Extra arguments for the bench binary: --quick, --skip-wire, --skip-scale, --no-write,
        /// --out PATH, --only-controller (the controller run at 1M devices alone; prints, does
        /// not write), --ab REV (repeatable: guard_n3's common path in both key modes, a new
        /// device's first packet and guard_n2 in this build against the object built from
        /// commit REV, side by side, with the key-size probes; prints, does not write),
        /// --only-first-packet (with --ab: the first packet and the key sizes alone).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Build the Debian package `overload-guard` (cargo-deb) into target/package/: the `guard`
    /// binary, the shadow-mode configuration and the N2 example as conffiles under
    /// /etc/overload-guard/, the systemd unit (installed disabled), man pages and completions,
    /// the Grafana dashboard and Prometheus rules under /usr/share/overload-guard/.
    Package {
        /// Then lint it, install it with dpkg, validate the installed configuration and unit,
        /// and purge it, checking nothing is left (needs root; refuses if already installed).
        #[arg(long)]
        check: bool,
    },
    /// Mutation testing (cargo-mutants) of the pure code: `common` (guard-common's parsers,
    /// policy and rate limiter, with their host tests), `engine` (the userspace ladders and the
    /// capacity decision, with the engines' unit tests; `engine-n3` or `engine-n2` for one side),
    /// `config` (validation, with the configuration's and the fleet codecs' tests), `kernel` (the
    /// N3 policy and the GCRA compiled into the XDP object, with the BPF_PROG_TEST_RUN verdict
    /// tests, as root; one shard) or `all` (every scope but `kernel`). Slow (tens of minutes):
    /// not part of `test`. The score and the survivors go in docs/testing.md.
    Mutants {
        #[arg(long, default_value = "common")]
        scope: String,
        /// Only these files (paths from the workspace root) instead of the scope's list.
        #[arg(long = "file")]
        files: Vec<String>,
        /// Test again only the mutants the last run of the scope did not catch (cargo-mutants
        /// `--iterate`; the ones caught or unviable before are reported apart), after tests were added.
        #[arg(long)]
        iterate: bool,
        /// For `--scope kernel`: the shard of its mutants to run, K/N (round-robin over the
        /// files; default 1/40, a few minutes per mutant).
        #[arg(long, value_name = "K/N")]
        shard: Option<String>,
    },
    /// Format check and clippy with -D warnings on the host crates.
    Lint,
    /// Fuzz every host-compiled parser (cargo-fuzz targets in `guard-common/fuzz`) for a while
    /// each. `cargo xtask test` runs this with 60 s per target; a crash leaves its input in
    /// `guard-common/fuzz/artifacts/<target>/` and fails the run (add it to the parser's unit
    /// tests as a regression case).
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = 60)]
        secs: u64,
        /// Only these targets (default: all, as `cargo fuzz list` names them).
        targets: Vec<String>,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Setup => prereqs::ensure_all(),
        Cmd::Build => {
            prereqs::ensure_build()?;
            run::build()
        }
        Cmd::Test { args } => {
            disk::ensure_free(&run::root(), "`cargo xtask test`", disk::TEST_WRITES)?;
            prereqs::ensure_all()?;
            run::test(&args)
        }
        Cmd::Lab { scenario, out, modes } => {
            disk::ensure_free(&run::root(), "`cargo xtask lab`", disk::LAB_WRITES)?;
            prereqs::ensure_build()?;
            run::lab(&scenario, &out, &modes)
        }
        Cmd::Bench { args } => {
            disk::ensure_free(&run::root(), "`cargo xtask bench`", disk::BENCH_WRITES)?;
            prereqs::ensure_build()?;
            run::bench(&args)
        }
        Cmd::Package { check } => {
            prereqs::ensure_build()?;
            prereqs::ensure_packaging()?;
            let deb = package::build()?;
            if check {
                package::check(&deb)?;
            }
            Ok(())
        }
        Cmd::Mutants { scope, files, iterate, shard } => {
            prereqs::ensure_build()?;
            prereqs::ensure_cargo_mutants()?;
            mutants::run(&scope, &files, iterate, shard.as_deref())
        }
        Cmd::Lint => {
            prereqs::ensure_build()?;
            run::lint()
        }
        Cmd::Fuzz { secs, targets } => {
            prereqs::ensure_all()?;
            run::fuzz(secs, &targets)
        }
    }
}
