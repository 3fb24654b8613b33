//! The `cachedit` command line: with no arguments, the main job — the same generation with and
//! without the cache on the embedded default model — and commands to run any configuration.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
