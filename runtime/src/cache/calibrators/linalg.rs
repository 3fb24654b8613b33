//! Dense linear algebra on the small matrices of a DMD fit (at most `history × history`), in
//! f64 on the host: a symmetric eigendecomposition (cyclic Jacobi), a general complex
//! eigendecomposition (Hessenberg reduction, shifted QR to Schur form, back-substitution), and
//! complex least squares (Householder QR). Matrices are row-major slices.

use num_complex::Complex64 as C64;

const EPS: f64 = f64::EPSILON;

/// Eigenvalues (descending) and eigenvectors (columns of a row-major `n × n` matrix) of the
/// symmetric `n × n` matrix `a`.
pub(crate) fn sym_eigen(a: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut a = a.to_vec();
    let mut v = vec![0.0; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    let scale: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    for _sweep in 0..64 {
        let off: f64 = (0..n)
            .flat_map(|p| (p + 1..n).map(move |q| (p, q)))
            .map(|(p, q)| a[p * n + q] * a[p * n + q])
            .sum::<f64>()
            .sqrt();
        if off <= EPS * scale * 1e-2 || off == 0.0 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (kp, kq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * kp - s * kq;
                    a[k * n + q] = s * kp + c * kq;
                }
                for k in 0..n {
                    let (pk, qk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * pk - s * qk;
                    a[q * n + k] = s * pk + c * qk;
                }
                for k in 0..n {
                    let (kp, kq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * kp - s * kq;
                    v[k * n + q] = s * kp + c * kq;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| a[j * n + j].total_cmp(&a[i * n + i]));
    let values = order.iter().map(|&i| a[i * n + i]).collect();
    let mut vectors = vec![0.0; n * n];
    for (col, &i) in order.iter().enumerate() {
        for k in 0..n {
            vectors[k * n + col] = v[k * n + i];
        }
    }
    (values, vectors)
}

/// The rotation `[c s; -conj(s) c]` (real `c`) that maps `(a, b)` to `(r, 0)`.
fn givens(a: C64, b: C64) -> (f64, C64) {
    let (na, nb) = (a.norm(), b.norm());
    if nb == 0.0 {
        return (1.0, C64::new(0.0, 0.0));
    }
    if na == 0.0 {
        return (0.0, b.conj() / nb);
    }
    let r = na.hypot(nb);
    (na / r, (a / na) * b.conj() / r)
}

/// Eigenvalues and eigenvectors (columns of a row-major `n × n` matrix, unit norm) of the
/// complex `n × n` matrix `a`, or `None` if the QR iteration does not converge.
pub(crate) fn eig(a: &[C64], n: usize) -> Option<(Vec<C64>, Vec<C64>)> {
    let zero = C64::new(0.0, 0.0);
    let mut h = a.to_vec();
    let mut q = vec![zero; n * n];
    for i in 0..n {
        q[i * n + i] = C64::new(1.0, 0.0);
    }
    // Householder reduction to upper Hessenberg form, H = Q^H A Q.
    for k in 0..n.saturating_sub(2) {
        let mut v: Vec<C64> = (k + 1..n).map(|i| h[i * n + k]).collect();
        let norm = v.iter().map(|x| x.norm_sqr()).sum::<f64>().sqrt();
        if norm == 0.0 {
            continue;
        }
        let phase = if v[0].norm() == 0.0 {
            C64::new(1.0, 0.0)
        } else {
            v[0] / v[0].norm()
        };
        v[0] += phase * norm;
        let vn = v.iter().map(|x| x.norm_sqr()).sum::<f64>().sqrt();
        v.iter_mut().for_each(|x| *x /= vn);
        for j in 0..n {
            let s: C64 = (0..v.len()).map(|i| v[i].conj() * h[(k + 1 + i) * n + j]).sum();
            for (i, vi) in v.iter().enumerate() {
                h[(k + 1 + i) * n + j] -= *vi * s * 2.0;
            }
        }
        for m in [&mut h, &mut q] {
            for i in 0..n {
                let s: C64 = (0..v.len()).map(|j| m[i * n + k + 1 + j] * v[j]).sum();
                for (j, vj) in v.iter().enumerate() {
                    m[i * n + k + 1 + j] -= s * vj.conj() * 2.0;
                }
            }
        }
    }
    for i in 2..n {
        for j in 0..i - 1 {
            h[i * n + j] = zero;
        }
    }
    let norm = h
        .iter()
        .map(|x| x.norm_sqr())
        .sum::<f64>()
        .sqrt()
        .max(f64::MIN_POSITIVE);
    // Shifted QR iteration to upper triangular (Schur) form, T = Q^H A Q.
    let mut hi = n.saturating_sub(1);
    let mut iterations = 0;
    while hi > 0 {
        let mut l = hi;
        while l > 0 {
            let s = h[(l - 1) * n + l - 1].norm() + h[l * n + l].norm();
            let s = if s == 0.0 { norm } else { s };
            if h[l * n + l - 1].norm() <= EPS * s {
                h[l * n + l - 1] = zero;
                break;
            }
            l -= 1;
        }
        if l == hi {
            hi -= 1;
            iterations = 0;
            continue;
        }
        iterations += 1;
        if iterations > 200 {
            return None;
        }
        let (a11, a12) = (h[(hi - 1) * n + hi - 1], h[(hi - 1) * n + hi]);
        let (a21, a22) = (h[hi * n + hi - 1], h[hi * n + hi]);
        let mu = if iterations % 11 == 10 {
            // Exceptional shift to break cycles.
            a22 + C64::new(1.5 * a21.norm(), 0.0)
        } else {
            let half = (a11 - a22) * 0.5;
            let root = (half * half + a12 * a21).sqrt();
            let (m1, m2) = (a22 + half + root, a22 + half - root);
            if (m1 - a22).norm() <= (m2 - a22).norm() {
                m1
            } else {
                m2
            }
        };
        for i in l..=hi {
            h[i * n + i] -= mu;
        }
        let mut rotations = Vec::with_capacity(hi - l);
        for k in l..hi {
            let (c, s) = givens(h[k * n + k], h[(k + 1) * n + k]);
            for j in k..n {
                let (x, y) = (h[k * n + j], h[(k + 1) * n + j]);
                h[k * n + j] = x * c + s * y;
                h[(k + 1) * n + j] = -s.conj() * x + y * c;
            }
            h[(k + 1) * n + k] = zero;
            rotations.push((k, c, s));
        }
        for &(k, c, s) in &rotations {
            for i in 0..=(k + 1).min(hi) {
                let (x, y) = (h[i * n + k], h[i * n + k + 1]);
                h[i * n + k] = x * c + y * s.conj();
                h[i * n + k + 1] = -x * s + y * c;
            }
            for i in 0..n {
                let (x, y) = (q[i * n + k], q[i * n + k + 1]);
                q[i * n + k] = x * c + y * s.conj();
                q[i * n + k + 1] = -x * s + y * c;
            }
        }
        for i in l..=hi {
            h[i * n + i] += mu;
        }
    }
    let values: Vec<C64> = (0..n).map(|i| h[i * n + i]).collect();
    // Eigenvectors of T by back-substitution, then W = Q Y.
    let small = (EPS * norm).max(f64::MIN_POSITIVE);
    let mut w = vec![zero; n * n];
    for k in 0..n {
        let mut y = vec![zero; n];
        y[k] = C64::new(1.0, 0.0);
        for i in (0..k).rev() {
            let sum: C64 = (i + 1..=k).map(|j| h[i * n + j] * y[j]).sum();
            let mut den = h[i * n + i] - values[k];
            if den.norm() < small {
                den = C64::new(small, 0.0);
            }
            y[i] = -sum / den;
        }
        let col: Vec<C64> = (0..n)
            .map(|i| (0..=k).map(|j| q[i * n + j] * y[j]).sum())
            .collect();
        let cn = col.iter().map(|x| x.norm_sqr()).sum::<f64>().sqrt();
        if !(cn.is_finite() && cn > 0.0) {
            return None;
        }
        for i in 0..n {
            w[i * n + k] = col[i] / cn;
        }
    }
    Some((values, w))
}

/// The least-squares solution of `a x = y` for the row-major `m × n` matrix `a` (`m >= n`), or
/// `None` when `a` is rank deficient (relative tolerance `eps · max(m, n)`, as torch's default).
pub(crate) fn lstsq(a: &[C64], m: usize, n: usize, y: &[C64]) -> Option<Vec<C64>> {
    if m < n {
        return None;
    }
    let mut a = a.to_vec();
    let mut y = y.to_vec();
    for k in 0..n {
        let mut v: Vec<C64> = (k..m).map(|i| a[i * n + k]).collect();
        let norm = v.iter().map(|x| x.norm_sqr()).sum::<f64>().sqrt();
        if norm == 0.0 {
            return None;
        }
        let phase = if v[0].norm() == 0.0 {
            C64::new(1.0, 0.0)
        } else {
            v[0] / v[0].norm()
        };
        v[0] += phase * norm;
        let vn = v.iter().map(|x| x.norm_sqr()).sum::<f64>().sqrt();
        v.iter_mut().for_each(|x| *x /= vn);
        for j in k..n {
            let s: C64 = (0..v.len()).map(|i| v[i].conj() * a[(k + i) * n + j]).sum();
            for (i, vi) in v.iter().enumerate() {
                a[(k + i) * n + j] -= *vi * s * 2.0;
            }
        }
        let s: C64 = (0..v.len()).map(|i| v[i].conj() * y[k + i]).sum();
        for (i, vi) in v.iter().enumerate() {
            y[k + i] -= *vi * s * 2.0;
        }
    }
    let largest = (0..n).map(|k| a[k * n + k].norm()).fold(0.0, f64::max);
    let tolerance = EPS * m.max(n) as f64 * largest;
    if (0..n).any(|k| a[k * n + k].norm() <= tolerance) {
        return None;
    }
    let mut x = vec![C64::new(0.0, 0.0); n];
    for k in (0..n).rev() {
        let sum: C64 = (k + 1..n).map(|j| a[k * n + j] * x[j]).sum();
        x[k] = (y[k] - sum) / a[k * n + k];
    }
    Some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(re: f64, im: f64) -> C64 {
        C64::new(re, im)
    }

    #[test]
    fn symmetric_eigen_reconstructs() {
        let a = [4.0, 1.0, 2.0, 1.0, 3.0, 0.5, 2.0, 0.5, 1.0];
        let (vals, vecs) = sym_eigen(&a, 3);
        assert!(vals.windows(2).all(|w| w[0] >= w[1]));
        for k in 0..3 {
            for i in 0..3 {
                let av: f64 = (0..3).map(|j| a[i * 3 + j] * vecs[j * 3 + k]).sum();
                assert!((av - vals[k] * vecs[i * 3 + k]).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn eig_finds_complex_pairs_and_vectors() {
        // A rotation-with-decay block and a real mode: eigenvalues 0.9 ± 0.3i and 0.5.
        let a = [
            c(0.9, 0.),
            c(-0.3, 0.),
            c(0.2, 0.),
            c(0.3, 0.),
            c(0.9, 0.),
            c(0.1, 0.),
            c(0., 0.),
            c(0., 0.),
            c(0.5, 0.),
        ];
        let (vals, w) = eig(&a, 3).unwrap();
        let mut found: Vec<(f64, f64)> = vals.iter().map(|v| (v.re, v.im)).collect();
        found.sort_by(|x, y| x.1.total_cmp(&y.1));
        let want = [(0.9, -0.3), (0.5, 0.0), (0.9, 0.3)];
        for (f, w) in found.iter().zip(want) {
            assert!(
                (f.0 - w.0).abs() < 1e-12 && (f.1 - w.1).abs() < 1e-12,
                "{found:?}"
            );
        }
        for k in 0..3 {
            for i in 0..3 {
                let av: C64 = (0..3).map(|j| a[i * 3 + j] * w[j * 3 + k]).sum();
                assert!((av - vals[k] * w[i * 3 + k]).norm() < 1e-12);
            }
        }
    }

    #[test]
    fn lstsq_solves_overdetermined_and_rejects_rank_deficient() {
        let a = [c(1., 0.), c(0., 0.), c(0., 0.), c(1., 1.), c(1., 0.), c(1., 0.)];
        let x_true = [c(2., -1.), c(0.5, 0.25)];
        let y: Vec<C64> = (0..3)
            .map(|i| a[i * 2] * x_true[0] + a[i * 2 + 1] * x_true[1])
            .collect();
        let x = lstsq(&a, 3, 2, &y).unwrap();
        assert!((x[0] - x_true[0]).norm() < 1e-12 && (x[1] - x_true[1]).norm() < 1e-12);
        let singular = [c(1., 0.), c(2., 0.), c(2., 0.), c(4., 0.)];
        assert!(lstsq(&singular, 2, 2, &[c(1., 0.), c(2., 0.)]).is_none());
    }
}
