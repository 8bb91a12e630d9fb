//! The table of a run: each target's figures in its median round beside
//! hyper's in the same round, and the pairs compared with each other.

use super::lineup::Lineup;

/// Prints the table of a measured lineup; its first target is hyper.
pub fn print(lineup: &Lineup) {
    let targets = &lineup.targets;
    println!(
        "{:<28} {:>10} {:>10} {:>10} {:>12} {:>10} {:>7}  ratio per round",
        "target (median-ratio round)", "req/s", "p50", "p99", "hyper req/s", "hyper p99", "ratio"
    );
    let Some(hyper_target) = targets.first() else {
        return;
    };
    let hyper: Vec<f64> = hyper_target
        .rounds
        .iter()
        .map(|f| f.requests_per_sec)
        .collect();
    for (i, target) in targets.iter().enumerate() {
        let ratios: Vec<f64> = target
            .rounds
            .iter()
            .zip(&hyper)
            .map(|(f, h)| f.requests_per_sec / h)
            .collect();
        // The round whose ratio is the median, with hyper's figures from that
        // round (p99 to compare latency against); for hyper itself, its median
        // round.
        let round = median_index(if i == 0 { &hyper } else { &ratios });
        let figures = &target.rounds[round];
        println!(
            "{:<28} {:>10.0} {:>10} {:>10} {:>12.0} {:>10} {:>7.3}  {}",
            target.name,
            figures.requests_per_sec,
            figures.p50,
            figures.p99,
            hyper[round],
            hyper_target.rounds[round].p99,
            ratios[round],
            joined(&ratios, 3)
        );
    }
    for &(a, b) in &lineup.versus {
        let ratios: Vec<f64> = targets[a]
            .rounds
            .iter()
            .zip(&targets[b].rounds)
            .map(|(x, y)| x.requests_per_sec / y.requests_per_sec)
            .collect();
        println!(
            "{} against {}: {:.2}x (median round; per round {})",
            targets[a].name,
            targets[b].name,
            ratios[median_index(&ratios)],
            joined(&ratios, 2)
        );
    }
}

/// `ratios` with `decimals` decimals each, separated by spaces.
fn joined(ratios: &[f64], decimals: usize) -> String {
    ratios
        .iter()
        .map(|r| format!("{r:.decimals$}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Where the median of `values` sits (the upper of the middle two for an even
/// count).
fn median_index(values: &[f64]) -> usize {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    order[order.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_is_the_upper_middle_value() {
        assert_eq!(median_index(&[3.0, 1.0, 2.0]), 2);
        assert_eq!(median_index(&[4.0, 1.0, 3.0, 2.0]), 2);
        assert_eq!(joined(&[1.0, 0.5], 3), "1.000 0.500");
    }
}
