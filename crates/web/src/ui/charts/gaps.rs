//! Lines with gaps: a bucket without data (not yet reached, or not collected) breaks the line
//! instead of drawing a zero; a zero that was measured is drawn as a zero.

/// The runs of consecutive known points of `points` (`None`: no data), in order.
pub fn segments(points: &[(f64, Option<f64>)]) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut open = false;
    for (x, y) in points {
        match y {
            Some(y) if y.is_finite() => {
                if !open {
                    out.push(Vec::new());
                    open = true;
                }
                if let Some(run) = out.last_mut() {
                    run.push((*x, *y));
                }
            }
            _ => open = false,
        }
    }
    out
}

/// The SVG path of `runs` (one `M` per run, `L` to each next point).
pub fn path(runs: &[Vec<(f64, f64)>]) -> String {
    let mut d = String::new();
    for run in runs {
        for (i, (x, y)) in run.iter().enumerate() {
            if !d.is_empty() {
                d.push(' ');
            }
            d.push_str(&format!("{}{x:.1},{y:.1}", if i == 0 { "M" } else { "L" }));
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_points_break_the_line_and_zeros_do_not() {
        let p = |v: &[Option<f64>]| v.iter().enumerate().map(|(i, y)| (i as f64, *y)).collect::<Vec<_>>();
        assert!(segments(&[]).is_empty());
        assert!(segments(&p(&[None, None])).is_empty());
        assert_eq!(segments(&p(&[Some(0.0), Some(0.0)])), vec![vec![(0.0, 0.0), (1.0, 0.0)]]);
        assert_eq!(
            segments(&p(&[Some(1.0), None, Some(2.0), Some(3.0), None, None, Some(f64::NAN), Some(4.0)])),
            vec![vec![(0.0, 1.0)], vec![(2.0, 2.0), (3.0, 3.0)], vec![(7.0, 4.0)]]
        );
        assert_eq!(path(&segments(&p(&[Some(1.0), None, Some(2.0), Some(3.0)]))), "M0.0,1.0 M2.0,2.0 L3.0,3.0");
        // Every pattern of up to 10 points: the runs hold exactly the known points, in order,
        // and two runs are never adjacent.
        for mask in 0u32..1024 {
            let pts: Vec<(f64, Option<f64>)> =
                (0..10).map(|i| (i as f64, (mask >> i & 1 == 1).then_some(i as f64))).collect();
            let runs = segments(&pts);
            let flat: Vec<f64> = runs.iter().flatten().map(|p| p.0).collect();
            let known: Vec<f64> = pts.iter().filter(|p| p.1.is_some()).map(|p| p.0).collect();
            assert_eq!(flat, known);
            for w in runs.windows(2) {
                assert!(w[1][0].0 - w[0].last().unwrap().0 >= 2.0, "runs {w:?} touch");
            }
            assert_eq!(path(&runs).matches('M').count(), runs.len());
        }
    }
}
