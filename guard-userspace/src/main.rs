//! `guard`: the overload guard's command line. See `guard --help`.

use std::process::ExitCode;

use clap::Parser;

/// Large tables on huge pages where the host allows (see `guard::hugealloc`).
#[global_allocator]
static ALLOC: guard::hugealloc::HugeAlloc = guard::hugealloc::HugeAlloc;

fn main() -> ExitCode {
    let cli = guard::cli::Cli::parse();
    let level = if matches!(cli.cmd, guard::cli::Cmd::Replay(_)) { "warn" } else { "info" };
    guard::cli::init_logging_at(cli.log_json, level);
    match guard::cli::dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprint!("{}", guard::cli::error_text(&e));
            ExitCode::FAILURE
        }
    }
}
