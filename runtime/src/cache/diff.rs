//! The relative L1 diff that decides "cache or compute" (docs/algorithm.md §4.1), with cache-dit's numerics:
//! per-element differences in the model dtype, means accumulated in at least f32 and rounded to
//! the model dtype, the quotient divided in f32 and rounded to the model dtype again.

use candle_core::{DType, Result, Tensor};

/// `mean|a|`, rounded to `a`'s dtype, as upstream's `.mean()` returns it. Reusing it for every
/// diff against the same reference saves one reduction per call.
pub fn mean_abs(a: &Tensor) -> Result<f64> {
    let sum = widen(&a.abs()?)?
        .sum_all()?
        .to_dtype(DType::F64)?
        .to_scalar::<f64>()?;
    Ok(round_mean(a.dtype(), sum, a.elem_count()))
}

/// `mean|prev - cur| / mean|prev|` as cache-dit computes it in the model dtype. `prev_mean_abs`
/// is `mean_abs(prev)` when already known. One host synchronisation either way.
pub fn relative_l1(prev: &Tensor, cur: &Tensor, prev_mean_abs: Option<f64>) -> Result<f64> {
    let dtype = prev.dtype();
    let n = prev.elem_count();
    let num = widen(&(prev - cur)?.abs()?)?.sum_all()?;
    let (num_sum, mean_prev) = match prev_mean_abs {
        Some(m) => (num.to_dtype(DType::F64)?.to_scalar::<f64>()?, m),
        None => {
            let den = widen(&prev.abs()?)?.sum_all()?;
            let sums = Tensor::stack(&[num, den], 0)?
                .to_dtype(DType::F64)?
                .to_vec1::<f64>()?;
            (sums[0], round_mean(dtype, sums[1], n))
        }
    };
    let mean_diff = round_mean(dtype, num_sum, n);
    Ok(round_quotient(dtype, mean_diff, mean_prev))
}

/// `relative_l1(prev, cur, Some(prev_mean_abs))` plus `mean_abs(cur)`, both read back in one host
/// synchronisation: `cur` is the next reference whenever the call is computed, so its mean is
/// then known without a second transfer. Bit-identical to the two separate calls.
pub fn relative_l1_and_mean(prev: &Tensor, cur: &Tensor, prev_mean_abs: f64) -> Result<(f64, f64)> {
    let dtype = prev.dtype();
    let n = prev.elem_count();
    let num = widen(&(prev - cur)?.abs()?)?.sum_all()?;
    let cur_sum = widen(&cur.abs()?)?.sum_all()?;
    let sums = Tensor::stack(&[num, cur_sum], 0)?
        .to_dtype(DType::F64)?
        .to_vec1::<f64>()?;
    let mean_diff = round_mean(dtype, sums[0], n);
    Ok((
        round_quotient(dtype, mean_diff, prev_mean_abs),
        round_mean(cur.dtype(), sums[1], cur.elem_count()),
    ))
}

/// `x[..., ::k]`: every `k`-th element of the last dimension, as cache-dit strides the probes
/// when its `downsample_factor` is above 1.
pub fn downsample_last_dim(x: &Tensor, k: usize) -> Result<Tensor> {
    if k <= 1 || x.rank() == 0 {
        return Ok(x.clone());
    }
    let last = x.rank() - 1;
    let picks: Vec<u32> = (0..x.dim(last)?).step_by(k).map(|i| i as u32).collect();
    let n = picks.len();
    let picks = Tensor::from_vec(picks, n, x.device())?;
    x.index_select(&picks, last)?.contiguous()
}

/// Whether every element of `t` is finite (no NaN, no infinity): one sum, read back to the host.
/// The sum runs in f32 at least, so only values whose total passes 3.4e38 read as infinite.
pub fn all_finite(t: &Tensor) -> Result<bool> {
    if !t.dtype().is_float() {
        return Ok(true);
    }
    let sum = widen(t)?.sum_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
    Ok(sum.is_finite())
}

/// Reductions run in f32 at least, as torch's do for half types (a bf16 sum would lose the
/// small differences the threshold is about).
fn widen(t: &Tensor) -> Result<Tensor> {
    match t.dtype() {
        DType::F64 | DType::F32 => Ok(t.clone()),
        _ => t.to_dtype(DType::F32),
    }
}

fn round_mean(dtype: DType, sum: f64, n: usize) -> f64 {
    match dtype {
        DType::F64 => sum / n as f64,
        _ => round_to(dtype, (sum as f32) / (n as f32)),
    }
}

fn round_quotient(dtype: DType, num: f64, den: f64) -> f64 {
    match dtype {
        DType::F64 => num / den,
        _ => round_to(dtype, (num as f32) / (den as f32)),
    }
}

/// Rounds an f32 to the model dtype (round to nearest, ties to even) and widens it to f64, the
/// way `.item()` of a bf16/f16/f32 torch scalar does.
pub fn round_to(dtype: DType, x: f32) -> f64 {
    match dtype {
        DType::BF16 => half::bf16::from_f32(x).to_f64(),
        DType::F16 => half::f16::from_f32(x).to_f64(),
        _ => f64::from(x),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn t(v: &[f32], dtype: DType) -> Tensor {
        Tensor::new(v, &Device::Cpu)
            .and_then(|t| t.to_dtype(dtype))
            .unwrap()
    }

    #[test]
    fn matches_the_plain_formula_in_f32() {
        let a = t(&[1.0, -2.0, 3.0, 4.0], DType::F32);
        let b = t(&[1.5, -2.0, 2.0, 4.0], DType::F32);
        let d = relative_l1(&a, &b, None).unwrap();
        assert_eq!(d, f64::from(0.375f32 / 2.5f32));
        let m = mean_abs(&a).unwrap();
        assert_eq!(
            relative_l1_and_mean(&a, &b, m).unwrap(),
            (d, mean_abs(&b).unwrap()),
            "the fused form is bit-identical to the separate calls"
        );
        assert_eq!(relative_l1(&a, &b, Some(m)).unwrap(), d);
    }

    /// docs/algorithm.md §14 numerics vector: a true ratio of 0.0799 is 0.080078125 in bf16 (not < 0.08),
    /// while 0.0795 rounds to 0.07958984375 (< 0.08).
    #[test]
    fn bf16_rounding_flips_the_decision_as_upstream() {
        assert_eq!(round_to(DType::BF16, 0.0799), 0.080078125);
        assert_eq!(round_to(DType::BF16, 0.0795), 0.07958984375);
        // 5000 elements, 799 of them differ by 0.5: mean diff 0.0799, mean prev 1.0.
        let prev = vec![1.0f32; 5000];
        let mut cur = prev.clone();
        cur.iter_mut().take(799).for_each(|x| *x = 1.5);
        let d16 = relative_l1(&t(&prev, DType::BF16), &t(&cur, DType::BF16), None).unwrap();
        assert_eq!(d16, 0.080078125);
        assert!(d16 >= 0.08);
        let d32 = relative_l1(&t(&prev, DType::F32), &t(&cur, DType::F32), None).unwrap();
        assert!(d32 < 0.08, "{d32}");
        cur.iter_mut().skip(795).take(4).for_each(|x| *x = 1.0);
        let d16 = relative_l1(&t(&prev, DType::BF16), &t(&cur, DType::BF16), None).unwrap();
        assert_eq!(d16, 0.07958984375);
    }

    #[test]
    fn downsampling_takes_every_kth_of_the_last_dim() {
        let x = Tensor::arange(0f32, 10., &Device::Cpu)
            .and_then(|t| t.reshape((2, 5)))
            .unwrap();
        let y = downsample_last_dim(&x, 4).unwrap();
        assert_eq!(y.to_vec2::<f32>().unwrap(), vec![vec![0., 4.], vec![5., 9.]]);
        assert_eq!(downsample_last_dim(&x, 1).unwrap().dims(), &[2, 5]);
    }

    #[test]
    fn zero_reference_gives_a_non_finite_diff() {
        let z = t(&[0.0, 0.0], DType::F32);
        let d = relative_l1(&z, &t(&[1.0, 0.0], DType::F32), None).unwrap();
        assert!(d.is_infinite());
        assert!(relative_l1(&z, &z, None).unwrap().is_nan());
    }
}
