//! Trains the demo model and writes it to `adapters/assets/demo/` (or the directory given as
//! the first argument): `cargo run --release -p cachedit-adapters --example train_demo`.
//! Optional second and third arguments: steps and batch size.

use std::path::PathBuf;

use cachedit_adapters::demo::train::{TrainOptions, train_demo};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let out = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/demo"));
    let mut opts = TrainOptions {
        out_dir: Some(out),
        ..Default::default()
    };
    if let Some(steps) = args.next() {
        opts.steps = steps.parse()?;
    }
    if let Some(batch) = args.next() {
        opts.batch_size = batch.parse()?;
    }
    let start = std::time::Instant::now();
    let report = train_demo(&opts, |step, loss| {
        if step % 50 == 0 || step == 1 {
            eprintln!(
                "step {step:5}  loss {loss:.4}  {:6.1}s",
                start.elapsed().as_secs_f64()
            );
        }
    })?;
    eprintln!(
        "done: {} steps, batch {}, seed {}, final loss (mean of last 100) {:.4}, wall {:.1}s",
        opts.steps,
        opts.batch_size,
        opts.seed,
        report.final_loss,
        report.wall_time.as_secs_f64()
    );
    for p in &report.written {
        eprintln!("wrote {}", p.display());
    }
    Ok(())
}
