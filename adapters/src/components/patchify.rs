//! Patchify / unpatchify of latents into token sequences, and Flux-style position ids.

use candle_core::{DType, Device, Result, Tensor};

/// Packs latents `(B, C, H, W)` into tokens `(B, (H/p)·(W/p), C·p·p)`, channel-major within a
/// patch: Flux's `_pack_latents` for `p = 2`.
pub fn pack_latents(x: &Tensor, p: usize) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    if p == 0 || !h.is_multiple_of(p) || !w.is_multiple_of(p) {
        candle_core::bail!("latents {h}x{w} are not divisible into {p}x{p} patches");
    }
    x.reshape((b, c, h / p, p, w / p, p))?
        .permute((0, 2, 4, 1, 3, 5))?
        .reshape((b, (h / p) * (w / p), c * p * p))
}

/// The inverse of [`pack_latents`]: tokens `(B, (H/p)·(W/p), C·p·p)` back to `(B, C, H, W)`
/// (Flux's `_unpack_latents` on latent sizes).
pub fn unpack_latents(x: &Tensor, h: usize, w: usize, p: usize) -> Result<Tensor> {
    let (b, n, d) = x.dims3()?;
    if p == 0
        || !h.is_multiple_of(p)
        || !w.is_multiple_of(p)
        || n != (h / p) * (w / p)
        || !d.is_multiple_of(p * p)
    {
        candle_core::bail!(
            "cannot unpack {n} tokens of width {d} into a {h}x{w} latent with {p}x{p} patches"
        );
    }
    let c = d / (p * p);
    x.reshape((b, h / p, w / p, c, p, p))?
        .permute((0, 3, 1, 4, 2, 5))?
        .reshape((b, c, h, w))
}

/// Flux's `_prepare_latent_image_ids(h, w)`: `(h·w, 3)` f32 ids `(first, row, col)`, with
/// `first` the value of the first axis (0 for the generated image; Kontext uses 1 for the
/// reference image).
pub fn image_ids(h: usize, w: usize, first: f32, device: &Device) -> Result<Tensor> {
    let mut ids = Vec::with_capacity(h * w * 3);
    for r in 0..h {
        for c in 0..w {
            ids.extend_from_slice(&[first, r as f32, c as f32]);
        }
    }
    Tensor::from_vec(ids, (h * w, 3), device)
}

/// Text ids `(len, 3)` of zeros, as the Flux pipeline builds them.
pub fn text_ids(len: usize, device: &Device) -> Result<Tensor> {
    Tensor::zeros((len, 3), DType::F32, device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_is_flux_order_and_unpack_inverts_it() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::arange(0f32, 2.0 * 3.0 * 4.0 * 6.0, &dev)?.reshape((2, 3, 4, 6))?;
        let p = pack_latents(&x, 2)?;
        assert_eq!(p.dims(), &[2, 6, 12]);
        // Token 1 is patch (row 0, col 1); its channels are c-major, then the 2x2 pixels.
        let tok = p.get(0)?.get(1)?.to_vec1::<f32>()?;
        assert_eq!(&tok[..4], &[2.0, 3.0, 8.0, 9.0]);
        assert_eq!(tok[4], 24.0 + 2.0);
        let back = unpack_latents(&p, 4, 6, 2)?;
        assert_eq!(
            back.flatten_all()?.to_vec1::<f32>()?,
            x.flatten_all()?.to_vec1::<f32>()?
        );
        assert!(pack_latents(&x, 5).is_err());
        assert!(unpack_latents(&p, 4, 4, 2).is_err());
        let ids = image_ids(2, 3, 0.0, &dev)?.to_vec2::<f32>()?;
        assert_eq!(ids[4], vec![0.0, 1.0, 1.0]);
        Ok(())
    }
}
