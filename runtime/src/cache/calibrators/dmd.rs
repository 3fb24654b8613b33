//! DMD, Dynamic Mode Decomposition (docs/algorithm.md §7.3): fit a linear propagator to the last evenly
//! spaced computed values and forecast by eigenvalue powers; below four such values, a
//! first-order Taylor fallback.
//!
//! # How the fit is computed
//!
//! cache-dit stacks the window into a `d × n` f64 matrix per batch item (`d` = elements per
//! item), takes an economy SVD of its first `n - 1` columns, eigendecomposes the projected
//! propagator and solves a least-squares problem for the mode amplitudes. Every one of those
//! quantities depends on the window only through its Gram matrix `G = Yᵀ Y` (`n × n`), and the
//! forecast is a linear combination of the window's columns. So this port computes `G` on the
//! tensors' device (f64), runs the same algorithm on the host on an `n × n` matrix `Z` with
//! `Zᵀ Z = G` (from `G`'s eigendecomposition), and forms the forecast as `Σ a_j Y_j` on the
//! device: the same forecast up to rounding, without moving `d`-sized data to the host and
//! without keeping a `d × r` complex mode matrix per window.
//!
//! Precision: singular values come from `G`, so those below `~1e-8` of the largest are noise
//! (the automatic rank keeps only those above `1e-4`, so the choice is unaffected). The three
//! `dmd_svd_precision`s compute the same exact decomposition: "medium" and "high" are LAPACK
//! drivers of one economy SVD, and "low" (`torch.svd_lowrank` with `q = n - 1`, one power
//! iteration, seeded) spans the full column space, so it equals the exact SVD up to rounding.
//! torch's random projection cannot be reproduced bit for bit outside torch; the name keeps the
//! precision's initial (`DMDH6l`) as upstream.

use std::collections::VecDeque;

use candle_core::{DType, Result, Shape, Tensor};
use num_complex::Complex64 as C64;

use super::linalg::{eig, lstsq, sym_eigen};
use super::series::{StepClock, difference, held, taylor};
use crate::cache::config::calibrator::CalibratorTiming;
use crate::cache::store::MiddleStore;

/// Evenly spaced snapshots needed before the exponential fit engages.
const MIN_FIT_SNAPSHOTS: usize = 4;
/// Singular values below this fraction of the largest are dropped by the automatic rank.
const RANK_CUTOFF: f64 = 1e-4;

/// cache-dit's `DMDState` for one stream (`n_derivatives = 1`): at most `history + 2` tensors.
#[derive(Debug)]
pub struct Dmd {
    history: usize,
    rank: usize,
    ridge: f64,
    clock: StepClock,
    last_update: i64,
    snapshots: VecDeque<(i64, Tensor)>,
    ladder: Vec<Tensor>,
    /// The ladder of the update before (cache-dit's off-by-one fallback differences with it).
    prev_ladder: Vec<Tensor>,
    fit: Option<(FitKey, Option<Vec<ItemFit>>)>,
}

/// What a fit depends on: the newest snapshot's step, the window length, the spacing.
type FitKey = (i64, usize, i64);

/// The fit of one batch item: the forecast at horizon `k` weighs the window's columns `1..n` by
/// `Re(M (λ^k ⊙ b))`.
#[derive(Debug, Clone)]
struct ItemFit {
    /// `m × r`, row-major: `V_r diag(1 / (S_r + ridge)) W`.
    modes: Vec<C64>,
    eigenvalues: Vec<C64>,
    amplitudes: Vec<C64>,
}

impl ItemFit {
    fn weights(&self, k: f64) -> Vec<f64> {
        let r = self.eigenvalues.len();
        let scaled: Vec<C64> = self
            .eigenvalues
            .iter()
            .zip(&self.amplitudes)
            .map(|(l, b)| power(*l, k) * b)
            .collect();
        self.modes
            .chunks(r)
            .map(|row| row.iter().zip(&scaled).map(|(m, s)| m * s).sum::<C64>().re)
            .collect()
    }
}

/// `λ^k` on the principal branch, as torch's complex `pow` (`0^k` is 0 for `k > 0`).
fn power(l: C64, k: f64) -> C64 {
    if l.norm() == 0.0 {
        return C64::new(if k == 0.0 { 1.0 } else { 0.0 }, 0.0);
    }
    l.powf(k)
}

impl Dmd {
    /// A state keeping `history` snapshots, fitting rank `rank` (0: from the spectrum) with
    /// `ridge` added to the singular values.
    pub fn new(history: usize, rank: usize, ridge: f64, timing: CalibratorTiming) -> Self {
        Self {
            history: history.max(1),
            rank,
            ridge,
            clock: StepClock::new(timing),
            last_update: -1,
            snapshots: VecDeque::new(),
            ladder: Vec::new(),
            prev_ladder: Vec::new(),
            fit: None,
        }
    }

    fn clear(&mut self) {
        self.last_update = -1;
        self.snapshots.clear();
        self.ladder.clear();
        self.prev_ladder.clear();
        self.fit = None;
    }

    /// The longest evenly spaced suffix of the snapshots: its length and spacing.
    fn uniform_tail(&self) -> Option<(usize, i64)> {
        let steps: Vec<i64> = self.snapshots.iter().map(|(s, _)| *s).collect();
        let n = steps.len();
        if n < 2 {
            return None;
        }
        let spacing = steps[n - 1] - steps[n - 2];
        if spacing <= 0 {
            return None;
        }
        let len = 1 + steps
            .windows(2)
            .rev()
            .take_while(|w| w[1] - w[0] == spacing)
            .count();
        Some((len, spacing))
    }

    /// Fits every batch item of the last `len` snapshots; `None` if any item is degenerate.
    fn fit_window(&self, len: usize) -> Result<Option<Vec<ItemFit>>> {
        let window: Vec<&Tensor> = self
            .snapshots
            .iter()
            .skip(self.snapshots.len() - len)
            .map(|(_, y)| y)
            .collect();
        let newest = window[len - 1];
        let batch = if newest.rank() > 1 { newest.dim(0)? } else { 1 };
        let per_item = newest.elem_count() / batch.max(1);
        let stacked = Tensor::stack(&window, 0)?
            .to_dtype(DType::F64)?
            .reshape((len, batch, per_item))?
            .transpose(0, 1)?
            .contiguous()?;
        let gram = stacked.matmul(&stacked.t()?)?.to_vec3::<f64>()?;
        let mut fits = Vec::with_capacity(batch);
        for g in gram {
            let g: Vec<f64> = g.into_iter().flatten().collect();
            match fit_item(&g, len, per_item, self.rank, self.ridge) {
                Some(f) => fits.push(f),
                None => return Ok(None),
            }
        }
        Ok(Some(fits))
    }

    /// The DMD forecast at horizon `k` (in snapshot spacings) from the last `len` snapshots, or
    /// `None` if a weight or (after the cast to the stream's dtype) the forecast is not finite.
    fn forecast(&self, fits: &[ItemFit], len: usize, k: f64) -> Result<Option<Tensor>> {
        let newest = &self.snapshots[self.snapshots.len() - 1].1;
        let batch = fits.len();
        let weights: Vec<Vec<f64>> = fits.iter().map(|f| f.weights(k)).collect();
        if weights.iter().flatten().any(|w| !w.is_finite()) {
            return Ok(None);
        }
        let device = newest.device();
        let per_item = newest.elem_count() / batch.max(1);
        let columns = self.snapshots.iter().skip(self.snapshots.len() - len + 1);
        let mut out: Option<Tensor> = None;
        for (j, (_, y)) in columns.enumerate() {
            let w: Vec<f64> = weights.iter().map(|item| item[j]).collect();
            let w = Tensor::from_vec(w, (batch, 1), device)?;
            let term = y
                .to_dtype(DType::F64)?
                .reshape((batch, per_item))?
                .broadcast_mul(&w)?;
            out = Some(match out {
                Some(acc) => (acc + term)?,
                None => term,
            });
        }
        let Some(out) = out else {
            return Ok(None);
        };
        let out = out.reshape(newest.shape())?.to_dtype(newest.dtype())?;
        let total = out.to_dtype(DType::F64)?.sum_all()?.to_scalar::<f64>()?;
        Ok(total.is_finite().then_some(out))
    }
}

/// cache-dit's `_dmd_fit_one` on the Gram matrix `g` (`n × n`) of one item's window of `n`
/// snapshots of `d` elements.
fn fit_item(g: &[f64], n: usize, d: usize, rank: usize, ridge: f64) -> Option<ItemFit> {
    if g.iter().any(|x| !x.is_finite()) {
        return None;
    }
    let m = n - 1;
    // Z (n × n) with Zᵀ Z = G: the window in an orthonormal basis of its column space.
    let (mu, p) = sym_eigen(g, n);
    let z = |i: usize, j: usize| mu[i].max(0.0).sqrt() * p[j * n + i];
    // Economy SVD of X = Y[:, :m] from XᵀX = G[:m, :m].
    let gx: Vec<f64> = (0..m).flat_map(|i| (0..m).map(move |j| g[i * n + j])).collect();
    let (s2, v) = sym_eigen(&gx, m);
    let s: Vec<f64> = s2.iter().map(|x| x.max(0.0).sqrt()).collect();
    let available = d.min(m);
    let auto = s
        .iter()
        .take(available)
        .filter(|&&x| x > s[0] * RANK_CUTOFF)
        .count();
    let r = if rank > 0 { rank } else { auto.max(1) }.clamp(1, available.max(1));
    let sinv: Vec<f64> = s.iter().take(r).map(|x| 1.0 / (x + ridge)).collect();
    // X V_r and X' V_r in Z coordinates (n × r).
    let xv = |shift: usize| -> Vec<f64> {
        (0..n)
            .flat_map(|i| (0..r).map(move |c| (i, c)))
            .map(|(i, c)| (0..m).map(|j| z(i, j + shift) * v[j * m + c]).sum())
            .collect()
    };
    let (x_v, xp_v) = (xv(0), xv(1));
    // Ã = U_rᵀ X' V_r diag(Sinv), with U_r = X V_r / S_r (a zero singular value: zero column).
    let mut atil = vec![C64::new(0.0, 0.0); r * r];
    for a in 0..r {
        for b in 0..r {
            let dot: f64 = (0..n).map(|i| x_v[i * r + a] * xp_v[i * r + b]).sum();
            let u_scale = if s[a] > 0.0 { 1.0 / s[a] } else { 0.0 };
            atil[a * r + b] = C64::new(dot * u_scale * sinv[b], 0.0);
        }
    }
    let (eigenvalues, w) = eig(&atil, r)?;
    // Φ = X' V_r diag(Sinv) W (n × r); b = lstsq(Φ, newest snapshot).
    let mul_w = |rows: usize, left: &dyn Fn(usize, usize) -> f64| -> Vec<C64> {
        (0..rows)
            .flat_map(|i| (0..r).map(move |c| (i, c)))
            .map(|(i, c)| (0..r).map(|t| w[t * r + c] * (left(i, t) * sinv[t])).sum())
            .collect()
    };
    let phi = mul_w(n, &|i, t| xp_v[i * r + t]);
    let newest: Vec<C64> = (0..n).map(|i| C64::new(z(i, n - 1), 0.0)).collect();
    let amplitudes = lstsq(&phi, n, r, &newest)?;
    let modes = mul_w(m, &|j, t| v[j * m + t]);
    Some(ItemFit {
        modes,
        eigenvalues,
        amplitudes,
    })
}

impl MiddleStore for Dmd {
    fn update(&mut self, value: Tensor) -> Result<()> {
        self.clock.start();
        if self
            .snapshots
            .back()
            .is_some_and(|(_, y)| y.shape() != value.shape())
        {
            self.clock.restart();
            self.clear();
        }
        let now = self.clock.now();
        let window = now - self.last_update;
        // cache-dit differences against the ladder of the update before the previous one.
        let base = if self.clock.corrected() {
            &self.ladder
        } else {
            &self.prev_ladder
        };
        let mut ladder = vec![value.clone()];
        if let Some(b) = base.first().filter(|_| now > 1 && window > 0) {
            ladder.push(difference(&value, b, window)?);
        }
        if self.clock.corrected() {
            self.ladder = ladder;
        } else {
            self.prev_ladder = std::mem::replace(&mut self.ladder, ladder);
        }
        self.snapshots.push_back((now, value));
        while self.snapshots.len() > self.history {
            self.snapshots.pop_front();
        }
        self.last_update = now;
        self.fit = None;
        Ok(())
    }

    fn approximate(&mut self) -> Result<Option<Tensor>> {
        let now = self.clock.now();
        let Some(&(last_step, _)) = self.snapshots.back() else {
            return Ok(None);
        };
        match self.uniform_tail() {
            Some((len, spacing)) if len >= MIN_FIT_SNAPSHOTS => {
                let key = (last_step, len, spacing);
                if self.fit.as_ref().is_none_or(|(k, _)| *k != key) {
                    self.fit = Some((key, self.fit_window(len)?));
                }
                let k = (now - last_step) as f64 / spacing as f64;
                if let Some((_, Some(fits))) = &self.fit
                    && let Some(out) = self.forecast(fits, len, k)?
                {
                    return Ok(Some(out));
                }
                Ok(self.snapshots.back().map(|(_, y)| y.clone()))
            }
            _ => taylor(&self.ladder, now - self.last_update),
        }
    }

    fn shape(&self) -> Option<&Shape> {
        self.snapshots.back().map(|(_, y)| y.shape())
    }

    fn mark_step_begin(&mut self) {
        self.clock.tick();
    }

    fn reset(&mut self) {
        self.clock.reset();
        self.clear();
    }

    fn held(&self) -> Vec<&Tensor> {
        held(
            self.snapshots
                .iter()
                .map(|(_, y)| y)
                .chain(&self.ladder)
                .chain(&self.prev_ladder),
        )
    }
}
