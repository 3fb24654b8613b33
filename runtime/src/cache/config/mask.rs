//! The step-computation-mask generator of cache-dit (`steps_mask`, docs/algorithm.md §5).

use crate::cache::config::error::MaskError;
use crate::limits::check_steps;

/// A predefined step-mask policy: how aggressively mask-0 (cacheable) steps are spread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaskPolicy {
    /// Fewest cacheable steps.
    Slow,
    /// cache-dit's default.
    Medium,
    /// More cacheable steps.
    Fast,
    /// Most cacheable steps.
    Ultra,
}

impl MaskPolicy {
    /// All policies, in cache-dit's order.
    pub const ALL: [MaskPolicy; 4] = [Self::Slow, Self::Medium, Self::Fast, Self::Ultra];

    /// cache-dit's spelling.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Slow => "slow",
            Self::Medium => "medium",
            Self::Fast => "fast",
            Self::Ultra => "ultra",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl std::str::FromStr for MaskPolicy {
    type Err = MaskError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| MaskError::UnknownPolicy(s.to_string()))
    }
}

/// Bins as (compute runs, cache runs).
type Bins = (Vec<usize>, Vec<usize>);

/// Alternates `compute_bins[k]` ones and `cache_bins[k]` zeros until `total_steps` are covered
/// (default: the bins' sum), truncated to `total_steps`. The last step is not forced to 1.
pub fn steps_mask_from_bins(
    compute_bins: &[usize],
    cache_bins: &[usize],
    total_steps: Option<usize>,
) -> Result<Vec<u8>, MaskError> {
    // Checked: bins come from users and a wrapped sum would pass the length check below.
    let covered = compute_bins
        .iter()
        .chain(cache_bins)
        .try_fold(0usize, |acc, &b| acc.checked_add(b))
        .ok_or(MaskError::TooManySteps(usize::MAX))?;
    let total = match total_steps {
        Some(t) if covered < t => return Err(MaskError::BinsTooShort { covered, total: t }),
        Some(t) => t,
        None => covered,
    };
    let total = check_steps(total, MaskError::TooManySteps)?;
    let covered = covered.min(total);
    let mut mask = Vec::with_capacity(covered);
    let (mut compute, mut cache) = (compute_bins.iter(), cache_bins.iter());
    while mask.len() < total {
        if let Some(&c) = compute.next() {
            mask.extend(std::iter::repeat_n(1u8, c));
        }
        if let Some(&c) = cache.next() {
            mask.extend(std::iter::repeat_n(0u8, c));
        }
    }
    mask.truncate(total);
    Ok(mask)
}

/// cache-dit's predefined mask for `total_steps` steps: the 28-step tables scaled up, truncated
/// or replaced by the small-step tables, with the last step always computed.
pub fn steps_mask(total_steps: usize, policy: MaskPolicy) -> Result<Vec<u8>, MaskError> {
    // Before the bins are scaled up step by step: 10^12 steps would loop for minutes.
    check_steps(total_steps, MaskError::TooManySteps)?;
    let (compute, cache) = policy_bins(total_steps, policy)?;
    let mut mask = steps_mask_from_bins(&compute, &cache, Some(total_steps))?;
    if let Some(last) = mask.last_mut() {
        *last = 1;
    }
    Ok(mask)
}

fn policy_bins(total: usize, policy: MaskPolicy) -> Result<Bins, MaskError> {
    let table: [Bins; 4] = if total >= 16 {
        [
            (vec![8, 3, 3, 2, 1, 1], vec![1, 2, 2, 2, 3]),
            (vec![6, 2, 2, 2, 2, 1], vec![1, 3, 3, 3, 3]),
            (vec![6, 1, 1, 1, 1, 1], vec![1, 3, 4, 5, 4]),
            (vec![4, 1, 1, 1, 1], vec![2, 5, 6, 7]),
        ]
    } else if total == 9 {
        // cache-dit's special table for Z-Image-Turbo's 9 steps.
        [
            (vec![5, 2, 1], vec![1]),
            (vec![5, 1, 1], vec![1, 1]),
            (vec![4, 1, 1], vec![1, 2]),
            (vec![3, 1, 1], vec![2, 2]),
        ]
    } else if total > 8 && total < 16 {
        [
            (vec![4, 2, 2, 2, 1], vec![1, 1, 1, 1]),
            (vec![4, 2, 1, 1, 1], vec![1, 1, 2, 2]),
            (vec![3, 1, 1, 1, 1], vec![1, 2, 2, 3]),
            (vec![2, 1, 1, 1, 1], vec![1, 2, 3, 3]),
        ]
    } else if total == 8 {
        [
            (vec![5, 1, 1], vec![1]),
            (vec![4, 1, 1], vec![1, 1]),
            (vec![3, 1, 1], vec![1, 2]),
            (vec![2, 1, 1], vec![2, 2]),
        ]
    } else if total == 4 {
        return Ok((vec![2, 1], vec![1]));
    } else if total == 6 {
        return Ok((vec![3, 1], vec![2]));
    } else {
        return Err(MaskError::UnsupportedSteps(total));
    };
    let [slow, medium, fast, ultra] = table;
    let mut bins = [slow, medium, fast, ultra]
        .into_iter()
        .nth(policy.index())
        .ok_or(MaskError::UnsupportedSteps(total))?;
    if total > 28 {
        expand(&mut bins, total);
    }
    truncate(&mut bins, total);
    Ok(bins)
}

fn sum(bins: &Bins) -> usize {
    bins.0.iter().sum::<usize>() + bins.1.iter().sum::<usize>()
}

/// Grows the 28-step bins towards `total` in the same ratio, as cache-dit does: each compute
/// then cache bin grows by `max(int(orig * total/28 * 0.5), 1)` until the sum covers `total`.
fn expand(bins: &mut Bins, total: usize) {
    let (orig_compute, orig_cache) = bins.clone();
    let pairs = orig_compute.len().min(orig_cache.len());
    let grow = |orig: usize| ((orig as f64 * (total as f64 / 28.0 * 0.5)) as usize).max(1);
    while sum(bins) < total {
        for i in 0..pairs {
            bins.0[i] += grow(orig_compute[i]);
            if sum(bins) >= total {
                return;
            }
            bins.1[i] += grow(orig_cache[i]);
            if sum(bins) >= total {
                return;
            }
        }
        if let Some(last) = bins.0.last_mut() {
            *last += 1;
        }
    }
}

/// Shrinks the bins to `total` steps: last cache bin, then last compute bin, popping empties.
fn truncate(bins: &mut Bins, total: usize) {
    while sum(bins) > total {
        if let Some(last) = bins.1.last_mut() {
            *last -= 1;
            if *last == 0 {
                bins.1.pop();
            }
        }
        if sum(bins) <= total {
            break;
        }
        if let Some(last) = bins.0.last_mut() {
            *last -= 1;
            if *last == 0 {
                bins.0.pop();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(mask: &[u8]) -> String {
        mask.iter().map(|m| char::from(b'0' + m)).collect()
    }

    fn all_policies(n: usize) -> Vec<String> {
        MaskPolicy::ALL
            .iter()
            .map(|&p| render(&steps_mask(n, p).unwrap()))
            .collect()
    }

    /// Every mask listed in docs/algorithm.md §5, verified against cache-dit.
    #[test]
    fn reproduces_every_mask_of_the_spec() {
        let expected: &[(usize, [&str; 4])] = &[
            (4, ["1101", "1101", "1101", "1101"]),
            (6, ["111001", "111001", "111001", "111001"]),
            (8, ["11111011", "11110101", "11101001", "11001001"]),
            (9, ["111110111", "111110101", "111101001", "111001001"]),
            (10, ["1111011111", "1111011011", "1110100101", "1101001001"]),
            (
                16,
                [
                    "1111111101110011",
                    "1111110110001001",
                    "1111100000000001",
                    "1100000000000001",
                ],
            ),
            (
                20,
                [
                    "11111111011100111001",
                    "11111101100011000101",
                    "11111101000000000001",
                    "11110000000000000001",
                ],
            ),
            (
                28,
                [
                    "1111111101110011100110010001",
                    "1111110110001100011000110001",
                    "1111110100010000100000100001",
                    "1111001000001000000100000001",
                ],
            ),
            (
                50,
                [
                    "11111111111111111111110011111000111110001110001101",
                    "11111111111111110011100000111000001110000011100001",
                    "11111111111001100000110000000110000000001100000001",
                    "11111110001100000000011000000000001100000000000001",
                ],
            ),
        ];
        for (n, masks) in expected {
            assert_eq!(all_policies(*n), masks.to_vec(), "N = {n}");
        }
    }

    #[test]
    fn custom_bins() {
        assert_eq!(
            render(&steps_mask_from_bins(&[4, 2], &[1, 3], None).unwrap()),
            "1111011000"
        );
        assert_eq!(
            render(&steps_mask_from_bins(&[2, 1, 1], &[2, 2], Some(8)).unwrap()),
            "11001001"
        );
        assert_eq!(
            steps_mask_from_bins(&[1], &[1], Some(5)),
            Err(MaskError::BinsTooShort { covered: 2, total: 5 })
        );
    }

    #[test]
    fn rejects_unsupported_inputs() {
        assert_eq!(
            steps_mask(5, MaskPolicy::Fast),
            Err(MaskError::UnsupportedSteps(5))
        );
        assert_eq!(
            steps_mask(0, MaskPolicy::Fast),
            Err(MaskError::UnsupportedSteps(0))
        );
        assert!("turbo".parse::<MaskPolicy>().is_err());
        assert_eq!("ultra".parse::<MaskPolicy>(), Ok(MaskPolicy::Ultra));
    }

    #[test]
    fn every_supported_length_ends_computed() {
        for n in [4, 6].into_iter().chain(8..=120) {
            for p in MaskPolicy::ALL {
                let m = steps_mask(n, p).unwrap();
                assert_eq!(m.len(), n);
                assert_eq!(m.last(), Some(&1));
            }
        }
    }
}
