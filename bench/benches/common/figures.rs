//! The driver of a bench of figures measured in runs (`--bench dynamic`,
//! `--bench operator`): which figures (the bench's arguments pick them by
//! substring; none: all), how many runs (`BENCH_RUNS`, default 3), and a
//! Markdown table of each field's min and median over the runs.

use std::collections::HashMap;

/// Measures each of `all` the figures asked for, `BENCH_RUNS` times, with
/// `measure` (a figure's fields, or why it failed), and prints the table.
pub fn run(all: &[&str], measure: impl Fn(&str) -> Result<Vec<(String, f64)>, String>) {
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let figures: Vec<&str> = all
        .iter()
        .copied()
        .filter(|f| wanted.is_empty() || wanted.iter().any(|w| f.contains(w.as_str())))
        .collect();
    let mut results: HashMap<(String, String), Vec<f64>> = HashMap::new();
    for run in 1..=runs {
        for figure in &figures {
            eprintln!("run {run}/{runs}: {figure}");
            match measure(figure) {
                Ok(fields) => {
                    for (key, value) in fields {
                        results
                            .entry((figure.to_string(), key))
                            .or_default()
                            .push(value);
                    }
                }
                Err(err) => eprintln!("  failed: {err}"),
            }
        }
    }
    report(&results, runs);
}

/// The table: each field's min and median over the runs.
fn report(results: &HashMap<(String, String), Vec<f64>>, runs: usize) {
    let mut keys: Vec<&(String, String)> = results.keys().collect();
    keys.sort();
    println!("| figure | field | min | median | runs |");
    println!("|---|---|---|---|---|");
    for key in keys {
        let mut values = results[key].clone();
        values.sort_by(f64::total_cmp);
        let median = values[(values.len() - 1) / 2];
        println!(
            "| {} | {} | {:.3} | {:.3} | {}/{runs} |",
            key.0,
            key.1,
            values[0],
            median,
            values.len()
        );
    }
}
