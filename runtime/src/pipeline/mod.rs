//! The pipeline layer: what runs a generation on top of the cache core, and how a family is
//! found and built.
//!
//! - [`denoiser`]: the `Denoiser` trait a family implements (latent shape, conditioning, one
//!   transformer call) and `Conditioning`.
//! - [`denoise`]: the denoising loop, with the call layout of each CFG mode.
//! - [`scheduler`]: flow matching and DDIM, as diffusers computes them.
//! - [`noise`]: seeded Gaussian noise.
//! - [`registry`]: the whole registry contract: `FamilyEntry` (what `registry.yaml` declares,
//!   collected with `inventory`), `FamilyModel` and `build_family` (what generated registrations
//!   call), the diffusers config and checkpoint loader, and seeded weights.
//!
//! This layer uses the cache core; the core never uses it.

pub mod denoise;
pub mod denoiser;
pub mod noise;
pub mod registry;
pub mod scheduler;
