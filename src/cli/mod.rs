//! Command-line parsing and the terminal: progress bars, tables, exit codes. The library never
//! prints; everything a user sees is written here.

mod bench;
mod checks;
mod cost_model;
mod default_job;
mod device;
mod heap;
mod output;
mod plot;
mod progress;
mod run;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// cachedit: cache the work of diffusion-transformer blocks between denoising steps.
///
/// Without a command, runs the main job: the embedded default model generates once without and
/// once with the cache, and the speedup, fidelity and cache summary are printed.
#[derive(Debug, Parser)]
#[command(name = "cachedit", version, allow_negative_numbers = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    default: default_job::DefaultArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The main job (the same as running without a command).
    #[command(allow_negative_numbers = true)]
    Demo(default_job::DefaultArgs),
    /// Run a family with a cache configuration, writing outputs, a trace and a plot.
    #[command(allow_negative_numbers = true)]
    Run(Box<run::RunArgs>),
    /// The supported families, in registration order (cache-dit's `supported_pipelines()`).
    List,
    /// Time the baseline and a grid of cache configurations: speedup, overhead, fidelity.
    #[command(allow_negative_numbers = true)]
    Bench(bench::BenchArgs),
}

/// Parses the arguments, runs the command, and maps failures to a message and exit code 1.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    heap::keep_freed_memory();
    let result = match cli.command {
        None => default_job::run(&cli.default),
        Some(Command::Demo(args)) => default_job::run(&args),
        Some(Command::Run(args)) => run::run(&args),
        Some(Command::Bench(args)) => bench::run(&args),
        Some(Command::List) => {
            let (n, names) = cachedit::supported_pipelines();
            println!("{n} supported families:");
            for name in names {
                println!("  {name}");
            }
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", checks::error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CACHEDIT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
