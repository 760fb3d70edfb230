//! The trial's statistic and what it concludes: the elasticity between
//! the two limits, the verdict and how it was reached, the summary.

use super::{Evidence, Trial, Verdict};

impl Trial {
    /// `ln(hi / lo)`: the step the elasticity is measured over.
    fn span(&self) -> f64 {
        (f64::from(self.hi) / f64::from(self.lo.max(1)))
            .ln()
            .max(1e-9)
    }

    /// Mean elasticity so far and its standard error.
    pub fn elasticity(&self) -> Option<(f64, f64)> {
        let n = self.ratios.len();
        if n == 0 {
            return None;
        }
        let nf = n as f64;
        let mean = self.ratios.iter().sum::<f64>() / nf;
        let spread = if n > 1 {
            self.ratios
                .iter()
                .map(|r| (r - mean) * (r - mean))
                .sum::<f64>()
                / (nf - 1.0)
        } else {
            0.0
        };
        // Never claim less noise than the counting noise of the pairs.
        let var = spread.max(self.counting_var / nf);
        let se = (var / nf).sqrt();
        Some((mean / self.span(), se / self.span()))
    }

    /// The verdict, once the pairs allow one.
    #[cfg(test)]
    pub fn verdict(&self) -> Option<Verdict> {
        self.outcome().map(|(v, _)| v)
    }

    /// The verdict and how it was reached, once the pairs allow one.
    pub fn outcome(&self) -> Option<(Verdict, Evidence)> {
        let n = self.pairs();
        if n < self.rules.min_pairs.max(1) || self.half.is_some() {
            return None;
        }
        let (e, se) = self.elasticity()?;
        let eps = self.rules.epsilon;
        // Few pairs estimate their own spread poorly (Student's t has heavy
        // tails at 2-4 degrees of freedom): demand more of them.
        let z = self.rules.z * (1.0 + 2.0 / (f64::from(n) - 1.0).max(1.0));
        if e - z * se > self.rules.early_floor.min(eps) {
            Some((Verdict::HiWins, Evidence::Clear))
        } else if e + z * se < eps {
            Some((Verdict::LoHolds, Evidence::Clear))
        } else if n >= self.rules.max_pairs {
            // Out of time: the mean without the two extreme pairs decides
            // (a device stall in one leg makes one outlier pair; it must
            // not decide alone).
            let v = if self.trimmed_mean() / self.span() > eps {
                Verdict::HiWins
            } else {
                Verdict::LoHolds
            };
            Some((v, Evidence::OnAverage))
        } else {
            None
        }
    }

    /// Mean of the pairs' log ratios without the lowest and the highest
    /// (the plain mean below five pairs; 0 without pairs).
    fn trimmed_mean(&self) -> f64 {
        let mut r = self.ratios.clone();
        r.sort_by(f64::total_cmp);
        let kept = if r.len() >= 5 {
            &r[1..r.len() - 1]
        } else {
            &r[..]
        };
        if kept.is_empty() {
            0.0
        } else {
            kept.iter().sum::<f64>() / kept.len() as f64
        }
    }

    /// "elasticity 0.12 ± 0.03 over 5 pairs": for reasons.
    pub fn describe(&self) -> String {
        match self.elasticity() {
            Some((e, se)) => format!(
                "elasticity {e:.3} ± {se:.3} over {} pairs (threshold {:.3})",
                self.pairs(),
                self.rules.epsilon
            ),
            None => "no pair yet".into(),
        }
    }
}
