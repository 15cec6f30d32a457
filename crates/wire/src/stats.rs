//! Order statistics shared by evaluations and live selection.

/// The nearest-rank percentile `p` (in (0, 100]) of `values`, which it reorders;
/// `None` when there are none.
pub fn nearest_rank(values: &mut [f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let rank = ((p / 100.0 * values.len() as f64).ceil() as usize).clamp(1, values.len());
    let (_, v, _) = values.select_nth_unstable_by(rank - 1, f64::total_cmp);
    Some(*v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_of_one_to_a_hundred() {
        let mut v: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(nearest_rank(&mut v, 50.0), Some(50.0));
        assert_eq!(nearest_rank(&mut v, 99.0), Some(99.0));
        assert_eq!(nearest_rank(&mut v, 100.0), Some(100.0));
        assert_eq!(nearest_rank(&mut v, 0.1), Some(1.0));
        assert_eq!(nearest_rank(&mut [], 50.0), None);
    }
}
