//! Results: the records, the machine they were measured on, the targets,
//! and the two ways of printing them (a table for people, JSON for
//! programs).
//!
//! Every record of a subject belongs to one comparison with one floor and
//! carries both sides' per-round figures and the per-round ratios (see
//! [`crate::rounds`]); a floor record pools every round its floor was
//! measured in during a pass.

use std::fmt::Write as _;

use crate::rounds::{Outcome, Summary, median};

/// One figure: a round trip, a stream or a floor, in one pass.
#[derive(Clone, Debug, Default)]
pub struct Record {
    /// `pinned`, `unpinned` or `one-cpu`.
    pub pass: &'static str,
    /// `shm`, `pipe`, ..., or a floor: `atomic`, `futex`, `line-stream`,
    /// `cross-copy`, `pipe-raw`, ...
    pub transport: String,
    /// `spin`, `block` or `raw`.
    pub mode: &'static str,
    /// `rtt`, `stream` or `floor`.
    pub kind: &'static str,
    /// For the ring's round trips: `zero-copy` (grants), `copy` (send and
    /// try_recv) or `wake` (zero-copy after an idle gap, so that the
    /// receiver sleeps); empty otherwise.
    pub variant: &'static str,
    /// Message (or copy) size in bytes.
    pub size: usize,
    /// Round trips timed, or messages streamed, over all rounds.
    pub samples: u64,
    /// Round trip: the median of the rounds' medians, in ns.
    pub p50_ns: Option<f64>,
    /// The p99 of all rounds' round trips pooled.
    pub p99_ns: Option<f64>,
    /// The p99.9 of all rounds' round trips pooled.
    pub p999_ns: Option<f64>,
    /// Streaming: the median of the rounds' rates.
    pub msgs_per_s: Option<f64>,
    /// See `msgs_per_s`.
    pub bytes_per_s: Option<f64>,
    /// Each round's median round trip, in ns.
    pub rounds_p50_ns: Vec<f64>,
    /// Each round's rate in bytes/s.
    pub rounds_bytes_per_s: Vec<f64>,
    /// The floor this figure is compared with, as `name/size`.
    pub floor: Option<String>,
    /// The floor's figure in each round (ns or bytes/s, as the subject's).
    pub floor_rounds: Vec<f64>,
    /// The per-round ratios subject / floor: latency (1.0 is the floor;
    /// lower is better) or throughput (1.0 is the floor; higher is better).
    pub ratio: Summary,
    /// Why a figure is missing (a transport's size limit, a pass without
    /// this floor).
    pub note: Option<String>,
}

impl Record {
    /// Whether it has a latency figure.
    pub fn has_latency(&self) -> bool {
        self.p50_ns.is_some()
    }

    /// Whether it has a throughput figure.
    pub fn has_rate(&self) -> bool {
        self.bytes_per_s.is_some()
    }

    /// Adds the rounds' outcomes: latency figures from the round trips,
    /// rate figures from the streams (a raw floor has both).
    pub fn add_outcomes(&mut self, outcomes: &[Outcome]) {
        let mut pooled = Vec::new();
        let mut msgs = Vec::new();
        for outcome in outcomes {
            match outcome {
                Outcome::Latency(rtts) => {
                    self.rounds_p50_ns.extend(outcome.figure());
                    pooled.extend_from_slice(rtts);
                }
                Outcome::Rate { count, .. } => {
                    self.rounds_bytes_per_s.extend(outcome.figure());
                    msgs.extend(outcome.msgs_per_s());
                    self.samples += count;
                }
            }
        }
        if !pooled.is_empty() {
            pooled.sort_unstable();
            self.samples += pooled.len() as u64;
            let ns = |p| shmlane_examples::rtt::percentile(&pooled, p).map(|d| d.as_nanos() as f64);
            self.p50_ns = median(&self.rounds_p50_ns);
            (self.p99_ns, self.p999_ns) = (ns(0.99), ns(0.999));
        }
        if !msgs.is_empty() {
            self.bytes_per_s = median(&self.rounds_bytes_per_s);
            self.msgs_per_s = median(&msgs);
        }
    }

    /// The figure a ratio uses: rounds of medians (round trips) or of
    /// rates (streams).
    pub fn figure_rounds(&self) -> &[f64] {
        if self.kind == "stream" {
            &self.rounds_bytes_per_s
        } else {
            &self.rounds_p50_ns
        }
    }

    /// The floor's median over the comparison's rounds.
    pub fn floor_figure(&self) -> Option<f64> {
        median(&self.floor_rounds)
    }

    /// The name people read: `shm spin zero-copy`, `pipe block`,
    /// `atomic (floor)`.
    pub fn label(&self) -> String {
        match (self.kind, self.variant) {
            ("floor", _) => format!("{} (floor)", self.transport),
            (_, "") => format!("{} {}", self.transport, self.mode),
            (_, variant) => format!("{} {} {variant}", self.transport, self.mode),
        }
    }
}

/// What the figures were measured on.
#[derive(Clone, Debug, Default)]
pub struct Machine {
    /// CPUs this process could use.
    pub cpus: usize,
    /// `model name` from /proc/cpuinfo.
    pub cpu_model: String,
    /// Kernel release.
    pub kernel: String,
    /// Whether /proc/cpuinfo says we run under a hypervisor.
    pub virtualized: bool,
    /// UTC date of the run (YYYY-MM-DD).
    pub date: String,
    /// `--quick`.
    pub quick: bool,
    /// The passes that ran, in order (`pinned`, `unpinned`, `one-cpu`).
    pub passes: Vec<&'static str>,
    /// Rounds per comparison.
    pub rounds: usize,
}

impl Machine {
    /// Reads /proc.
    pub fn probe(quick: bool, passes: Vec<&'static str>, rounds: usize, cpus: usize) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let field = |name: &str| {
            cpuinfo
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        };
        Machine {
            cpus,
            cpu_model: field("model name").unwrap_or_else(|| "unknown".to_owned()),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|_| "unknown".to_owned()),
            virtualized: field("flags").is_some_and(|f| f.split(' ').any(|w| w == "hypervisor")),
            date: today(),
            quick,
            passes,
            rounds,
        }
    }
}

/// Today's UTC date, from the system clock (days to civil date, as in
/// Howard Hinnant's `civil_from_days`).
fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// A performance target and how this run did against it.
#[derive(Clone, Debug)]
pub struct Target {
    /// What is promised.
    pub name: String,
    /// The pass it is judged in.
    pub pass: &'static str,
    /// What was measured, round by round (empty: not measured in this
    /// run); judged by the median.
    pub value: Summary,
    /// The bound.
    pub limit: f64,
    /// Whether the median must be at most (true) or at least (false)
    /// `limit`.
    pub at_most: bool,
    /// The unit of `value` and `limit`.
    pub unit: &'static str,
}

impl Target {
    /// Whether it was met (None: not measured).
    pub fn met(&self) -> Option<bool> {
        self.value.median.map(|v| {
            if self.at_most {
                v <= self.limit
            } else {
                v >= self.limit
            }
        })
    }
}

/// The idle-receiver check: CPU used by a blocked spin-then-futex receiver.
#[derive(Clone, Debug)]
pub struct Idle {
    /// How long it was left idle.
    pub seconds: f64,
    /// CPU time it used meanwhile, in percent of one CPU.
    pub cpu_percent: f64,
    /// Its context switches (every thread of the process) per second
    /// meanwhile: how often it was woken.
    pub wakeups_per_s: f64,
}

/// Everything one run measured.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// The machine.
    pub machine: Machine,
    /// Every figure.
    pub records: Vec<Record>,
    /// The idle check, if it ran.
    pub idle: Option<Idle>,
    /// The targets, judged.
    pub targets: Vec<Target>,
    /// Goals the bench does not measure, and where they are measured.
    pub not_measured: Vec<String>,
}

/// How the bench measures, in one paragraph (the JSON's `method`).
pub const METHOD: &str = "Each ratio compares a subject with its floor measured in interleaved rounds between the same CPUs (floor, subject, floor, subject, ...): one ratio per round, reported as the median with its min-max spread. Latency ratios are round-trip medians (lower is better, 1.0 is the floor); throughput ratios are bytes/s (higher is better). Floors: atomic (one cache line ping-pong), futex (a wake per turn, after an idle gap), line-stream (64-byte lines with a sequence word, followed line by line), cross-copy (N bytes written by one process, read in full by the other, and back), and each kernel transport used raw.";

fn num(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => {
            if v.fract() == 0.0 && v.abs() < 1e15 {
                format!("{v:.0}")
            } else {
                format!("{v:.4}")
            }
        }
        _ => "null".to_owned(),
    }
}

fn nums(values: &[f64]) -> String {
    let items: Vec<String> = values.iter().map(|&v| num(Some(v))).collect();
    format!("[{}]", items.join(", "))
}

fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn opt_string(s: Option<&str>) -> String {
    s.map_or_else(|| "null".to_owned(), string)
}

impl Report {
    /// The report as one JSON document.
    pub fn to_json(&self) -> String {
        let m = &self.machine;
        let passes: Vec<String> = m.passes.iter().map(|p| string(p)).collect();
        let mut out = String::new();
        let _ = write!(
            out,
            "{{\n  \"machine\": {{\"cpus\": {}, \"cpu_model\": {}, \"kernel\": {}, \"virtualized\": {}, \"date\": {}, \"quick\": {}, \"passes\": [{}], \"rounds\": {}}},\n  \"method\": {},\n  \"results\": [",
            m.cpus,
            string(&m.cpu_model),
            string(&m.kernel),
            m.virtualized,
            string(&m.date),
            m.quick,
            passes.join(", "),
            m.rounds,
            string(METHOD),
        );
        for (i, r) in self.records.iter().enumerate() {
            let _ = write!(
                out,
                "{}\n    {{\"pass\": {}, \"transport\": {}, \"mode\": {}, \"kind\": {}, \"variant\": {}, \"size\": {}, \"samples\": {}, \"p50_ns\": {}, \"p99_ns\": {}, \"p999_ns\": {}, \"msgs_per_s\": {}, \"bytes_per_s\": {}, \"rounds_p50_ns\": {}, \"rounds_bytes_per_s\": {}, \"floor\": {}, \"floor_rounds\": {}, \"ratios\": {}, \"ratio_to_floor\": {}, \"ratio_min\": {}, \"ratio_max\": {}, \"note\": {}}}",
                if i == 0 { "" } else { "," },
                string(r.pass),
                string(&r.transport),
                string(r.mode),
                string(r.kind),
                opt_string((!r.variant.is_empty()).then_some(r.variant)),
                r.size,
                r.samples,
                num(r.p50_ns),
                num(r.p99_ns),
                num(r.p999_ns),
                num(r.msgs_per_s),
                num(r.bytes_per_s),
                nums(&r.rounds_p50_ns),
                nums(&r.rounds_bytes_per_s),
                opt_string(r.floor.as_deref()),
                nums(&r.floor_rounds),
                nums(&r.ratio.rounds),
                num(r.ratio.median),
                num(r.ratio.min),
                num(r.ratio.max),
                opt_string(r.note.as_deref()),
            );
        }
        out.push_str("\n  ],\n  \"idle_receiver\": ");
        match &self.idle {
            Some(idle) => {
                let _ = write!(
                    out,
                    "{{\"transport\": \"shm\", \"mode\": \"block\", \"seconds\": {}, \"cpu_percent\": {}, \"wakeups_per_s\": {}}}",
                    num(Some(idle.seconds)),
                    num(Some(idle.cpu_percent)),
                    num(Some(idle.wakeups_per_s))
                );
            }
            None => out.push_str("null"),
        }
        out.push_str(",\n  \"targets\": [");
        for (i, t) in self.targets.iter().enumerate() {
            let met = t.met().map_or("null".to_owned(), |m| m.to_string());
            let _ = write!(
                out,
                "{}\n    {{\"target\": {}, \"pass\": {}, \"value\": {}, \"min\": {}, \"max\": {}, \"rounds\": {}, \"limit\": {}, \"bound\": {}, \"unit\": {}, \"met\": {}}}",
                if i == 0 { "" } else { "," },
                string(&t.name),
                string(t.pass),
                num(t.value.median),
                num(t.value.min),
                num(t.value.max),
                nums(&t.value.rounds),
                num(Some(t.limit)),
                string(if t.at_most { "at_most" } else { "at_least" }),
                string(t.unit),
                met
            );
        }
        out.push_str("\n  ],\n  \"not_measured\": [");
        let notes: Vec<String> = self.not_measured.iter().map(|n| string(n)).collect();
        out.push_str(&notes.join(", "));
        out.push_str("]\n}\n");
        out
    }

    /// The report as tables for people.
    pub fn to_table(&self) -> String {
        let m = &self.machine;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "shmlane bench, {}: {} CPUs ({}{}), Linux {}{}; {} interleaved rounds per ratio",
            m.date,
            m.cpus,
            m.cpu_model,
            if m.virtualized { ", virtualized" } else { "" },
            m.kernel,
            if m.quick { ", --quick" } else { "" },
            m.rounds,
        );
        for &pass in &m.passes {
            let records: Vec<&Record> = self.records.iter().filter(|r| r.pass == pass).collect();
            if records.is_empty() {
                continue;
            }
            let _ = writeln!(out, "\n== {} ==", pass_title(pass));
            let _ = writeln!(
                out,
                "\nFloors (every round of the pass)       size     median      rounds min–max"
            );
            for r in records.iter().filter(|r| r.kind == "floor") {
                if r.has_latency() {
                    let (lo, hi) = crate::rounds::spread(&r.rounds_p50_ns).unzip();
                    let _ = writeln!(
                        out,
                        "{:<38} {:>5} {:>10}   {:>8}–{}",
                        r.transport,
                        size(r.size),
                        ns(r.p50_ns),
                        ns(lo),
                        ns(hi)
                    );
                }
                if r.has_rate() {
                    let (lo, hi) = crate::rounds::spread(&r.rounds_bytes_per_s).unzip();
                    let _ = writeln!(
                        out,
                        "{:<38} {:>5} {:>10}   {:>8}–{} (streaming)",
                        r.transport,
                        size(r.size),
                        bytes(r.bytes_per_s),
                        bytes(lo),
                        bytes(hi)
                    );
                }
            }
            let _ = writeln!(
                out,
                "\nRound trip                  size      p50      p99    p99.9   floor (same rounds)       ratio  min–max"
            );
            for r in records.iter().filter(|r| r.kind == "rtt") {
                let _ = writeln!(
                    out,
                    "{:<24} {:>7} {:>8} {:>8} {:>8}   {:<24} {}",
                    r.label(),
                    size(r.size),
                    ns(r.p50_ns),
                    ns(r.p99_ns),
                    ns(r.p999_ns),
                    floor_cell(r, ns),
                    ratio_cell(r)
                );
            }
            let _ = writeln!(
                out,
                "\nStreaming                   size     msgs/s      bytes/s   floor (same rounds)       ratio  min–max"
            );
            for r in records.iter().filter(|r| r.kind == "stream") {
                let _ = writeln!(
                    out,
                    "{:<24} {:>7} {:>10} {:>12}   {:<24} {}",
                    r.label(),
                    size(r.size),
                    count(r.msgs_per_s),
                    bytes(r.bytes_per_s),
                    floor_cell(r, bytes),
                    ratio_cell(r)
                );
            }
        }
        if let Some(idle) = &self.idle {
            let _ = writeln!(
                out,
                "\nIdle receiver (shm, spin-then-futex, {:.1} s blocked): {:.3} % of a CPU, {:.1} wake-ups/s",
                idle.seconds, idle.cpu_percent, idle.wakeups_per_s
            );
        }
        if !self.targets.is_empty() {
            let _ = writeln!(
                out,
                "\nTargets (median of the rounds [min–max])                            pass       median [min–max]        bound    verdict"
            );
            for t in &self.targets {
                let verdict = match t.met() {
                    Some(true) => "met",
                    Some(false) => "MISSED",
                    None => "not measured",
                };
                let value = match (t.value.median, t.value.min, t.value.max) {
                    (Some(v), Some(lo), Some(hi)) => format!("{v:.3} [{lo:.3}–{hi:.3}]"),
                    _ => "-".to_owned(),
                };
                let _ = writeln!(
                    out,
                    "  {:<66} {:<9} {:>23}  {} {:<7} {}",
                    t.name,
                    t.pass,
                    value,
                    if t.at_most { "<=" } else { ">=" },
                    format!("{}{}", t.limit, t.unit),
                    verdict
                );
            }
        }
        for note in &self.not_measured {
            let _ = writeln!(out, "  {note}");
        }
        let _ = writeln!(
            out,
            "\nratio: per round, subject / floor measured in the same round; latency = median round trip (lower is better, 1.0 = the floor); throughput = bytes/s (higher is better). Floors pooled over the pass show how far the machine drifts."
        );
        out
    }
}

fn pass_title(pass: &str) -> &'static str {
    match pass {
        "pinned" => "pinned: this process on one CPU, the peer on another",
        "one-cpu" => "one CPU: both processes pinned to the same CPU",
        _ => "unpinned: the scheduler places both",
    }
}

fn floor_cell(r: &Record, unit: fn(Option<f64>) -> String) -> String {
    match &r.floor {
        Some(floor) => format!("{floor} {}", unit(r.floor_figure())),
        None => "-".to_owned(),
    }
}

fn ratio_cell(r: &Record) -> String {
    match (r.ratio.median, r.ratio.min, r.ratio.max, &r.note) {
        (Some(x), Some(lo), Some(hi), _) => format!("{x:>5.2}  {lo:.2}–{hi:.2}"),
        (_, _, _, Some(note)) => note.clone(),
        _ => String::new(),
    }
}

fn size(n: usize) -> String {
    if n >= 1 << 20 && n % (1 << 20) == 0 {
        format!("{}M", n >> 20)
    } else if n >= 1 << 10 && n % (1 << 10) == 0 {
        format!("{}K", n >> 10)
    } else {
        n.to_string()
    }
}

fn ns(v: Option<f64>) -> String {
    match v {
        Some(v) if v >= 1e8 => format!("{:.0}m", v / 1e6),
        Some(v) if v >= 1e5 => format!("{:.0}µ", v / 1000.0),
        Some(v) if v >= 1e4 => format!("{:.1}µ", v / 1000.0),
        Some(v) => format!("{v:.0}"),
        None => "-".to_owned(),
    }
}

fn count(v: Option<f64>) -> String {
    match v {
        Some(v) if v >= 1e6 => format!("{:.2} M", v / 1e6),
        Some(v) if v >= 1e3 => format!("{:.1} k", v / 1e3),
        Some(v) => format!("{v:.0}"),
        None => "-".to_owned(),
    }
}

fn bytes(v: Option<f64>) -> String {
    match v {
        Some(v) => format!("{:.2}G/s", v / (1u64 << 30) as f64),
        None => "-".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_escaped_and_missing_numbers_are_null() {
        assert_eq!(string("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
        assert_eq!(num(None), "null");
        assert_eq!(num(Some(f64::NAN)), "null");
        assert_eq!(num(Some(3.0)), "3");
        assert_eq!(num(Some(0.5)), "0.5000");
    }

    #[test]
    fn figures_come_from_the_rounds() {
        use std::time::Duration;
        let mut r = Record {
            size: 64,
            ..Record::default()
        };
        let round =
            |from: u64| Outcome::Latency((from..from + 1000).map(Duration::from_nanos).collect());
        // Round medians 500, 1500, 2500: the record's is their median; the
        // tail comes from all round trips pooled.
        r.add_outcomes(&[round(1), round(2001), round(1001)]);
        assert_eq!(r.rounds_p50_ns, vec![501.0, 2501.0, 1501.0]);
        assert_eq!(
            (r.samples, r.p50_ns, r.p999_ns),
            (3000, Some(1501.0), Some(2997.0))
        );
        let rate = |count: u64| Outcome::Rate {
            count,
            bytes: count * 64,
            elapsed: Duration::from_millis(500),
        };
        let mut s = Record::default();
        s.add_outcomes(&[rate(2_000), rate(1_000), rate(3_000)]);
        assert_eq!(
            (s.samples, s.msgs_per_s, s.bytes_per_s),
            (6000, Some(4000.0), Some(256_000.0))
        );
    }

    #[test]
    fn json_carries_the_rounds() {
        let mut r = Record {
            pass: "pinned",
            transport: "shm".into(),
            mode: "spin",
            kind: "rtt",
            variant: "zero-copy",
            size: 64,
            floor: Some("atomic/8".into()),
            floor_rounds: vec![100.0, 200.0],
            ..Record::default()
        };
        r.rounds_p50_ns = vec![300.0, 500.0];
        r.ratio = Summary::of(vec![3.0, 2.5]);
        let report = Report {
            records: vec![r],
            ..Report::default()
        };
        let json = report.to_json();
        assert!(json.contains("\"rounds_p50_ns\": [300, 500]"), "{json}");
        assert!(json.contains("\"ratios\": [3, 2.5000]"), "{json}");
        assert!(json.contains("\"ratio_to_floor\": 2.7500"), "{json}");
        assert!(json.contains("\"variant\": \"zero-copy\""), "{json}");
    }

    #[test]
    fn today_is_a_plausible_date() {
        let d = today();
        assert_eq!(d.len(), 10, "{d}");
        let year: u32 = d[..4].parse().unwrap();
        assert!(year >= 2024, "{d}");
    }

    #[test]
    fn targets_judge_both_directions() {
        let t = |rounds: &[f64], at_most| Target {
            name: String::new(),
            pass: "pinned",
            value: Summary::of(rounds.to_vec()),
            limit: 1.5,
            at_most,
            unit: "x",
        };
        // The median judges: one bad round does not.
        assert_eq!(t(&[1.4, 9.0, 1.0], true).met(), Some(true));
        assert_eq!(t(&[1.6, 1.7, 1.0], true).met(), Some(false));
        assert_eq!(t(&[1.6], false).met(), Some(true));
        assert_eq!(t(&[], false).met(), None);
    }
}
