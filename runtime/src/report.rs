//! Reports for `edgeward open`: aggregate decrypted readings per sensor series into fixed time windows
//! (count, min, mean, max) and draw them, as a one-line-per-series terminal summary with a Unicode
//! sparkline ([`render_text`]) and as a self-contained SVG document ([`render_svg`]).
//!
//! The SVG is written by hand: it is a handful of `<path>`, `<line>` and `<text>` elements, and doing
//! it directly keeps the time axis on round clock times (00:00, 03:00, …) and the value axis on round
//! numbers without pulling a plotting library into the runtime. Times are UTC throughout; they are
//! formatted with plain calendar arithmetic, so any `u64` millisecond timestamp is safe.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// One decrypted reading.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// The series it belongs to, e.g. `living-room temperature (Cel)`; a trailing `(unit)` is shown
    /// as the unit of the SVG's value axis.
    pub series: String,
    /// Milliseconds since the Unix epoch (UTC).
    pub t_ms: u64,
    pub value: f64,
}

/// The readings of one series that fell in one window.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WindowStats {
    /// The window's start, a multiple of the window length, in ms since the Unix epoch.
    pub start_ms: u64,
    /// How many (finite) readings fell in the window; never 0.
    pub count: usize,
    pub min: f64,
    pub mean: f64,
    pub max: f64,
}

/// Per series (sorted by name), windows aligned to multiples of window_ms since the epoch, in time order;
/// empty windows omitted; non-finite values ignored. A `window_ms` of 0 is taken as 1.
pub fn aggregate(points: &[Point], window_ms: u64) -> BTreeMap<String, Vec<WindowStats>> {
    struct Acc {
        count: usize,
        min: f64,
        max: f64,
        sum: f64,
    }
    let window_ms = window_ms.max(1);
    let mut acc: BTreeMap<&str, BTreeMap<u64, Acc>> = BTreeMap::new();
    for p in points.iter().filter(|p| p.value.is_finite()) {
        let start = p.t_ms - p.t_ms % window_ms;
        let a = acc.entry(p.series.as_str()).or_default().entry(start).or_insert(Acc {
            count: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            sum: 0.0,
        });
        a.count += 1;
        a.min = a.min.min(p.value);
        a.max = a.max.max(p.value);
        a.sum += p.value;
    }
    acc.into_iter()
        .map(|(series, windows)| {
            let stats = windows
                .into_iter()
                .map(|(start_ms, a)| WindowStats {
                    start_ms,
                    count: a.count,
                    min: a.min,
                    // Clamped: rounding (or an overflowing sum) must not put the mean outside [min, max].
                    mean: clamp_nan(a.sum / a.count as f64, a.min, a.max),
                    max: a.max,
                })
                .collect();
            (series.to_owned(), stats)
        })
        .collect()
}

/// Unicode block sparkline (▁▂▃▄▅▆▇█) of values scaled between their min and max; a flat series is
/// all ▄; empty -> "". A non-finite value is drawn as a space and does not affect the scale.
pub fn sparkline(values: &[f64]) -> String {
    const BLOCKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let Some((lo, hi)) = finite_range(values.iter().copied()) else {
        return " ".repeat(values.len());
    };
    values
        .iter()
        .map(|&v| {
            if !v.is_finite() {
                ' '
            } else if hi == lo {
                BLOCKS[3]
            } else {
                // Halved so that hi - lo cannot overflow for values near f64::MAX.
                let frac = (v / 2.0 - lo / 2.0) / (hi / 2.0 - lo / 2.0);
                BLOCKS[(frac * 7.0).round().clamp(0.0, 7.0) as usize]
            }
        })
        .collect()
}

/// For a terminal: per series, one line with name, count, overall min/mean/max, and the sparkline of
/// window means (at most `width` chars: if there are more windows, resample by averaging adjacent means).
///
/// Columns are aligned across series, e.g.
/// `kitchen temperature (Cel)  96 readings  min 17.2  mean 20.1  max 23.4  ▂▁▁▂▄▆▇█▇▅▃▂`.
pub fn render_text(aggregated: &BTreeMap<String, Vec<WindowStats>>, width: usize) -> String {
    struct Row {
        name: String,
        cells: Option<[String; 4]>,
        spark: String,
    }
    let rows: Vec<Row> = aggregated
        .iter()
        .map(|(name, windows)| {
            let cells = Summary::of(windows).map(|s| {
                let decimals = value_decimals(s.min, s.max);
                [
                    format!("{} reading{}", s.count, if s.count == 1 { " " } else { "s" }),
                    format_fixed(s.min, decimals),
                    format_fixed(s.mean, decimals),
                    format_fixed(s.max, decimals),
                ]
            });
            let means: Vec<f64> = windows.iter().map(|w| w.mean).collect();
            Row { name: truncate(name, TEXT_NAME_MAX), cells, spark: sparkline(&resample(&means, width)) }
        })
        .collect();
    let name_w = rows.iter().map(|r| r.name.chars().count()).max().unwrap_or(0);
    let mut col_w = [0usize; 4];
    for cells in rows.iter().filter_map(|r| r.cells.as_ref()) {
        for (w, c) in col_w.iter_mut().zip(cells) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let line = match &row.cells {
            Some([count, min, mean, max]) => format!(
                "{:<name_w$}  {count:>w0$}  min {min:>w1$}  mean {mean:>w2$}  max {max:>w3$}  {}",
                row.name,
                row.spark,
                w0 = col_w[0],
                w1 = col_w[1],
                w2 = col_w[2],
                w3 = col_w[3],
            ),
            None => format!("{:<name_w$}  no readings", row.name),
        };
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A self-contained SVG document: one panel per series stacked vertically, each with a shaded min–max
/// band and the mean line per window, a y axis with 3–5 round-number ticks and the unit, an x axis with
/// UTC time labels (HH:MM, plus the date when the span covers days), a title, readable fonts
/// (font-family sans-serif), sensible colours, a viewBox so it scales.
///
/// All panels share one time axis so they line up. Each panel's mean line is a single `<path
/// class="mean">`; it is broken (a new subpath) where a series has a gap of more than 2.5 times its
/// usual window spacing, and a lone window is drawn as a dot.
pub fn render_svg(aggregated: &BTreeMap<String, Vec<WindowStats>>, title: &str) -> String {
    let series: Vec<(&str, &[WindowStats])> =
        aggregated.iter().map(|(name, windows)| (name.as_str(), windows.as_slice())).collect();
    let step = window_spacing(&series);
    let domain = time_domain(&series, step);
    let plot_w = SVG_WIDTH - MARGIN_LEFT - MARGIN_RIGHT;
    let height = if series.is_empty() { TOP + 60.0 } else { TOP + series.len() as f64 * PANEL_H };

    let mut svg = String::new();
    let _ = writeln!(svg, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" font-family="sans-serif" role="img">"#,
        w = num(SVG_WIDTH),
        h = num(height),
    );
    let _ = writeln!(svg, "<title>{}</title>", xml_escape(title));
    let _ = writeln!(svg, r##"<rect x="0" y="0" width="100%" height="100%" fill="#ffffff"/>"##);
    let _ = writeln!(
        svg,
        r##"<text x="{}" y="36" font-size="22" font-weight="600" fill="#111827">{}</text>"##,
        num(MARGIN_LEFT),
        xml_escape(&truncate(title, ((SVG_WIDTH - MARGIN_LEFT - MARGIN_RIGHT) / 12.5) as usize)),
    );
    let _ = writeln!(
        svg,
        r##"<text x="{}" y="60" font-size="13" fill="#6b7280">{}</text>"##,
        num(MARGIN_LEFT),
        xml_escape(&subtitle(domain, step)),
    );
    if series.is_empty() {
        let _ = writeln!(
            svg,
            r##"<text x="{}" y="{}" font-size="15" fill="#6b7280">No readings to show.</text>"##,
            num(MARGIN_LEFT),
            num(TOP + 24.0),
        );
    }
    let x_ticks = time_ticks(domain, plot_w);
    for (i, (name, windows)) in series.iter().enumerate() {
        let panel = Panel {
            name,
            windows,
            colour: PALETTE[i % PALETTE.len()],
            top: TOP + i as f64 * PANEL_H,
            plot_w,
            domain,
            x_ticks: &x_ticks,
            step,
        };
        panel.write(&mut svg);
    }
    svg.push_str("</svg>\n");
    svg
}

/// Longer series names are cut (with `…`) in [`render_text`] so one long name cannot push every line off
/// the screen.
const TEXT_NAME_MAX: usize = 48;

// ---------------------------------------------------------------------------------------------------
// SVG layout

const SVG_WIDTH: f64 = 960.0;
const MARGIN_LEFT: f64 = 80.0;
const MARGIN_RIGHT: f64 = 32.0;
/// Title and subtitle.
const TOP: f64 = 78.0;
/// Series name and stats above each plot.
const HEADER_H: f64 = 34.0;
const PLOT_H: f64 = 170.0;
/// Time labels (two lines when dates are shown) below each plot.
const X_AXIS_H: f64 = 42.0;
const PANEL_GAP: f64 = 14.0;
const PANEL_H: f64 = HEADER_H + PLOT_H + X_AXIS_H + PANEL_GAP;
/// Minimum horizontal room for one time label.
const X_LABEL_SPACING: f64 = 88.0;
/// Line colours, one per panel in turn (the band is the same colour, translucent).
const PALETTE: [&str; 6] = ["#2563eb", "#dc5a32", "#0f9d6b", "#8b5cf6", "#c2870a", "#0e8fa8"];

const MINUTE_MS: u64 = 60_000;
const HOUR_MS: u64 = 60 * MINUTE_MS;
const DAY_MS: u64 = 24 * HOUR_MS;

/// One series' panel: header, grid, band, mean line and axes.
struct Panel<'a> {
    name: &'a str,
    windows: &'a [WindowStats],
    colour: &'a str,
    /// The panel's top edge in SVG coordinates.
    top: f64,
    plot_w: f64,
    domain: (u64, u64),
    x_ticks: &'a [TimeTick],
    /// The window spacing over all series, to put each point at its window's centre.
    step: Option<u64>,
}

impl Panel<'_> {
    fn write(&self, svg: &mut String) {
        let (label, unit) = split_unit(self.name);
        let plot_top = self.top + HEADER_H;
        let plot_bottom = plot_top + PLOT_H;
        let left = MARGIN_LEFT;
        let right = MARGIN_LEFT + self.plot_w;
        let _ = writeln!(svg, r#"<g class="series">"#);
        let _ = writeln!(svg, "<title>{}</title>", xml_escape(self.name));

        // Header: the series name on the left, its overall stats on the right.
        let summary = Summary::of(self.windows);
        let stats = match &summary {
            Some(s) => {
                let d = value_decimals(s.min, s.max);
                let unit = if unit.is_empty() { String::new() } else { format!(" {unit}") };
                format!(
                    "min {} · mean {} · max {}{unit} · {} reading{}",
                    minus(&format_fixed(s.min, d)),
                    minus(&format_fixed(s.mean, d)),
                    minus(&format_fixed(s.max, d)),
                    s.count,
                    if s.count == 1 { "" } else { "s" },
                )
            }
            None => "no readings".to_owned(),
        };
        let room = ((self.plot_w - 24.0 - stats.chars().count() as f64 * 6.8) / 9.2).max(12.0);
        let header_y = num(plot_top - 12.0);
        let _ = writeln!(
            svg,
            r##"<text x="{}" y="{header_y}" font-size="15" font-weight="600" fill="#111827">{}</text>"##,
            num(left),
            xml_escape(&truncate(label, room as usize)),
        );
        let _ = writeln!(
            svg,
            r##"<text x="{}" y="{header_y}" font-size="12.5" fill="#4b5563" text-anchor="end">{}</text>"##,
            num(right),
            xml_escape(&stats),
        );
        if !unit.is_empty() {
            let (x, y) = (num(18.0), num(plot_top + PLOT_H / 2.0));
            let _ = writeln!(
                svg,
                r##"<text x="{x}" y="{y}" font-size="12.5" fill="#4b5563" text-anchor="middle" transform="rotate(-90 {x} {y})">{}</text>"##,
                xml_escape(&unit),
            );
        }

        // Value axis: round-number grid lines and labels.
        let (lo, hi) = summary.as_ref().map_or((0.0, 1.0), |s| (s.min, s.max));
        let y_ticks = value_ticks(lo, hi);
        let (y_lo, y_hi) = (y_ticks.values[0], y_ticks.values[y_ticks.values.len() - 1]);
        let y_of = |v: f64| plot_bottom - (v - y_lo) / (y_hi - y_lo) * PLOT_H;
        let x_of =
            |t: f64| left + (t - self.domain.0 as f64) / (self.domain.1 - self.domain.0) as f64 * self.plot_w;
        for &v in &y_ticks.values {
            let y = num(y_of(v));
            let _ = writeln!(
                svg,
                r##"<line x1="{}" y1="{y}" x2="{}" y2="{y}" stroke="#e5e7eb" stroke-width="1"/>"##,
                num(left),
                num(right),
            );
            let _ = writeln!(
                svg,
                r##"<text x="{}" y="{y}" dy="0.35em" font-size="12" fill="#6b7280" text-anchor="end">{}</text>"##,
                num(left - 10.0),
                minus(&format_fixed(v, y_ticks.decimals)),
            );
        }

        // Time axis: faint vertical grid lines, HH:MM labels, and the date under the first tick and
        // at each change of day when the data spans more than one date.
        for tick in self.x_ticks {
            let x = num(x_of(tick.t_ms as f64));
            let _ = writeln!(
                svg,
                r##"<line x1="{x}" y1="{}" x2="{x}" y2="{}" stroke="#f1f2f4" stroke-width="1"/>"##,
                num(plot_top),
                num(plot_bottom),
            );
            let _ = writeln!(
                svg,
                r##"<line x1="{x}" y1="{}" x2="{x}" y2="{}" stroke="#9ca3af" stroke-width="1"/>"##,
                num(plot_bottom),
                num(plot_bottom + 5.0),
            );
            let _ = writeln!(
                svg,
                r##"<text x="{x}" y="{}" font-size="12" fill="#6b7280" text-anchor="middle">{}</text>"##,
                num(plot_bottom + 19.0),
                xml_escape(&tick.label),
            );
            if let Some(date) = &tick.date {
                let _ = writeln!(
                    svg,
                    r##"<text x="{x}" y="{}" font-size="12" font-weight="600" fill="#374151" text-anchor="middle">{}</text>"##,
                    num(plot_bottom + 34.0),
                    xml_escape(date),
                );
            }
        }
        let _ = writeln!(
            svg,
            r##"<line x1="{}" y1="{y}" x2="{}" y2="{y}" stroke="#9ca3af" stroke-width="1"/>"##,
            num(left),
            num(right),
            y = num(plot_bottom),
        );

        // Data: one band subpath and one mean-line subpath per run of windows without a long gap.
        if summary.is_none() {
            let _ = writeln!(
                svg,
                r##"<text x="{}" y="{}" font-size="13" fill="#9ca3af" text-anchor="middle">no readings</text>"##,
                num(left + self.plot_w / 2.0),
                num(plot_top + PLOT_H / 2.0),
            );
        }
        let half = self.step.unwrap_or(0) as f64 / 2.0;
        let centre = |w: &WindowStats| x_of(w.start_ms as f64 + half);
        let mut band = String::new();
        let mut line = String::new();
        let mut dots = Vec::new();
        for run in runs(self.windows) {
            if let [only] = run {
                // A lone window: a short vertical bar for its range and a dot for its mean (the mean
                // line gets a zero-length subpath there, which a round cap already shows as a dot).
                let (x, (y_min, y_max)) = (centre(only), (y_of(only.min), y_of(only.max)));
                let _ = write!(
                    band,
                    "M{} {}H{}V{}H{}Z",
                    num(x - 3.0),
                    num(y_min),
                    num(x + 3.0),
                    num(y_max),
                    num(x - 3.0)
                );
                let _ = write!(line, "M{} {}h0", num(x), num(y_of(only.mean)));
                dots.push((x, y_of(only.mean)));
                continue;
            }
            for (k, w) in run.iter().enumerate() {
                let _ =
                    write!(band, "{}{} {}", if k == 0 { 'M' } else { 'L' }, num(centre(w)), num(y_of(w.max)));
                let _ = write!(
                    line,
                    "{}{} {}",
                    if k == 0 { 'M' } else { 'L' },
                    num(centre(w)),
                    num(y_of(w.mean))
                );
            }
            for w in run.iter().rev() {
                let _ = write!(band, "L{} {}", num(centre(w)), num(y_of(w.min)));
            }
            band.push('Z');
        }
        if !band.is_empty() {
            let _ = writeln!(
                svg,
                r#"<path class="band" d="{band}" fill="{}" fill-opacity="0.18" stroke="none"/>"#,
                self.colour
            );
        }
        let _ = writeln!(
            svg,
            r#"<path class="mean" d="{line}" fill="none" stroke="{}" stroke-width="2.25" stroke-linejoin="round" stroke-linecap="round"/>"#,
            self.colour
        );
        for (x, y) in dots {
            let _ = writeln!(
                svg,
                r#"<circle class="point" cx="{}" cy="{}" r="3.5" fill="{}"/>"#,
                num(x),
                num(y),
                self.colour
            );
        }
        let _ = writeln!(svg, "</g>");
    }
}

/// The subtitle: the time span, the window spacing, and how to read the chart.
fn subtitle(domain: (u64, u64), step: Option<u64>) -> String {
    let (start, end) = domain;
    let span = if day_of(start) == day_of(end) {
        format!("{} {}–{} UTC", format_date(start), format_hm(start, false), format_hm(end, false))
    } else {
        format!(
            "{} {} – {} {} UTC",
            format_date(start),
            format_hm(start, false),
            format_date(end),
            format_hm(end, false)
        )
    };
    match step {
        Some(step) => {
            format!("{span} · line: mean per {} window, band: min–max", format_duration(step))
        }
        None => format!("{span} · line: mean per window, band: min–max"),
    }
}

/// The spacing between windows: the greatest common divisor of the gaps between consecutive window
/// starts over all series (the window length, unless every series skips windows). `None` when no
/// series has two windows.
fn window_spacing(series: &[(&str, &[WindowStats])]) -> Option<u64> {
    fn gcd(a: u64, b: u64) -> u64 {
        if b == 0 { a } else { gcd(b, a % b) }
    }
    let g = series
        .iter()
        .flat_map(|(_, w)| w.windows(2).map(|p| p[1].start_ms.saturating_sub(p[0].start_ms)))
        .fold(0, gcd);
    (g > 0).then_some(g)
}

/// Splits a series' windows into runs without a gap of more than 2.5 times its median spacing.
fn runs(windows: &[WindowStats]) -> Vec<&[WindowStats]> {
    let mut gaps: Vec<u64> = windows.windows(2).map(|p| p[1].start_ms.abs_diff(p[0].start_ms)).collect();
    gaps.sort_unstable();
    let Some(&median) = gaps.get(gaps.len() / 2) else {
        return if windows.is_empty() { Vec::new() } else { vec![windows] };
    };
    let limit = median.saturating_mul(5) / 2;
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..windows.len() {
        if windows[i].start_ms.abs_diff(windows[i - 1].start_ms) > limit {
            out.push(&windows[start..i]);
            start = i;
        }
    }
    out.push(&windows[start..]);
    out
}

/// The time range shown: from the first window's start to the last window's end over all series,
/// widened to an hour around a single instant.
fn time_domain(series: &[(&str, &[WindowStats])], step: Option<u64>) -> (u64, u64) {
    let starts = series.iter().flat_map(|(_, w)| w.iter().map(|w| w.start_ms));
    let (lo, hi) = starts.fold((u64::MAX, 0), |(lo, hi), t| (lo.min(t), hi.max(t)));
    if lo > hi {
        return (0, HOUR_MS);
    }
    let hi = hi.saturating_add(step.unwrap_or(0));
    if hi > lo { (lo, hi) } else { (lo.saturating_sub(HOUR_MS / 2), lo.saturating_add(HOUR_MS / 2)) }
}

/// One labelled position on the time axis.
struct TimeTick {
    t_ms: u64,
    /// `HH:MM` (or `HH:MM:SS` for sub-minute steps, or the date for steps of a day or more).
    label: String,
    /// The date, shown under the label at the first tick and at each change of day, when the data spans
    /// more than one date.
    date: Option<String>,
}

/// Round-clock-time ticks (multiples of 1 s … 1 year since the epoch) that fit `plot_w` pixels.
fn time_ticks((start, end): (u64, u64), plot_w: f64) -> Vec<TimeTick> {
    const STEPS: [u64; 25] = [
        1_000,
        2_000,
        5_000,
        10_000,
        15_000,
        30_000,
        MINUTE_MS,
        2 * MINUTE_MS,
        5 * MINUTE_MS,
        10 * MINUTE_MS,
        15 * MINUTE_MS,
        30 * MINUTE_MS,
        HOUR_MS,
        2 * HOUR_MS,
        3 * HOUR_MS,
        6 * HOUR_MS,
        12 * HOUR_MS,
        DAY_MS,
        2 * DAY_MS,
        7 * DAY_MS,
        14 * DAY_MS,
        30 * DAY_MS,
        61 * DAY_MS,
        91 * DAY_MS,
        365 * DAY_MS,
    ];
    let max_ticks = ((plot_w / X_LABEL_SPACING).floor() as u64).max(2);
    let span = end - start;
    let step = STEPS.iter().copied().find(|s| span / s < max_ticks).unwrap_or_else(|| {
        let year = 365 * DAY_MS;
        (span / year / (max_ticks - 1) + 1) * year
    });
    let multi_day = day_of(start) != day_of(end.saturating_sub(1).max(start));
    let mut ticks = Vec::new();
    let mut t = start.div_ceil(step).saturating_mul(step);
    let mut last_day = None;
    while t <= end {
        let day = day_of(t);
        let label = if step >= DAY_MS { format_date(t) } else { format_hm(t, step < MINUTE_MS) };
        let date = (multi_day && step < DAY_MS && last_day != Some(day)).then(|| format_date(t));
        ticks.push(TimeTick { t_ms: t, label, date });
        last_day = Some(day);
        let Some(next) = t.checked_add(step) else { break };
        t = next;
    }
    ticks
}

/// Round-number ticks for a value axis.
struct ValueTicks {
    /// 3–5 values, evenly spaced, the first at or below the data and the last at or above it.
    values: Vec<f64>,
    /// Decimals needed to print the step exactly.
    decimals: usize,
}

/// 3–5 round-number ticks (steps of 1, 2, 2.5 or 5 times a power of ten) covering `[lo, hi]`.
fn value_ticks(lo: f64, hi: f64) -> ValueTicks {
    let (lo, hi) = if lo.is_finite() && hi.is_finite() && lo <= hi { (lo, hi) } else { (0.0, 1.0) };
    // A flat series gets a band around its value; a huge range is halved so that its width is finite.
    let (lo, hi) = if hi - lo > 0.0 && (hi - lo).is_finite() {
        (lo, hi)
    } else if hi - lo == 0.0 {
        let pad = if lo == 0.0 { 1.0 } else { (lo.abs() * 0.05).max(f64::MIN_POSITIVE * 1e10) };
        (lo - pad, hi + pad)
    } else {
        (lo / 2.0, hi / 2.0)
    };
    let raw = (hi - lo) / 4.0;
    let mut exponent = raw.log10().floor() as i32 - 1;
    loop {
        for mantissa in [1.0, 2.0, 2.5, 5.0] {
            let step = mantissa * 10f64.powi(exponent);
            let first = (lo / step).floor();
            let last = (hi / step).ceil();
            let n = (last - first) as usize + 1;
            if n <= 5 {
                let values: Vec<f64> = (0..n.max(3)).map(|k| (first + k as f64) * step).collect();
                if values.iter().all(|v| v.is_finite()) {
                    let mut decimals = (-exponent).max(0) as usize;
                    if mantissa == 2.5 {
                        decimals += 1;
                    }
                    return ValueTicks { values, decimals };
                }
            }
        }
        exponent += 1;
        if exponent > 308 {
            return ValueTicks { values: vec![0.0, 0.5, 1.0], decimals: 1 };
        }
    }
}

/// Splits `name (unit)` into the name and a display form of the SenML unit (`Cel` → `°C`).
fn split_unit(series: &str) -> (&str, String) {
    if let Some(open) = series.strip_suffix(')').and_then(|s| s.rfind('('))
        && open > 0
    {
        let unit = &series[open + 1..series.len() - 1];
        let pretty = match unit {
            "Cel" => "°C".to_owned(),
            "%EL" | "/" => "%".to_owned(),
            "Cel/s" => "°C/s".to_owned(),
            other => other.to_owned(),
        };
        return (series[..open].trim_end(), pretty);
    }
    (series, String::new())
}

// ---------------------------------------------------------------------------------------------------
// Shared helpers

/// Overall statistics of a series.
struct Summary {
    count: usize,
    min: f64,
    mean: f64,
    max: f64,
}

impl Summary {
    fn of(windows: &[WindowStats]) -> Option<Self> {
        let count: usize = windows.iter().map(|w| w.count).sum();
        if count == 0 {
            return None;
        }
        let min = windows.iter().map(|w| w.min).fold(f64::INFINITY, f64::min);
        let max = windows.iter().map(|w| w.max).fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = windows.iter().map(|w| w.mean * w.count as f64).sum();
        Some(Self { count, min, mean: clamp_nan(sum / count as f64, min, max), max })
    }
}

/// `v` clamped to `[lo, hi]`, and `lo` if `v` is NaN.
fn clamp_nan(v: f64, lo: f64, hi: f64) -> f64 {
    if v.is_nan() { lo } else { v.clamp(lo, hi) }
}

/// The min and max of the finite values, if any.
fn finite_range(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.filter(|v| v.is_finite()).fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((f64::min(lo, v), f64::max(hi, v))),
    })
}

/// At most `width` values: consecutive groups of `values` averaged (groups differ in size by at most one).
fn resample(values: &[f64], width: usize) -> Vec<f64> {
    if values.len() <= width {
        return values.to_vec();
    }
    (0..width)
        .map(|i| {
            let group = &values[i * values.len() / width..(i + 1) * values.len() / width];
            let finite: Vec<f64> = group.iter().copied().filter(|v| v.is_finite()).collect();
            if finite.is_empty() { f64::NAN } else { finite.iter().sum::<f64>() / finite.len() as f64 }
        })
        .collect()
}

/// Decimals that show values of this magnitude to about three significant digits (0–4).
fn value_decimals(min: f64, max: f64) -> usize {
    let magnitude = min.abs().max(max.abs());
    if magnitude == 0.0 || !magnitude.is_finite() {
        return 1;
    }
    (2 - magnitude.log10().floor() as i32).clamp(0, 4) as usize
}

/// `v` with `decimals` decimals, never as `-0`.
fn format_fixed(v: f64, decimals: usize) -> String {
    let s = format!("{v:.decimals$}");
    match s.strip_prefix('-') {
        Some(rest) if rest.chars().all(|c| c == '0' || c == '.') => rest.to_owned(),
        _ => s,
    }
}

/// A number label with a typographic minus sign (U+2212) in place of a hyphen.
fn minus(label: &str) -> String {
    label.replacen('-', "\u{2212}", 1)
}

/// An SVG coordinate: one decimal, trailing `.0` dropped; a non-finite value (never expected) as 0.
fn num(v: f64) -> String {
    if !v.is_finite() {
        return "0".to_owned();
    }
    let s = format_fixed((v * 10.0).round() / 10.0, 1);
    s.strip_suffix(".0").map(str::to_owned).unwrap_or(s)
}

/// Escapes text for XML content and attribute values; characters XML forbids become U+FFFD.
fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c < ' ' || c == '\u{fffe}' || c == '\u{ffff}' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// At most `max` characters, ending in `…` when cut.
fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Days since the Unix epoch of a UTC time.
fn day_of(ms: u64) -> u64 {
    ms / DAY_MS
}

/// `HH:MM` (or `HH:MM:SS`) of a UTC time.
fn format_hm(ms: u64, seconds: bool) -> String {
    let s = ms / 1000 % 86_400;
    if seconds {
        format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{:02}:{:02}", s / 3600, s / 60 % 60)
    }
}

/// `YYYY-MM-DD` of a UTC time (proleptic Gregorian calendar).
fn format_date(ms: u64) -> String {
    // Howard Hinnant's civil_from_days.
    let z = day_of(ms) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// A duration in the largest whole unit: `15 min`, `1 h`, `30 s`, `1 day`, or ms.
fn format_duration(ms: u64) -> String {
    match ms {
        ms if ms % DAY_MS == 0 => {
            let d = ms / DAY_MS;
            format!("{d} day{}", if d == 1 { "" } else { "s" })
        }
        ms if ms % HOUR_MS == 0 => format!("{} h", ms / HOUR_MS),
        ms if ms % MINUTE_MS == 0 => format!("{} min", ms / MINUTE_MS),
        ms if ms % 1000 == 0 => format!("{} s", ms / 1000),
        ms => format!("{ms} ms"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_768_435_200_000; // 2026-01-15T00:00:00Z

    fn p(series: &str, t_ms: u64, value: f64) -> Point {
        Point { series: series.to_owned(), t_ms, value }
    }

    fn ws(start_ms: u64, count: usize, min: f64, mean: f64, max: f64) -> WindowStats {
        WindowStats { start_ms, count, min, mean, max }
    }

    /// A day of a temperature curve (15-min windows of 1-min readings) plus a humidity series.
    fn sample_day() -> BTreeMap<String, Vec<WindowStats>> {
        let mut points = Vec::new();
        for minute in 0..24 * 60u64 {
            let h = minute as f64 / 60.0;
            let wobble = ((minute * 7919) % 100) as f64 / 100.0 - 0.5;
            let temp = 19.5 + 3.2 * ((h - 9.0) / 24.0 * std::f64::consts::TAU).sin() + 0.9 * wobble;
            points.push(p("living-room temperature (Cel)", T0 + minute * MINUTE_MS, temp));
            let hum = 48.0 - 9.0 * ((h - 9.5) / 24.0 * std::f64::consts::TAU).sin() + 1.2 * wobble;
            if minute % 5 == 0 {
                points.push(p("living-room humidity (%RH)", T0 + minute * MINUTE_MS, hum));
            }
        }
        aggregate(&points, 15 * MINUTE_MS)
    }

    /// An element's name and attributes.
    type Tag = (String, Vec<(String, String)>);

    /// A minimal XML well-formedness check: balanced, properly nested tags; quoted, unique attributes;
    /// no raw `<` or `&` outside tags and known references; one root element. Returns the start tags
    /// as (name, attributes).
    fn parse_xml(doc: &str) -> Result<Vec<Tag>, String> {
        fn check_text(text: &str) -> Result<(), String> {
            let mut rest = text;
            while let Some(i) = rest.find('&') {
                let end = rest[i..].find(';').ok_or("unterminated reference")? + i;
                let entity = &rest[i + 1..end];
                let known = ["lt", "gt", "amp", "quot", "apos"].contains(&entity)
                    || (entity.starts_with('#') && entity[1..].chars().all(|c| c.is_ascii_digit()));
                if !known {
                    return Err(format!("unknown reference &{entity};"));
                }
                rest = &rest[end + 1..];
            }
            if text.contains('<') { Err("raw < in text".into()) } else { Ok(()) }
        }
        let is_name = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_alphanumeric() || "-_:.".contains(c));
        let mut tags = Vec::new();
        let mut stack: Vec<String> = Vec::new();
        let mut roots = 0;
        let mut rest = doc.trim_start();
        if let Some(after) = rest.strip_prefix("<?xml") {
            rest = &after[after.find("?>").ok_or("unterminated declaration")? + 2..];
        }
        while !rest.is_empty() {
            let Some(open) = rest.find('<') else {
                check_text(rest)?;
                if !stack.is_empty() || !rest.trim().is_empty() {
                    return Err("text after the root or unclosed element".into());
                }
                break;
            };
            check_text(&rest[..open])?;
            if stack.is_empty() && !rest[..open].trim().is_empty() {
                return Err("text outside the root".into());
            }
            rest = &rest[open..];
            if let Some(after) = rest.strip_prefix("<!--") {
                rest = &after[after.find("-->").ok_or("unterminated comment")? + 3..];
                continue;
            }
            let close = rest.find('>').ok_or("unterminated tag")?;
            let tag = &rest[1..close];
            rest = &rest[close + 1..];
            if let Some(name) = tag.strip_prefix('/') {
                if stack.pop().as_deref() != Some(name.trim()) {
                    return Err(format!("mismatched </{name}>"));
                }
                continue;
            }
            let (tag, self_closing) = match tag.strip_suffix('/') {
                Some(t) => (t, true),
                None => (tag, false),
            };
            let name_end = tag.find(char::is_whitespace).unwrap_or(tag.len());
            let name = &tag[..name_end];
            if !is_name(name) {
                return Err(format!("bad element name {name:?}"));
            }
            let mut attrs: Vec<(String, String)> = Vec::new();
            let mut a = tag[name_end..].trim_start();
            while !a.is_empty() {
                let eq = a.find('=').ok_or("attribute without value")?;
                let key = a[..eq].trim();
                let value = a[eq + 1..].trim_start();
                let quote =
                    value.chars().next().filter(|q| *q == '"' || *q == '\'').ok_or("unquoted value")?;
                let end = value[1..].find(quote).ok_or("unterminated value")? + 1;
                let v = &value[1..end];
                check_text(v)?;
                if !is_name(key) || attrs.iter().any(|(k, _)| k == key) {
                    return Err(format!("bad or duplicate attribute {key:?}"));
                }
                attrs.push((key.to_owned(), v.to_owned()));
                a = value[end + 1..].trim_start();
            }
            if stack.is_empty() {
                roots += 1;
            }
            if !self_closing {
                stack.push(name.to_owned());
            }
            tags.push((name.to_owned(), attrs));
        }
        if roots != 1 || !stack.is_empty() {
            return Err(format!("{roots} root elements, {} unclosed", stack.len()));
        }
        Ok(tags)
    }

    /// Windows start at multiples of the window length since the epoch, not at the first reading.
    #[test]
    fn aggregate_aligns_windows_to_the_epoch() {
        let out = aggregate(&[p("a", 1_234, 1.0), p("a", 1_999, 2.0), p("a", 2_000, 3.0)], 1_000);
        let starts: Vec<u64> = out["a"].iter().map(|w| w.start_ms).collect();
        assert_eq!(starts, [1_000, 2_000]);
        assert_eq!(out["a"][0].count, 2);
    }

    /// Each window holds the count, min, mean and max of its readings, whatever their input order.
    #[test]
    fn aggregate_computes_min_mean_max() {
        let out = aggregate(&[p("a", 30, 4.0), p("a", 10, 1.0), p("a", 20, 7.0), p("a", 110, -2.5)], 100);
        assert_eq!(out["a"], [ws(0, 3, 1.0, 4.0, 7.0), ws(100, 1, -2.5, -2.5, -2.5)]);
    }

    /// Series are kept apart and come out sorted by name.
    #[test]
    fn aggregate_separates_and_sorts_series() {
        let out = aggregate(&[p("zeta (V)", 5, 3.0), p("alpha (Cel)", 5, 20.0), p("zeta (V)", 6, 3.2)], 10);
        assert_eq!(out.keys().collect::<Vec<_>>(), ["alpha (Cel)", "zeta (V)"]);
        assert_eq!(out["alpha (Cel)"], [ws(0, 1, 20.0, 20.0, 20.0)]);
        assert_eq!(out["zeta (V)"][0].count, 2);
        assert!((out["zeta (V)"][0].mean - 3.1).abs() < 1e-12);
    }

    /// NaN and infinite readings are ignored; a series with only those has no windows and no entry.
    #[test]
    fn aggregate_ignores_non_finite_values() {
        let points = [
            p("a", 0, 1.0),
            p("a", 1, f64::NAN),
            p("a", 2, f64::INFINITY),
            p("a", 3, 3.0),
            p("b", 0, f64::NAN),
        ];
        let out = aggregate(&points, 10);
        assert_eq!(out["a"], [ws(0, 2, 1.0, 2.0, 3.0)]);
        assert!(!out.contains_key("b"));
    }

    /// Windows without readings are left out rather than emitted with a zero count.
    #[test]
    fn aggregate_omits_empty_windows() {
        let out = aggregate(&[p("a", 0, 1.0), p("a", 35, 2.0)], 10);
        let starts: Vec<u64> = out["a"].iter().map(|w| w.start_ms).collect();
        assert_eq!(starts, [0, 30]);
    }

    /// The mean of identical values is exactly that value (no rounding past min/max), and window 0 acts as 1.
    #[test]
    fn aggregate_mean_stays_within_min_and_max() {
        let out = aggregate(&[p("a", 0, 0.1), p("a", 0, 0.1), p("a", 0, 0.1)], 0);
        assert_eq!(out["a"], [ws(0, 3, 0.1, 0.1, 0.1)]);
    }

    /// Ramps map onto the eight blocks in order, both up and down.
    #[test]
    fn sparkline_of_ramps() {
        assert_eq!(sparkline(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]), "▁▂▃▄▅▆▇█");
        assert_eq!(sparkline(&[70.0, 60.0, 50.0, 40.0, 30.0, 20.0, 10.0, 0.0]), "█▇▆▅▄▃▂▁");
        assert_eq!(sparkline(&[-1.0, 1.0]), "▁█");
        assert_eq!(sparkline(&[0.0, 0.5, 1.0]), "▁▅█");
    }

    /// A flat series is all middle blocks, a single value is one middle block, and empty is "".
    #[test]
    fn sparkline_of_flat_single_and_empty() {
        assert_eq!(sparkline(&[21.5, 21.5, 21.5]), "▄▄▄");
        assert_eq!(sparkline(&[42.0]), "▄");
        assert_eq!(sparkline(&[]), "");
    }

    /// Non-finite values become gaps and do not stretch the scale.
    #[test]
    fn sparkline_skips_non_finite_values() {
        assert_eq!(sparkline(&[0.0, f64::NAN, 7.0, f64::INFINITY]), "▁ █ ");
        assert_eq!(sparkline(&[f64::MAX, -f64::MAX]), "█▁");
    }

    /// Each series gets one line with its name, reading count and overall min/mean/max.
    #[test]
    fn render_text_lists_each_series_with_its_stats() {
        let mut agg = BTreeMap::new();
        agg.insert(
            "kitchen temperature (Cel)".to_owned(),
            vec![ws(0, 2, 18.0, 19.0, 20.0), ws(10, 2, 21.0, 22.0, 23.0)],
        );
        agg.insert("door (/)".to_owned(), vec![ws(0, 4, 0.0, 0.25, 1.0)]);
        let text = render_text(&agg, 40);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("door (/)"), "{text}");
        assert!(lines[0].contains("4 readings") && lines[0].contains("mean 0.25"), "{text}");
        assert!(lines[1].starts_with("kitchen temperature (Cel)"), "{text}");
        assert!(lines[1].contains("4 readings"), "{text}");
        assert!(
            lines[1].contains("min 18.0") && lines[1].contains("mean 20.5") && lines[1].contains("max 23.0")
        );
        assert!(lines[1].ends_with("▁█"), "{text}");
        // The columns line up.
        assert_eq!(lines[0].find("readings"), lines[1].find("readings"));
    }

    /// The sparkline never exceeds `width` characters; longer series are averaged down, not cut off.
    #[test]
    fn render_text_bounds_the_sparkline_width() {
        let agg = sample_day();
        for width in [0, 1, 7, 24, 95, 96, 200] {
            let text = render_text(&agg, width);
            for line in text.lines() {
                let spark = line.chars().rev().take_while(|c| ('▁'..='█').contains(c)).count();
                assert_eq!(spark, width.min(96), "width {width}: {line}");
            }
        }
        // 96 windows down to 4: each char averages six hours, so the afternoon peak is the tallest.
        assert!(
            render_text(&agg, 4).lines().last().is_some_and(|l| l.ends_with("▁▄█▅")),
            "{}",
            render_text(&agg, 4)
        );
    }

    /// An empty map renders nothing; a series without windows says so.
    #[test]
    fn render_text_of_empty_input() {
        assert_eq!(render_text(&BTreeMap::new(), 10), "");
        let agg = BTreeMap::from([("x".to_owned(), Vec::new())]);
        assert_eq!(render_text(&agg, 10), "x  no readings\n");
    }

    /// The SVG is well-formed XML with a viewBox, sans-serif text and one mean path and band per series.
    #[test]
    fn render_svg_is_well_formed_with_one_line_per_series() {
        let svg = render_svg(&sample_day(), "Living room, 15 January");
        let tags = parse_xml(&svg).unwrap_or_else(|e| panic!("{e}\n{svg}"));
        let root = &tags[0];
        assert_eq!(root.0, "svg");
        assert!(root.1.iter().any(|(k, v)| k == "viewBox" && v == "0 0 960 598"), "{:?}", root.1);
        assert!(root.1.iter().any(|(k, v)| k == "font-family" && v == "sans-serif"));
        let class_count = |class: &str| {
            tags.iter()
                .filter(|(n, a)| n == "path" && a.iter().any(|(k, v)| k == "class" && v == class))
                .count()
        };
        assert_eq!(class_count("mean"), 2);
        assert_eq!(class_count("band"), 2);
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }

    /// The title is escaped, in the visible heading and in the document's <title>.
    #[test]
    fn render_svg_escapes_the_title() {
        let agg = BTreeMap::from([("a <b> & \"c\" (Cel)".to_owned(), vec![ws(T0, 1, 1.0, 1.0, 1.0)])]);
        let svg = render_svg(&agg, "Readings <&> \u{1} 'quoted'");
        parse_xml(&svg).unwrap_or_else(|e| panic!("{e}\n{svg}"));
        assert!(svg.contains("<title>Readings &lt;&amp;&gt; \u{fffd} &apos;quoted&apos;</title>"), "{svg}");
        assert!(svg.contains("a &lt;b&gt; &amp; &quot;c&quot;"), "{svg}");
        assert!(!svg.contains("<&>"));
    }

    /// A single window and a flat series still give finite coordinates and a 3–5 tick value axis.
    #[test]
    fn render_svg_of_single_point_and_flat_series_has_no_nan() {
        let flat: Vec<WindowStats> = (0..10).map(|k| ws(T0 + k * 60_000, 3, 5.0, 5.0, 5.0)).collect();
        let agg = BTreeMap::from([
            ("flat (V)".to_owned(), flat),
            ("single (Cel)".to_owned(), vec![ws(T0 + 90_000, 1, 21.5, 21.5, 21.5)]),
            ("zero".to_owned(), vec![ws(T0, 2, 0.0, 0.0, 0.0), ws(T0 + 60_000, 1, 0.0, 0.0, 0.0)]),
        ]);
        let svg = render_svg(&agg, "edge cases");
        parse_xml(&svg).unwrap_or_else(|e| panic!("{e}\n{svg}"));
        for bad in ["NaN", "inf", "-0 ", "-0\""] {
            assert!(!svg.contains(bad), "{bad} in\n{svg}");
        }
        let alone = BTreeMap::from([("only".to_owned(), vec![ws(T0, 1, 3.0, 3.0, 3.0)])]);
        let svg = render_svg(&alone, "one reading");
        parse_xml(&svg).unwrap_or_else(|e| panic!("{e}\n{svg}"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
        assert!(svg.contains(r#"class="mean" d="M"#), "{svg}");
    }

    /// No series at all still makes a valid document that says there is nothing to show.
    #[test]
    fn render_svg_of_nothing() {
        let svg = render_svg(&BTreeMap::new(), "empty");
        parse_xml(&svg).unwrap_or_else(|e| panic!("{e}\n{svg}"));
        assert!(svg.contains("No readings to show."));
    }

    /// A gap of many windows breaks the mean line into separate subpaths instead of bridging it.
    #[test]
    fn render_svg_breaks_the_line_at_gaps() {
        let mut windows: Vec<WindowStats> = (0..10).map(|k| ws(T0 + k * 60_000, 1, 1.0, 1.0, 1.0)).collect();
        windows.extend((30..40).map(|k| ws(T0 + k * 60_000, 1, 2.0, 2.0, 2.0)));
        let svg = render_svg(&BTreeMap::from([("a".to_owned(), windows)]), "gap");
        let d = svg.split(r#"class="mean" d=""#).nth(1).and_then(|s| s.split('"').next()).unwrap_or_default();
        assert_eq!(d.matches('M').count(), 2, "{d}");
    }

    /// Value ticks are 3–5 round numbers enclosing the data, for all sorts of ranges.
    #[test]
    fn value_ticks_are_few_round_and_enclosing() {
        let ranges = [
            (0.0, 1.0),
            (16.8, 23.4),
            (-3.2, 0.4),
            (1013.2, 1013.9),
            (99_100.0, 101_900.0),
            (0.001, 0.0013),
            (5.0, 5.0),
            (0.0, 0.0),
            (-1e300, 1e300),
            (-f64::MAX, f64::MAX),
        ];
        for (lo, hi) in ranges {
            let t = value_ticks(lo, hi);
            assert!((3..=5).contains(&t.values.len()), "{lo}..{hi}: {:?}", t.values);
            assert!(t.values[0] <= lo && *t.values.last().unwrap_or(&0.0) >= hi || hi - lo > 1e300);
            assert!(t.values.iter().all(|v| v.is_finite()));
            let labels: Vec<String> = t.values.iter().map(|v| format_fixed(*v, t.decimals)).collect();
            assert!(labels.iter().all(|l| l.len() <= 8 || hi - lo > 1e6), "{labels:?}");
            assert!(labels.windows(2).all(|w| w[0] != w[1]), "{labels:?}");
        }
        let t = value_ticks(16.8, 23.4);
        assert_eq!(
            t.values.iter().map(|v| format_fixed(*v, t.decimals)).collect::<Vec<_>>(),
            ["16", "18", "20", "22", "24"]
        );
    }

    /// Time ticks fall on round clock times; dates appear only when the data spans more than one day.
    #[test]
    fn time_ticks_are_round_and_dated_across_days() {
        let day = time_ticks((T0, T0 + DAY_MS), 856.0);
        let labels: Vec<&str> = day.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(labels, ["00:00", "03:00", "06:00", "09:00", "12:00", "15:00", "18:00", "21:00", "00:00"]);
        assert!(day.iter().all(|t| t.date.is_none()));
        let three = time_ticks((T0 + 6 * HOUR_MS, T0 + 3 * DAY_MS), 856.0);
        let dated: Vec<(&str, &str)> =
            three.iter().filter_map(|t| Some((t.label.as_str(), t.date.as_deref()?))).collect();
        assert_eq!(
            dated,
            [
                ("12:00", "2026-01-15"),
                ("00:00", "2026-01-16"),
                ("00:00", "2026-01-17"),
                ("00:00", "2026-01-18")
            ]
        );
        let short = time_ticks((T0 + 10_000, T0 + 50_000), 856.0);
        assert_eq!(short.first().map(|t| t.label.as_str()), Some("00:00:10"));
        let months = time_ticks((T0, T0 + 100 * DAY_MS), 856.0);
        assert!(months.len() >= 2 && months.iter().all(|t| t.label.len() == 10), "{:?}", months.len());
    }

    /// Calendar arithmetic matches known UTC dates, including leap days and the far future.
    #[test]
    fn dates_and_times_format_in_utc() {
        assert_eq!(format_date(0), "1970-01-01");
        assert_eq!(format_date(T0), "2026-01-15");
        assert_eq!(format_date(951_782_400_000), "2000-02-29");
        assert_eq!(format_date(253_402_300_799_000), "9999-12-31");
        assert_eq!(format_hm(T0 + 13 * HOUR_MS + 7 * MINUTE_MS + 9_000, false), "13:07");
        assert_eq!(format_hm(T0 + 13 * HOUR_MS + 7 * MINUTE_MS + 9_000, true), "13:07:09");
        assert_eq!(format_duration(15 * MINUTE_MS), "15 min");
        assert_eq!(split_unit("living-room temperature (Cel)"), ("living-room temperature", "°C".to_owned()));
        assert_eq!(split_unit("(Cel)"), ("(Cel)", String::new()));
    }

    /// Writes a day of synthetic readings to `$TMPDIR/report-sample.svg` to look at (run with --ignored).
    #[test]
    #[ignore = "writes a file for a person to look at"]
    fn write_sample_svg() {
        let mut agg = sample_day();
        let battery: Vec<WindowStats> = (0..24u64)
            .map(|h| (h, 87.0 - h as f64 * 0.05))
            .map(|(h, v)| ws(T0 + h * HOUR_MS, 1, v, v, v))
            .collect();
        agg.insert("living-room battery (%EL)".to_owned(), battery);
        let svg = render_svg(&agg, "Living room · 15 January 2026");
        let path = std::env::temp_dir().join("report-sample.svg");
        std::fs::write(&path, svg).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        println!("{}", render_text(&agg, 48));
    }
}
