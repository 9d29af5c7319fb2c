//! Small statistics: exact percentiles of a sample and the two-sample
//! Kolmogorov–Smirnov test with its asymptotic p-value.

/// The `p`-th percentile (0–100) of `xs` by nearest rank on the sorted sample.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A sorted copy.
pub fn sorted(xs: &[f64]) -> Vec<f64> {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    v
}

/// Two-sample KS statistic `D = sup |F₁ − F₂|` of two sorted samples.
pub fn ks_statistic(a: &[f64], b: &[f64]) -> f64 {
    let (n, m) = (a.len() as f64, b.len() as f64);
    let (mut i, mut j, mut d) = (0usize, 0usize, 0.0f64);
    while i < a.len() && j < b.len() {
        let x = a[i].min(b[j]);
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        d = d.max((i as f64 / n - j as f64 / m).abs());
    }
    d
}

/// Kolmogorov survival function `Q(λ) = 2 Σ (−1)^{k−1} e^{−2k²λ²}`.
fn q_ks(lambda: f64) -> f64 {
    if lambda < 0.2 {
        return 1.0;
    }
    let mut sum = 0.0;
    let mut sign = 1.0;
    for k in 1..=200 {
        let k = f64::from(k);
        let term = sign * (-2.0 * k * k * lambda * lambda).exp();
        sum += term;
        if term.abs() < 1e-12 {
            break;
        }
        sign = -sign;
    }
    (2.0 * sum).clamp(0.0, 1.0)
}

/// Asymptotic p-value of `D` for sample sizes `n`, `m` (with the
/// Stephens small-sample correction used by Numerical Recipes).
pub fn ks_p_value(d: f64, n: usize, m: usize) -> f64 {
    let en = ((n * m) as f64 / (n + m) as f64).sqrt();
    q_ks((en + 0.12 + 0.11 / en) * d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_samples_are_indistinguishable() {
        let a: Vec<f64> = (0..300).map(f64::from).collect();
        assert_eq!(ks_statistic(&a, &a), 0.0);
        assert!((ks_p_value(0.0, 300, 300) - 1.0).abs() < 1e-9);
    }

    #[test]
    fn shifted_samples_are_told_apart() {
        let a: Vec<f64> = (0..300).map(f64::from).collect();
        let b: Vec<f64> = (100..400).map(f64::from).collect();
        let d = ks_statistic(&a, &b);
        assert!((d - 1.0 / 3.0).abs() < 1e-9);
        assert!(ks_p_value(d, 300, 300) < 1e-6);
    }

    #[test]
    fn critical_value_at_one_percent() {
        // The 1 % critical value for n = m = 300 is about 1.628·√(2/300) ≈ 0.133.
        let p = ks_p_value(0.133, 300, 300);
        assert!((0.007..0.013).contains(&p), "{p}");
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let xs: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&xs, 50.0), 50.0);
        assert_eq!(percentile(&xs, 99.0), 99.0);
        assert_eq!(percentile(&xs, 100.0), 100.0);
    }
}
