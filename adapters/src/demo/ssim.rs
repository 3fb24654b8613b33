//! Structural similarity (SSIM) in floating point, as Wang et al. (2004) define it and
//! scikit-image computes it with `gaussian_weights=True, sigma=1.5, use_sample_covariance=False`:
//! an 11×11 Gaussian window (σ = 1.5, normalised), `K1 = 0.01`, `K2 = 0.03`, local statistics
//! only where the window fits inside the image ("valid" positions), the SSIM map averaged per
//! channel, then the channels averaged.

use candle_core::{DType, Tensor};

/// Side of the Gaussian window.
pub const WINDOW: usize = 11;
/// Standard deviation of the Gaussian window.
pub const SIGMA: f64 = 1.5;
const K1: f64 = 0.01;
const K2: f64 = 0.03;

/// Why [`ssim`] could not compare two images.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SsimError {
    /// The buffers do not hold `channels × height × width` values each.
    #[error("ssim: expected {expected} values per image ({channels}×{height}×{width}), got {a} and {b}")]
    Size {
        /// `channels × height × width`.
        expected: usize,
        /// Channels.
        channels: usize,
        /// Height.
        height: usize,
        /// Width.
        width: usize,
        /// Length of the first buffer.
        a: usize,
        /// Length of the second buffer.
        b: usize,
    },
    /// The image is smaller than the window in a dimension, or has no channel.
    #[error(
        "ssim: a {height}×{width} image with {channels} channels is smaller than the {WINDOW}×{WINDOW} window"
    )]
    TooSmall {
        /// Channels.
        channels: usize,
        /// Height.
        height: usize,
        /// Width.
        width: usize,
    },
    /// The data range is not a positive finite number.
    #[error("ssim: data range must be positive and finite, got {0}")]
    DataRange(f64),
    /// The tensors could not be read (shape not `(B, C, H, W)` or shapes differ).
    #[error("ssim: {0}")]
    Tensor(String),
}

/// The normalised 1-D Gaussian of the window (the 2-D window is its outer product).
fn kernel() -> [f64; WINDOW] {
    let mut k = [0f64; WINDOW];
    let c = (WINDOW / 2) as f64;
    for (i, v) in k.iter_mut().enumerate() {
        let d = i as f64 - c;
        *v = (-d * d / (2.0 * SIGMA * SIGMA)).exp();
    }
    let sum: f64 = k.iter().sum();
    k.iter_mut().for_each(|v| *v /= sum);
    k
}

/// Separable "valid" filtering of one `h × w` plane: output `(h − 10) × (w − 10)`.
fn filter_valid(plane: &[f64], h: usize, w: usize, k: &[f64; WINDOW]) -> Vec<f64> {
    let (oh, ow) = (h + 1 - WINDOW, w + 1 - WINDOW);
    let mut rows = vec![0f64; h * ow];
    for y in 0..h {
        for x in 0..ow {
            rows[y * ow + x] = (0..WINDOW).map(|i| k[i] * plane[y * w + x + i]).sum();
        }
    }
    let mut out = vec![0f64; oh * ow];
    for y in 0..oh {
        for x in 0..ow {
            out[y * ow + x] = (0..WINDOW).map(|i| k[i] * rows[(y + i) * ow + x]).sum();
        }
    }
    out
}

/// Mean SSIM of one plane pair.
fn ssim_plane(a: &[f64], b: &[f64], h: usize, w: usize, data_range: f64) -> f64 {
    let k = kernel();
    let prod = |f: &dyn Fn(usize) -> f64| (0..a.len()).map(f).collect::<Vec<f64>>();
    let mu_a = filter_valid(a, h, w, &k);
    let mu_b = filter_valid(b, h, w, &k);
    let aa = filter_valid(&prod(&|i| a[i] * a[i]), h, w, &k);
    let bb = filter_valid(&prod(&|i| b[i] * b[i]), h, w, &k);
    let ab = filter_valid(&prod(&|i| a[i] * b[i]), h, w, &k);
    let c1 = (K1 * data_range).powi(2);
    let c2 = (K2 * data_range).powi(2);
    let n = mu_a.len();
    (0..n)
        .map(|i| {
            let (ma, mb) = (mu_a[i], mu_b[i]);
            let (va, vb, cov) = (aa[i] - ma * ma, bb[i] - mb * mb, ab[i] - ma * mb);
            ((2.0 * ma * mb + c1) * (2.0 * cov + c2)) / ((ma * ma + mb * mb + c1) * (va + vb + c2))
        })
        .sum::<f64>()
        / n as f64
}

/// SSIM between two channel-major images (`channels × height × width` values each) whose
/// values span `data_range` (2 for `[-1, 1]`, 255 for 8-bit), computed in f64.
pub fn ssim(
    a: &[f32],
    b: &[f32],
    channels: usize,
    height: usize,
    width: usize,
    data_range: f64,
) -> Result<f64, SsimError> {
    let expected = channels * height * width;
    if a.len() != expected || b.len() != expected {
        return Err(SsimError::Size {
            expected,
            channels,
            height,
            width,
            a: a.len(),
            b: b.len(),
        });
    }
    if channels == 0 || height < WINDOW || width < WINDOW {
        return Err(SsimError::TooSmall {
            channels,
            height,
            width,
        });
    }
    if !(data_range.is_finite() && data_range > 0.0) {
        return Err(SsimError::DataRange(data_range));
    }
    let plane = height * width;
    let total: f64 = (0..channels)
        .map(|c| {
            let pa: Vec<f64> = a[c * plane..(c + 1) * plane]
                .iter()
                .map(|v| f64::from(*v))
                .collect();
            let pb: Vec<f64> = b[c * plane..(c + 1) * plane]
                .iter()
                .map(|v| f64::from(*v))
                .collect();
            ssim_plane(&pa, &pb, height, width, data_range)
        })
        .sum();
    Ok(total / channels as f64)
}

/// Mean SSIM over a batch of images `(B, C, H, W)` (see [`ssim`]).
pub fn ssim_tensors(a: &Tensor, b: &Tensor, data_range: f64) -> Result<f64, SsimError> {
    let tensor_err = |e: candle_core::Error| SsimError::Tensor(e.to_string());
    if a.dims() != b.dims() {
        return Err(SsimError::Tensor(format!(
            "shapes differ: {:?} vs {:?}",
            a.dims(),
            b.dims()
        )));
    }
    let (n, c, h, w) = a.dims4().map_err(tensor_err)?;
    if n == 0 {
        return Err(SsimError::Tensor("empty batch".into()));
    }
    let read = |t: &Tensor| -> Result<Vec<f32>, SsimError> {
        t.to_dtype(DType::F32)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(tensor_err)
    };
    let (va, vb) = (read(a)?, read(b)?);
    let per = c * h * w;
    let mut total = 0.0;
    for i in 0..n {
        total += ssim(
            &va[i * per..(i + 1) * per],
            &vb[i * per..(i + 1) * per],
            c,
            h,
            w,
            data_range,
        )?;
    }
    Ok(total / n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A busy pattern in `[0, 1]` (data range 1). Values centred on 0 would make the luminance
    /// term collapse for any offset, since it compares means relative to `C1`.
    fn ramp(c: usize, h: usize, w: usize) -> Vec<f32> {
        (0..c * h * w).map(|i| (i * 37 % 101) as f32 / 100.0).collect()
    }

    #[test]
    fn identity_is_one_and_symmetric() {
        let a = ramp(3, 16, 16);
        let b: Vec<f32> = a.iter().map(|v| v * 0.8 + 0.1).collect();
        assert!((ssim(&a, &a, 3, 16, 16, 1.0).unwrap() - 1.0).abs() < 1e-12);
        let ab = ssim(&a, &b, 3, 16, 16, 1.0).unwrap();
        let ba = ssim(&b, &a, 3, 16, 16, 1.0).unwrap();
        assert!((ab - ba).abs() < 1e-12);
        // An affine map with a positive gain keeps the structure: only contrast and mean shift.
        assert!(ab < 1.0 && ab > 0.9, "{ab}");
    }

    #[test]
    fn more_noise_lowers_ssim_and_negation_is_negative() {
        let a = ramp(1, 12, 12);
        let small: Vec<f32> = a
            .iter()
            .enumerate()
            .map(|(i, v)| v + if i % 2 == 0 { 0.02 } else { -0.02 })
            .collect();
        let large: Vec<f32> = a
            .iter()
            .enumerate()
            .map(|(i, v)| v + if i % 2 == 0 { 0.15 } else { -0.15 })
            .collect();
        let s_small = ssim(&a, &small, 1, 12, 12, 1.0).unwrap();
        let s_large = ssim(&a, &large, 1, 12, 12, 1.0).unwrap();
        assert!(1.0 > s_small && s_small > s_large, "{s_small} {s_large}");
        // Inverting the contrast around the same mean reverses the structure term.
        let neg: Vec<f32> = a.iter().map(|v| 1.0 - v).collect();
        assert!(ssim(&a, &neg, 1, 12, 12, 1.0).unwrap() < 0.0);
    }

    #[test]
    fn channels_are_averaged() {
        let a = ramp(2, 11, 11);
        let mut b = a.clone();
        b[..121].iter_mut().for_each(|v| *v = -*v);
        let first = ssim(&a[..121], &b[..121], 1, 11, 11, 2.0).unwrap();
        let both = ssim(&a, &b, 2, 11, 11, 2.0).unwrap();
        assert!((both - (first + 1.0) / 2.0).abs() < 1e-12);
    }

    #[test]
    fn bad_inputs_are_named() {
        let a = ramp(1, 10, 12);
        assert!(matches!(
            ssim(&a, &a, 1, 10, 12, 2.0),
            Err(SsimError::TooSmall { height: 10, .. })
        ));
        let a = ramp(1, 12, 12);
        assert!(matches!(
            ssim(&a, &a[1..], 1, 12, 12, 2.0),
            Err(SsimError::Size { expected: 144, .. })
        ));
        assert!(matches!(
            ssim(&a, &a, 1, 12, 12, 0.0),
            Err(SsimError::DataRange(_))
        ));
    }
}
