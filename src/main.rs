//! `exo`: one binary for node and cell setup, the daemon, and everything in between.

fn main() -> std::process::ExitCode {
    exo::cli::main()
}
