//! `routerstats-collector`: the command line; everything lives in the library (`cli` module).

fn main() -> std::process::ExitCode {
    routerstats_collector::cli::main()
}
