//! Small charts as SVG (vector graphics in the PDF and the HTML): a line of bucket averages with
//! its axes, no text (the caption and the table beside it carry the words and figures).

/// A line chart of `values` (None leaves a gap), scaled from 0 to the larger of `ceiling` and the
/// largest value.
pub fn sparkline(values: &[Option<f64>], ceiling: f64) -> String {
    let (w, h, pad) = (240.0, 60.0, 4.0);
    let top = values
        .iter()
        .flatten()
        .copied()
        .fold(ceiling, f64::max)
        .max(f64::MIN_POSITIVE);
    let n = values.len().max(2) - 1;
    let x = |i: usize| pad + (w - 2.0 * pad) * i as f64 / n as f64;
    let y = |v: f64| h - pad - (h - 2.0 * pad) * (v / top).clamp(0.0, 1.0);
    let mut paths = Vec::new();
    let mut current = String::new();
    for (i, v) in values.iter().enumerate() {
        match v {
            Some(v) => {
                let cmd = if current.is_empty() { 'M' } else { 'L' };
                current.push_str(&format!("{cmd}{:.1},{:.1} ", x(i), y(*v)));
            }
            None if !current.is_empty() => paths.push(std::mem::take(&mut current)),
            None => {}
        }
    }
    if !current.is_empty() {
        paths.push(current);
    }
    let lines: String = paths.iter().map(|d| segment(d.trim_end())).collect();
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}"><path d="M{pad},{pad} V{b} H{r}" fill="none" stroke="#888" stroke-width="0.8"/>{lines}</svg>"##,
        b = h - pad,
        r = w - pad,
    )
}

/// A run of points as a line, or as a dot when it is a single point (a day with data between
/// days without).
fn segment(d: &str) -> String {
    match d.strip_prefix('M').filter(|rest| !rest.contains(' ')) {
        Some(point) => {
            let (x, y) = point.split_once(',').unwrap_or((point, "0"));
            format!(r##"<circle cx="{x}" cy="{y}" r="2" fill="#1f6fb4"/>"##)
        }
        None => format!(r##"<path d="{d}" fill="none" stroke="#1f6fb4" stroke-width="1.5"/>"##),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_gap_splits_the_line_and_values_are_scaled_to_the_box() {
        let svg = super::sparkline(
            &[Some(0.0), Some(100.0), None, Some(50.0), Some(50.0)],
            100.0,
        );
        assert_eq!(svg.matches("stroke=\"#1f6fb4\"").count(), 2, "{svg}");
        assert!(svg.contains("M4.0,56.0 L62.0,4.0"), "{svg}");
        assert!(!svg.contains("NaN"));
        let dot = super::sparkline(&[None, Some(50.0), None], 100.0);
        assert!(dot.contains(r#"<circle cx="120.0" cy="30.0""#), "{dot}");
    }
}
