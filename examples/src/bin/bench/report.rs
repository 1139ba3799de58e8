//! Results: the records, the machine they were measured on, the targets,
//! and the two ways of printing them (a table for people, JSON for
//! programs).

use std::fmt::Write as _;

/// One figure: a round trip, a stream or a floor.
#[derive(Clone, Debug, Default)]
pub struct Record {
    /// `shm`, `pipe`, ..., or a floor: `atomic`, `futex`, `memcpy`, `pipe-raw`, ...
    pub transport: String,
    /// `spin`, `block` or `raw`.
    pub mode: &'static str,
    /// `rtt`, `stream` or `floor`.
    pub kind: &'static str,
    /// Message (or copy) size in bytes.
    pub size: usize,
    /// Whether the two processes were pinned to two CPUs.
    pub pinned: bool,
    /// Round trips timed, or messages streamed.
    pub samples: u64,
    /// Round-trip median, p99, p99.9 in ns.
    pub p50_ns: Option<f64>,
    /// See `p50_ns`.
    pub p99_ns: Option<f64>,
    /// See `p50_ns`.
    pub p999_ns: Option<f64>,
    /// Streaming (or copying) rate.
    pub msgs_per_s: Option<f64>,
    /// See `msgs_per_s`.
    pub bytes_per_s: Option<f64>,
    /// The floor this figure is compared with, as `transport/size`.
    pub floor: Option<String>,
    /// Latency: median / floor's median (1.0 is the floor; lower is
    /// better). Throughput: bytes/s / floor's bytes/s (1.0 is the floor;
    /// higher is better).
    pub ratio_to_floor: Option<f64>,
    /// Why a figure is missing (a transport's size limit, say).
    pub note: Option<String>,
}

impl Record {
    /// Whether it has a latency figure.
    pub fn has_latency(&self) -> bool {
        self.p50_ns.is_some()
    }

    /// Fills in the latency figures from sorted round-trip times.
    pub fn set_latency(&mut self, sorted: &[std::time::Duration]) {
        let ns = |p| shmlane_examples::rtt::percentile(sorted, p).map(|d| d.as_nanos() as f64);
        self.samples = sorted.len() as u64;
        (self.p50_ns, self.p99_ns, self.p999_ns) = (ns(0.5), ns(0.99), ns(0.999));
    }

    /// Fills in the rate figures from `count` messages (of `self.size`
    /// bytes) in `elapsed`.
    pub fn set_rate(&mut self, count: u64, elapsed: std::time::Duration) {
        let secs = elapsed.as_secs_f64();
        self.samples = count;
        self.msgs_per_s = Some(count as f64 / secs);
        self.bytes_per_s = Some((count * self.size as u64) as f64 / secs);
    }

    /// Whether it has a throughput figure.
    pub fn has_rate(&self) -> bool {
        self.bytes_per_s.is_some()
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
    /// Whether a pinned pass ran (needs two CPUs).
    pub pinned_pass: bool,
}

impl Machine {
    /// Reads /proc.
    pub fn probe(quick: bool, pinned_pass: bool, cpus: usize) -> Machine {
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
            pinned_pass,
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
    /// What was measured (None: not measured in this run).
    pub value: Option<f64>,
    /// The bound.
    pub limit: f64,
    /// Whether `value` must be at most (true) or at least (false) `limit`.
    pub at_most: bool,
    /// The unit of `value` and `limit`.
    pub unit: &'static str,
}

impl Target {
    /// Whether it was met (None: not measured).
    pub fn met(&self) -> Option<bool> {
        self.value.map(|v| {
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
}

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
        let mut out = String::new();
        let _ = write!(
            out,
            "{{\n  \"machine\": {{\"cpus\": {}, \"cpu_model\": {}, \"kernel\": {}, \"virtualized\": {}, \"date\": {}, \"quick\": {}, \"pinned_pass\": {}}},\n  \"results\": [",
            m.cpus,
            string(&m.cpu_model),
            string(&m.kernel),
            m.virtualized,
            string(&m.date),
            m.quick,
            m.pinned_pass
        );
        for (i, r) in self.records.iter().enumerate() {
            let _ = write!(
                out,
                "{}\n    {{\"transport\": {}, \"mode\": {}, \"kind\": {}, \"size\": {}, \"pinned\": {}, \"samples\": {}, \"p50_ns\": {}, \"p99_ns\": {}, \"p999_ns\": {}, \"msgs_per_s\": {}, \"bytes_per_s\": {}, \"floor\": {}, \"ratio_to_floor\": {}, \"note\": {}}}",
                if i == 0 { "" } else { "," },
                string(&r.transport),
                string(r.mode),
                string(r.kind),
                r.size,
                r.pinned,
                r.samples,
                num(r.p50_ns),
                num(r.p99_ns),
                num(r.p999_ns),
                num(r.msgs_per_s),
                num(r.bytes_per_s),
                opt_string(r.floor.as_deref()),
                num(r.ratio_to_floor),
                opt_string(r.note.as_deref()),
            );
        }
        out.push_str("\n  ],\n  \"idle_receiver\": ");
        match &self.idle {
            Some(idle) => {
                let _ = write!(
                    out,
                    "{{\"transport\": \"shm\", \"mode\": \"block\", \"seconds\": {}, \"cpu_percent\": {}}}",
                    num(Some(idle.seconds)),
                    num(Some(idle.cpu_percent))
                );
            }
            None => out.push_str("null"),
        }
        out.push_str(",\n  \"targets\": [");
        for (i, t) in self.targets.iter().enumerate() {
            let met = t.met().map_or("null".to_owned(), |m| m.to_string());
            let _ = write!(
                out,
                "{}\n    {{\"target\": {}, \"value\": {}, \"limit\": {}, \"bound\": {}, \"unit\": {}, \"met\": {}}}",
                if i == 0 { "" } else { "," },
                string(&t.name),
                num(t.value),
                num(Some(t.limit)),
                string(if t.at_most { "at_most" } else { "at_least" }),
                string(t.unit),
                met
            );
        }
        out.push_str("\n  ]\n}\n");
        out
    }

    /// The report as tables for people.
    pub fn to_table(&self) -> String {
        let m = &self.machine;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "shmlane bench, {}: {} CPUs ({}{}), Linux {}{}",
            m.date,
            m.cpus,
            m.cpu_model,
            if m.virtualized { ", virtualized" } else { "" },
            m.kernel,
            if m.quick { ", --quick" } else { "" }
        );
        for pinned in [true, false] {
            let records: Vec<&Record> =
                self.records.iter().filter(|r| r.pinned == pinned).collect();
            if records.is_empty() {
                continue;
            }
            let pass = if pinned {
                "pinned: parent on one CPU, peer on another"
            } else {
                "unpinned: the scheduler places both"
            };
            let _ = writeln!(out, "\n== {pass} ==");
            let _ = writeln!(
                out,
                "\nRound trip (ns)          size      p50      p99    p99.9   floor               ratio"
            );
            for r in records.iter().filter(|r| {
                r.kind != "stream" && (r.has_latency() || (r.kind == "rtt" && r.note.is_some()))
            }) {
                let _ = writeln!(
                    out,
                    "{:<22} {:>7} {:>8} {:>8} {:>8}   {:<18} {}",
                    label(r),
                    size(r.size),
                    ns(r.p50_ns),
                    ns(r.p99_ns),
                    ns(r.p999_ns),
                    r.floor.as_deref().unwrap_or("-"),
                    ratio(r)
                );
            }
            let _ = writeln!(
                out,
                "\nStreaming                size     msgs/s        bytes/s   floor               ratio"
            );
            for r in records.iter().filter(|r| {
                r.kind != "rtt" && (r.has_rate() || (r.kind == "stream" && r.note.is_some()))
            }) {
                let _ = writeln!(
                    out,
                    "{:<22} {:>7} {:>10} {:>14}   {:<18} {}",
                    label(r),
                    size(r.size),
                    count(r.msgs_per_s),
                    bytes(r.bytes_per_s),
                    r.floor.as_deref().unwrap_or("-"),
                    ratio(r)
                );
            }
        }
        if let Some(idle) = &self.idle {
            let _ = writeln!(
                out,
                "\nIdle receiver (shm, spin-then-futex, {:.1} s blocked): {:.3} % of a CPU",
                idle.seconds, idle.cpu_percent
            );
        }
        if !self.targets.is_empty() {
            let _ = writeln!(out, "\nTargets");
            for t in &self.targets {
                let verdict = match t.met() {
                    Some(true) => "met",
                    Some(false) => "MISSED",
                    None => "not measured",
                };
                let _ = writeln!(
                    out,
                    "  {:<58} {:>10} {} {:<8} {}",
                    t.name,
                    t.value.map_or("-".to_owned(), |v| format!("{v:.3}")),
                    if t.at_most { "<=" } else { ">=" },
                    format!("{}{}", t.limit, t.unit),
                    verdict
                );
            }
        }
        let _ = writeln!(
            out,
            "\nratio: latency = median / floor median (lower is better, 1.0 = the floor); throughput = bytes/s / floor bytes/s (higher is better)"
        );
        out
    }
}

fn label(r: &Record) -> String {
    match (r.kind, r.mode) {
        ("floor", _) => format!("{} (floor)", r.transport),
        (_, mode) => format!("{} {mode}", r.transport),
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
        Some(v) if v >= 100_000.0 => format!("{:.0}µ", v / 1000.0),
        Some(v) if v >= 10_000.0 => format!("{:.1}µ", v / 1000.0),
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
        Some(v) => format!("{:.2} GiB/s", v / (1u64 << 30) as f64),
        None => "-".to_owned(),
    }
}

fn ratio(r: &Record) -> String {
    match (r.ratio_to_floor, &r.note) {
        (Some(x), _) => format!("{x:.2}"),
        (None, Some(note)) => note.clone(),
        (None, None) => String::new(),
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
    fn figures_come_from_samples_and_counts() {
        use std::time::Duration;
        let mut r = Record {
            size: 64,
            ..Record::default()
        };
        let rtts: Vec<Duration> = (1..=1000).map(Duration::from_nanos).collect();
        r.set_latency(&rtts);
        assert_eq!(
            (r.samples, r.p50_ns, r.p999_ns),
            (1000, Some(501.0), Some(999.0))
        );
        r.set_rate(2_000, Duration::from_millis(500));
        assert_eq!(
            (r.samples, r.msgs_per_s, r.bytes_per_s),
            (2000, Some(4000.0), Some(256_000.0))
        );
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
        let t = |value, at_most| Target {
            name: String::new(),
            value,
            limit: 1.5,
            at_most,
            unit: "x",
        };
        assert_eq!(t(Some(1.4), true).met(), Some(true));
        assert_eq!(t(Some(1.6), true).met(), Some(false));
        assert_eq!(t(Some(1.6), false).met(), Some(true));
        assert_eq!(t(None, false).met(), None);
    }
}
