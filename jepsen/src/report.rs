//! Reports of a check: `results.json` for machines and a self-contained `report.html` for
//! people.
//!
//! The HTML page has the verdict, every property's counts and examples, the fault windows,
//! and SVG plots drawn here (no scripts, no external files): send and poll latency over time
//! (log scale, one dot per pixel cell and outcome, so a million operations stay small),
//! throughput over time, and each node's observed Raft role over time, all with the fault
//! windows shaded. It knows nothing of how the
//! history was produced.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{json, Value};

use crate::checker::{CheckResults, FaultWindow};
use crate::history::{History, OpF, OpType};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("encoding results")]
    Json(#[from] serde_json::Error),
}

/// The `results.json` document: `verdict`, `failed` and `unknown_reasons` first, then every
/// report, then where the history came from.
#[derive(Serialize)]
pub struct ResultsDoc<'a> {
    #[serde(flatten)]
    pub results: &'a CheckResults,
    pub history: &'a str,
    pub checker: &'static str,
}

pub fn results_doc<'a>(results: &'a CheckResults, history_path: &'a str) -> ResultsDoc<'a> {
    ResultsDoc {
        results,
        history: history_path,
        checker: concat!("raftmq-jepsen ", env!("CARGO_PKG_VERSION")),
    }
}

/// Writes `results.json` and `report.html` into `dir` (created if missing); returns their paths.
pub fn write_reports(
    dir: &Path,
    history: &History,
    results: &CheckResults,
    history_path: &str,
) -> Result<(PathBuf, PathBuf), ReportError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| ReportError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let json_path = dir.join("results.json");
    let text = serde_json::to_string_pretty(&results_doc(results, history_path))?;
    std::fs::write(&json_path, text + "\n").map_err(io(&json_path))?;
    let html_path = dir.join("report.html");
    std::fs::write(&html_path, html(history, results, history_path)).map_err(io(&html_path))?;
    Ok((json_path, html_path))
}

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Renders the whole HTML page.
pub fn html(history: &History, results: &CheckResults, history_path: &str) -> String {
    let v = &results.verdict;
    let color = match v.outcome {
        crate::checker::Outcome::Valid => "#2b8a3e",
        crate::checker::Outcome::Invalid => "#c92a2a",
        crate::checker::Outcome::Unknown => "#e67700",
    };
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>raftmq-jepsen: {outcome}</title>\
         <style>body{{font-family:sans-serif;margin:2em;max-width:1000px}}\
         table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left}}\
         pre{{background:#f6f6f6;padding:8px;overflow:auto;max-height:300px}}\
         .badge{{color:#fff;background:{color};padding:4px 12px;border-radius:4px}}</style></head><body>\n\
         <h1>raftmq-jepsen check <span class=\"badge\">{outcome}</span></h1>\n<p>History: <code>{path}</code></p>\n",
        outcome = v.outcome,
        path = esc(history_path),
    );
    if !v.failed.is_empty() {
        let _ = writeln!(h, "<p><b>Failed:</b> {}</p>", esc(&v.failed.join(", ")));
    }
    for r in &v.unknown_reasons {
        let _ = writeln!(h, "<p><b>Not conclusive:</b> {}</p>", esc(r));
    }

    let s = &results.stats;
    let _ = writeln!(
        h,
        "<h2>History</h2><table><tr><th>operations</th><td>{}</td></tr>\
         <tr><th>duration</th><td>{:.3} s</td></tr>\
         <tr><th>sends (ok / fail / info)</th><td>{} ({} / {} / {})</td></tr>\
         <tr><th>polls (ok)</th><td>{} ({})</td></tr><tr><th>messages read</th><td>{}</td></tr>\
         <tr><th>queues</th><td>{}</td></tr><tr><th>offset commits</th><td>{}</td></tr>\
         <tr><th>fault windows (failed, unhealed)</th><td>{} ({}, {})</td></tr></table>",
        s.operations,
        s.duration_ns as f64 / 1e9,
        s.sends,
        s.sends_ok,
        s.sends_fail,
        s.sends_info,
        s.polls,
        s.polls_ok,
        s.messages_read,
        s.queues,
        s.commits,
        s.fault_windows,
        s.failed_faults,
        s.unhealed_faults,
    );

    h.push_str(
        "<h2>Properties</h2><table><tr><th>property</th><th>holds</th><th>counts</th></tr>\n",
    );
    let props: [(&str, bool, Value); 8] = [
        ("lost", results.lost.holds(), counts(&results.lost)),
        (
            "unexpected",
            results.unexpected.holds(),
            counts(&results.unexpected),
        ),
        (
            "duplicate",
            results.duplicate.holds(),
            counts(&results.duplicate),
        ),
        (
            "inconsistent",
            results.inconsistent.holds(),
            counts(&results.inconsistent),
        ),
        ("order", results.order.holds(), counts(&results.order)),
        ("offsets", results.offsets.holds(), counts(&results.offsets)),
        ("leaders", results.leaders.holds(), counts(&results.leaders)),
        (
            "availability",
            results.availability.holds(),
            counts(&results.availability),
        ),
    ];
    for (name, holds, c) in &props {
        let text = match c {
            Value::Object(m) => m
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join(", "),
            _ => String::new(),
        };
        let _ = writeln!(
            h,
            "<tr><td>{name}</td><td style=\"color:{}\">{}</td><td>{}</td></tr>",
            if *holds { "#2b8a3e" } else { "#c92a2a" },
            if *holds { "yes" } else { "NO" },
            esc(&text)
        );
    }
    if let Some(r) = &results.replicas {
        let summary: Vec<String> = r
            .groups
            .iter()
            .map(|g| {
                format!(
                    "{}: up to index {} (commitlog byte {}), {} consumequeues",
                    g.group,
                    g.lowest_committed.map_or("-".into(), |i| i.to_string()),
                    g.commit_pos,
                    g.consume_queues.len()
                )
            })
            .chain(r.error.iter().map(|e| format!("not done: {e}")))
            .collect();
        let holds = r.holds() && r.error.is_none();
        let _ = writeln!(
            h,
            "<tr><td>replicas</td><td style=\"color:{}\">{}</td><td>{}</td></tr>",
            if holds { "#2b8a3e" } else { "#c92a2a" },
            if r.error.is_some() {
                "not done"
            } else if holds {
                "yes"
            } else {
                "NO"
            },
            esc(&summary.join("; "))
        );
    }
    h.push_str("</table>\n");
    if let Some(r) = &results.replicas {
        h.push_str(&replicas_html(r));
    }

    let (t0, _) = history.span_ns();
    h.push_str("<h2>Plots</h2>\n");
    h.push_str(&latency_svg(history, &results.faults, OpF::Send, t0));
    h.push_str(&latency_svg(history, &results.faults, OpF::Poll, t0));
    h.push_str(&throughput_svg(history, &results.faults, t0));
    if let Some(svg) = roles_svg(history, &results.faults, t0) {
        h.push_str(&svg);
    }

    if !results.availability.windows.is_empty() {
        let grouped = results
            .availability
            .windows
            .iter()
            .any(|w| w.group.is_some());
        let _ = writeln!(
            h,
            "<h2>Fault windows</h2><table><tr><th>kind</th><th>targets</th><th>start s</th>\
             <th>end s</th><th>ok / failed sends during</th><th>recovery</th>{}</tr>",
            if grouped {
                "<th>group</th><th>recovery of the group</th>"
            } else {
                ""
            }
        );
        for w in &results.availability.windows {
            let rec = match (w.recovery_ns, w.unrecovered, w.healed) {
                (Some(r), _, _) => format!("{:.3} s", r as f64 / 1e9),
                (None, true, _) => "NEVER".into(),
                (None, _, false) => "not healed".into(),
                _ => "no sends after".into(),
            };
            let group = if grouped {
                format!(
                    "<td>{}</td><td>{}</td>",
                    esc(w.group.as_deref().unwrap_or("-")),
                    w.group_recovery_ns
                        .map_or("-".to_owned(), |r| format!("{:.3} s", r as f64 / 1e9))
                )
            } else {
                String::new()
            };
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{:.3}</td><td>{:.3}</td><td>{} / {}</td><td>{}</td>{group}</tr>",
                esc(&w.kind),
                esc(&w.targets.join(",")),
                secs(w.start_ns, t0),
                secs(w.end_ns, t0),
                w.sends_ok_during,
                w.sends_failed_during,
                rec
            );
        }
        h.push_str("</table>\n");
    }

    h.push_str("<h2>Examples</h2>\n");
    let examples: [(&str, Value); 9] = [
        ("lost", json!(results.lost.examples)),
        ("unexpected", json!(results.unexpected.examples)),
        ("duplicate", json!(results.duplicate.examples)),
        ("inconsistent", json!(results.inconsistent.examples)),
        ("order", json!(results.order.examples)),
        ("offsets", json!(results.offsets.examples)),
        ("split brain", json!(results.leaders.split_brain_examples)),
        (
            "term regressions",
            json!(results.leaders.term_regression_examples),
        ),
        ("failed faults", json!(results.failed_faults)),
    ];
    for (name, ex) in examples {
        if ex.as_array().is_some_and(|a| !a.is_empty()) {
            let text = serde_json::to_string_pretty(&ex).unwrap_or_default();
            let _ = writeln!(h, "<h3>{name}</h3><pre>{}</pre>", esc(&text));
        }
    }
    h.push_str("</body></html>\n");
    h
}

/// The replica comparison: per group, each replica's commit index, commit position, dispatch
/// checkpoint and stop, then the findings.
fn replicas_html(r: &crate::checker::replicas::ReplicasReport) -> String {
    let mut h = String::from("<h2>Replicas (stopped cluster)</h2>\n");
    for g in &r.groups {
        let _ = writeln!(
            h,
            "<h3>{}</h3><table><tr><th>replica</th><th>commit index</th><th>commit position</th>\
             <th>dispatched index</th><th>stopped cleanly</th></tr>",
            esc(&g.group)
        );
        let opt = |v: Option<u64>| v.map_or("-".to_owned(), |v| v.to_string());
        for s in &g.replicas {
            let killed = r.killed_at_stop.contains(&s.name);
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&s.name),
                opt(s.committed),
                opt(s.commit_end),
                opt(s.dispatched_index),
                match (s.clean, killed) {
                    (_, true) => "no (killed after the grace time)",
                    (true, false) => "yes",
                    (false, false) => "no (abort marker left)",
                }
            );
        }
        let _ = writeln!(
            h,
            "</table><p>Compared: entry index units up to index {}, commitlog bytes {}..{}, \
             {} consumequeues.</p>",
            opt(g.lowest_committed),
            g.commitlog.from,
            g.commitlog.to,
            g.consume_queues.len()
        );
        let findings = g.findings();
        if !findings.is_empty() {
            let _ = writeln!(h, "<pre>{}</pre>", esc(&findings.join("\n")));
        }
    }
    if let Some(e) = &r.error {
        let _ = writeln!(h, "<p><b>Not done:</b> {}</p>", esc(e));
    }
    h
}

/// The scalar fields of a report (its counts), without examples or lists.
fn counts(report: &impl serde::Serialize) -> Value {
    let mut out = serde_json::Map::new();
    if let Ok(Value::Object(m)) = serde_json::to_value(report) {
        for (k, v) in m {
            if v.is_number() {
                out.insert(k, v);
            }
        }
    }
    Value::Object(out)
}

fn secs(t: u64, t0: u64) -> f64 {
    t.saturating_sub(t0) as f64 / 1e9
}

const W: f64 = 900.0;
const H: f64 = 260.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 42.0;
const BOTTOM: f64 = 36.0;
const FAULT_COLORS: [&str; 6] = [
    "#f03e3e", "#7048e8", "#1c7ed6", "#f59f00", "#0ca678", "#d6336c",
];

/// Plot frame: time on x (seconds from the first operation), a value on y.
struct Frame {
    /// Height of the whole picture.
    h: f64,
    x_max: f64,
    y_min: f64,
    y_max: f64,
    log_y: bool,
}

impl Frame {
    fn x(&self, s: f64) -> f64 {
        LEFT + (s / self.x_max).clamp(0.0, 1.0) * (W - LEFT - RIGHT)
    }
    fn y(&self, v: f64) -> f64 {
        let f = if self.log_y {
            (v.max(self.y_min).log10() - self.y_min.log10())
                / (self.y_max.log10() - self.y_min.log10())
        } else {
            (v - self.y_min) / (self.y_max - self.y_min)
        };
        self.h - BOTTOM - f.clamp(0.0, 1.0) * (self.h - TOP - BOTTOM)
    }

    fn open(&self, out: &mut String, title: &str, y_label: &str) {
        let _ = write!(
            out,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{}\" \
             font-family=\"sans-serif\" font-size=\"11\">\
             <text x=\"{LEFT}\" y=\"16\" font-size=\"13\" font-weight=\"bold\">{}</text>\
             <text x=\"12\" y=\"{}\" transform=\"rotate(-90 12 {})\">{}</text>",
            self.h,
            esc(title),
            self.h / 2.0,
            self.h / 2.0,
            esc(y_label)
        );
    }

    fn faults(&self, out: &mut String, faults: &[FaultWindow], t0: u64) {
        let mut kinds: Vec<&str> = Vec::new();
        for w in faults {
            let k = match kinds.iter().position(|k| *k == w.kind) {
                Some(k) => k,
                None => {
                    kinds.push(&w.kind);
                    kinds.len() - 1
                }
            };
            let (a, b) = (self.x(secs(w.start_ns, t0)), self.x(secs(w.end_ns, t0)));
            let _ = write!(
                out,
                "<rect x=\"{a:.1}\" y=\"{TOP}\" width=\"{:.1}\" height=\"{}\" fill=\"{}\" \
                 fill-opacity=\"0.15\"><title>{} {} ({:.3}s to {:.3}s)</title></rect>",
                (b - a).max(1.0),
                self.h - TOP - BOTTOM,
                FAULT_COLORS[k % FAULT_COLORS.len()],
                esc(&w.kind),
                esc(&w.targets.join(",")),
                secs(w.start_ns, t0),
                secs(w.end_ns, t0)
            );
        }
        for (k, kind) in kinds.iter().enumerate() {
            let x = W - RIGHT - 90.0 * (kinds.len() - k) as f64;
            let _ = write!(
                out,
                "<rect x=\"{x}\" y=\"6\" width=\"10\" height=\"10\" fill=\"{}\" fill-opacity=\"0.4\"/>\
                 <text x=\"{}\" y=\"15\">{}</text>",
                FAULT_COLORS[k % FAULT_COLORS.len()],
                x + 14.0,
                esc(kind)
            );
        }
    }

    fn axes(&self, out: &mut String) {
        self.time_axis(out);
        self.value_ticks(out);
    }

    /// The frame's left and bottom lines with time ticks.
    fn time_axis(&self, out: &mut String) {
        let (x0, x1, y0, y1) = (LEFT, W - RIGHT, TOP, self.h - BOTTOM);
        let _ = write!(
            out,
            "<path d=\"M{x0} {y0}V{y1}H{x1}\" fill=\"none\" stroke=\"#333\"/>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"middle\">time (s)</text>",
            (x0 + x1) / 2.0,
            self.h - 4.0
        );
        for t in ticks(0.0, self.x_max) {
            let x = self.x(t);
            let _ = write!(
                out,
                "<path d=\"M{x:.1} {y1}v4\" stroke=\"#333\"/>\
                 <text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                y1 + 15.0,
                fmt_num(t)
            );
        }
    }

    fn value_ticks(&self, out: &mut String) {
        let (x0, x1) = (LEFT, W - RIGHT);
        let ys: Vec<f64> = if self.log_y {
            let mut v = Vec::new();
            let mut p = 10f64.powf(self.y_min.log10().floor());
            while p <= self.y_max * 1.0001 {
                if p >= self.y_min * 0.9999 {
                    v.push(p);
                }
                p *= 10.0;
            }
            v
        } else {
            ticks(self.y_min, self.y_max)
        };
        for v in ys {
            let y = self.y(v);
            let _ = write!(
                out,
                "<path d=\"M{x0} {y:.1}h-4\" stroke=\"#333\"/>\
                 <path d=\"M{x0} {y:.1}H{x1}\" stroke=\"#eee\"/>\
                 <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                x0 - 6.0,
                y + 4.0,
                fmt_num(v)
            );
        }
    }

    /// Series legend, on the second line of the top margin.
    fn legend(&self, out: &mut String, items: &[(&str, &str)]) {
        for (i, (label, color)) in items.iter().enumerate() {
            let x = LEFT + 130.0 * i as f64;
            let _ = write!(
                out,
                "<rect x=\"{x}\" y=\"23\" width=\"10\" height=\"10\" fill=\"{color}\"/>\
                 <text x=\"{}\" y=\"32\">{}</text>",
                x + 14.0,
                esc(label)
            );
        }
    }
}

/// About five round tick values covering `lo..=hi`.
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) {
        return vec![lo];
    }
    let raw = (hi - lo) / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let mut v = Vec::new();
    let mut t = (lo / step).ceil() * step;
    while t <= hi + step * 1e-9 && v.len() < 50 {
        v.push(t);
        t += step;
    }
    v
}

fn fmt_num(v: f64) -> String {
    if v != 0.0 && (v.abs() >= 1e7 || v.abs() < 1e-4) {
        return format!("{v:.0e}");
    }
    let s = format!("{v:.6}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn outcome_color(kind: OpType, f: OpF) -> &'static str {
    match (kind, f) {
        (OpType::Ok, OpF::Poll) => "#1c7ed6",
        (OpType::Ok, _) => "#2b8a3e",
        (OpType::Fail, _) => "#c92a2a",
        _ => "#f08c00",
    }
}

/// (invoke time, latency, outcome) of every completed `f` operation.
fn latencies(history: &History, f: OpF) -> Vec<(u64, u64, OpType)> {
    let ops = history.ops();
    ops.iter()
        .enumerate()
        .filter(|(_, op)| op.f == f && op.is_completion())
        .filter_map(|(i, op)| {
            let inv = &ops[history.pair(i)?];
            Some((inv.time_ns, op.time_ns - inv.time_ns, op.kind))
        })
        .collect()
}

/// Latency over time for `f`, log scale, fault windows shaded.
pub fn latency_svg(history: &History, faults: &[FaultWindow], f: OpF, t0: u64) -> String {
    let points = latencies(history, f);
    let (_, t1) = history.span_ns();
    let ms = |ns: u64| (ns as f64 / 1e6).max(0.001);
    let lo = points.iter().map(|p| ms(p.1)).fold(f64::INFINITY, f64::min);
    let hi = points.iter().map(|p| ms(p.1)).fold(0.0, f64::max);
    let frame = Frame {
        h: H,
        x_max: secs(t1, t0).max(1e-3),
        y_min: if lo.is_finite() {
            10f64.powf(lo.log10().floor())
        } else {
            0.1
        },
        y_max: if hi > 0.0 {
            10f64.powf(hi.log10().ceil()).max(hi * 1.01)
        } else {
            1.0
        },
        log_y: true,
    };
    let mut out = String::new();
    frame.open(
        &mut out,
        &format!("{f} latency ({} operations)", points.len()),
        "latency (ms)",
    );
    frame.faults(&mut out, faults, t0);
    frame.axes(&mut out);
    // One dot per 2x2 pixel cell and outcome keeps the SVG small for any history size.
    let mut cells = std::collections::HashSet::new();
    for &(t, lat, kind) in &points {
        let x = frame.x(secs(t, t0));
        let y = frame.y(ms(lat));
        if cells.insert(((x / 2.0) as i32, (y / 2.0) as i32, kind as u8)) {
            let _ = write!(
                out,
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"2\" height=\"2\" fill=\"{}\"/>",
                y - 1.0,
                outcome_color(kind, f)
            );
        }
    }
    frame.legend(
        &mut out,
        &[
            ("ok", outcome_color(OpType::Ok, f)),
            ("fail", outcome_color(OpType::Fail, f)),
            ("info", outcome_color(OpType::Info, f)),
        ],
    );
    out.push_str("</svg>\n");
    out
}

fn role_color(role: &str) -> &'static str {
    match role {
        "leader" => "#2b8a3e",
        "follower" => "#ced4da",
        "candidate" => "#f08c00",
        "learner" => "#74c0fc",
        "down" => "#c92a2a",
        _ => "#ffffff",
    }
}

/// One lane per node showing its observed role over time (`role` observations), fault windows
/// shaded. None when the history has no role observations.
pub fn roles_svg(history: &History, faults: &[FaultWindow], t0: u64) -> Option<String> {
    let (_, t1) = history.span_ns();
    // node -> merged (start, role) changes.
    let mut lanes: std::collections::BTreeMap<&str, Vec<(u64, &str)>> = Default::default();
    for op in history.ops() {
        if op.f != OpF::Role || op.kind != OpType::Ok {
            continue;
        }
        for n in op.nodes.iter().flatten() {
            let lane = lanes.entry(&n.node).or_default();
            if lane.last().is_none_or(|l| l.1 != n.role) {
                lane.push((op.time_ns, &n.role));
            }
        }
    }
    if lanes.is_empty() {
        return None;
    }
    const LANE: f64 = 20.0;
    let frame = Frame {
        h: TOP + LANE * lanes.len() as f64 + BOTTOM,
        x_max: secs(t1, t0).max(1e-3),
        y_min: 0.0,
        y_max: 1.0,
        log_y: false,
    };
    let mut out = String::new();
    frame.open(&mut out, "roles (as observed)", "");
    for (k, (node, changes)) in lanes.iter().enumerate() {
        let y = TOP + LANE * k as f64;
        for (c, &(start, role)) in changes.iter().enumerate() {
            let end = changes.get(c + 1).map_or(t1, |n| n.0);
            let (a, b) = (frame.x(secs(start, t0)), frame.x(secs(end, t0)));
            let _ = write!(
                out,
                "<rect x=\"{a:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\">\
                 <title>{} {} from {:.3}s</title></rect>",
                y + 2.0,
                (b - a).max(0.5),
                LANE - 4.0,
                role_color(role),
                esc(node),
                esc(role),
                secs(start, t0)
            );
        }
        let _ = write!(
            out,
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            LEFT - 6.0,
            y + LANE / 2.0 + 4.0,
            esc(node)
        );
    }
    frame.faults(&mut out, faults, t0);
    frame.time_axis(&mut out);
    frame.legend(
        &mut out,
        &[
            ("leader", role_color("leader")),
            ("follower", role_color("follower")),
            ("candidate", role_color("candidate")),
            ("down", role_color("down")),
        ],
    );
    out.push_str("</svg>\n");
    Some(out)
}

/// Completions per second over time: sends ok, sends failed or unknown, polls ok.
pub fn throughput_svg(history: &History, faults: &[FaultWindow], t0: u64) -> String {
    let (_, t1) = history.span_ns();
    let span = t1.saturating_sub(t0).max(1);
    let buckets = 200u64.min(span.div_ceil(1_000_000).max(1)) as usize;
    let width_ns = span.div_ceil(buckets as u64).max(1);
    let mut series = vec![vec![0u64; buckets]; 3];
    for op in history.ops() {
        let s = match (op.f, op.kind) {
            (OpF::Send, OpType::Ok) => 0,
            (OpF::Send, OpType::Fail | OpType::Info) => 1,
            (OpF::Poll, OpType::Ok) => 2,
            _ => continue,
        };
        let b = ((op.time_ns - t0) / width_ns).min(buckets as u64 - 1) as usize;
        series[s][b] += 1;
    }
    let per_s = 1e9 / width_ns as f64;
    let y_max = series.iter().flatten().copied().max().unwrap_or(0) as f64 * per_s;
    let frame = Frame {
        h: H,
        x_max: secs(t1, t0).max(1e-3),
        y_min: 0.0,
        y_max: if y_max > 0.0 { y_max * 1.05 } else { 1.0 },
        log_y: false,
    };
    let mut out = String::new();
    frame.open(
        &mut out,
        &format!("throughput ({:.3} s buckets)", width_ns as f64 / 1e9),
        "operations / s",
    );
    frame.faults(&mut out, faults, t0);
    frame.axes(&mut out);
    let colors = ["#2b8a3e", "#c92a2a", "#1c7ed6"];
    for (s, counts) in series.iter().enumerate() {
        let mut d = String::new();
        for (b, &c) in counts.iter().enumerate() {
            let t = (b as f64 + 0.5) * width_ns as f64 / 1e9;
            let _ = write!(
                d,
                "{}{:.1} {:.1}",
                if b == 0 { "M" } else { "L" },
                frame.x(t),
                frame.y(c as f64 * per_s)
            );
        }
        let _ = write!(
            out,
            "<path d=\"{d}\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\"/>",
            colors[s]
        );
    }
    frame.legend(
        &mut out,
        &[
            ("send ok", colors[0]),
            ("send fail/info", colors[1]),
            ("poll ok", colors[2]),
        ],
    );
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(ticks(0.0, 10.0), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(ticks(0.0, 0.0), vec![0.0]);
        assert!(ticks(0.0, 123.0).iter().all(|t| *t <= 123.0));
    }

    #[test]
    fn numbers_print_short_and_exact() {
        let shown: Vec<String> = [0.0, 0.005, 0.015, 2.5, 1000.0, 1e-5, 3e8]
            .iter()
            .map(|v| fmt_num(*v))
            .collect();
        assert_eq!(shown, ["0", "0.005", "0.015", "2.5", "1000", "1e-5", "3e8"]);
    }

    #[test]
    fn html_escapes_text() {
        assert_eq!(
            esc("<a href='x'>&</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt;"
        );
    }
}
