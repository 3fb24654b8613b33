//! A program using a family that a library crate registers: it calls the library's `link()`,
//! looks the family up by pipeline name, builds it with seeded weights and runs a cached
//! denoise, then prints the cache summary.
//!
//! `downstream-app [residual_diff_threshold] [steps]` (defaults: the family's, 12 steps).

use std::process::ExitCode;

use cachedit::{
    BuildRequest, DenoiseOptions, Scheduler, denoise, enable_cache, lookup, render_summary, seeded_normal,
    summary,
};
use candle_core::{DType, Device};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let threshold: Option<f64> = args.next().map(|a| a.parse()).transpose()?;
    let steps: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(12);

    // This program names nothing else of the registering crate: without the call, rustc would
    // leave the crate out of the program and the lookup would not find its family.
    cachedit_downstream_example::link();
    let family = lookup("ToyDiTPipeline")?;
    println!(
        "family {} from {} (model {})",
        family.name, family.source_crate, family.model
    );
    let model = family.build(&BuildRequest::tiny(1))?;

    let mut config = family.default_cache_config()?;
    config.max_warmup_steps = 2;
    if let Some(threshold) = threshold {
        config.residual_diff_threshold = threshold;
    }
    enable_cache(&*model, &config)?;

    let device = Device::Cpu;
    let cond = model.synthetic_conditioning(1, 0, &device)?;
    let noise = seeded_normal(&model.latent_shape(1), 2, DType::F32, &device)?;
    let opts = DenoiseOptions {
        steps,
        scheduler: Scheduler::for_kind(family.scheduler),
        cfg: family.cfg,
        ..DenoiseOptions::default()
    };
    let out = denoise(&*model, noise, &cond, None, &opts, |_, _| {})?;
    println!("latents {:?}", out.latents.dims());
    let stats = summary(&*model);
    for list in &stats {
        println!("list {}: cached steps {:?}", list.list, list.cached_steps);
    }
    println!("{}", render_summary(&stats));
    Ok(())
}
