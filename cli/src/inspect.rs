//! `shmlane ls`, `stat` and `rm-stale`: the channels in /dev/shm, read
//! through `shmlane_posix::inspect` (copies of the headers, lock probes;
//! nothing is mapped, claimed or followed).

use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use shmlane_posix::inspect::{self, Channel, Entry, Holder, Kind};

/// `shmlane ls`.
pub fn ls(json_out: bool) -> Result<(), String> {
    let entries = inspect::list().map_err(|e| e.to_string())?;
    if json_out {
        let list: Vec<Value> = entries.iter().map(entry_json).collect();
        return print_line(&Value::Array(list).to_string());
    }
    let header = "NAME KIND OWNER MODE CAPACITY MAX USED SENDER RECEIVER SENT RECEIVED";
    let mut rows = vec![header.split(' ').map(str::to_owned).collect::<Vec<_>>()];
    for entry in &entries {
        let mut row = vec![
            entry.name.clone(),
            kind_word(entry).to_owned(),
            entry.owner.to_string(),
            format!("{:04o}", entry.mode),
        ];
        let stale = if entry.is_stale() { " (stale)" } else { "" };
        match &entry.kind {
            Kind::Segment { channel: Ok(c), .. } => row.extend([
                c.snapshot.capacity.to_string(),
                c.snapshot.max_message.to_string(),
                c.snapshot.used.to_string(),
                holder_word(&c.producer),
                holder_word(&c.consumer),
                c.snapshot.producer.counters.messages.to_string(),
                format!("{}{stale}", c.snapshot.consumer.counters.messages),
            ]),
            Kind::Segment {
                channel: Err(e), ..
            } => row.push(format!("{e}{stale}")),
            Kind::Listener { listening: true } => row.push("listening".to_owned()),
            Kind::Listener { listening: false } => row.push(format!("nobody listens{stale}")),
            Kind::Foreign { what } => row.push(format!("not shmlane's: {what}")),
            Kind::Unreadable { error } => row.push(error.to_string()),
            _ => {}
        }
        rows.push(row);
    }
    print_line(&table(&rows))
}

/// `rows` in columns as wide as their widest cell (the last cell of a
/// row, which may be a sentence, as it is).
fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .filter(|row| i + 1 < row.len())
                .map(|row| row[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let lines: Vec<String> = rows
        .iter()
        .map(|row| {
            let cells: Vec<String> = row
                .iter()
                .enumerate()
                .map(|(i, cell)| match i + 1 < row.len() {
                    true => format!("{cell:<w$}", w = widths[i]),
                    false => cell.clone(),
                })
                .collect();
            cells.join("  ")
        })
        .collect();
    lines.join("\n")
}

/// `shmlane stat NAME [--watch]`.
pub fn stat(
    name: &str,
    watch: bool,
    interval: f64,
    count: Option<u64>,
    json_out: bool,
) -> Result<(), String> {
    let name = segment_name(name);
    let (entry, channel) = channel_of(&name)?;
    if !watch {
        if json_out {
            return print_line(&entry_json(&entry).to_string());
        }
        return print_line(&describe(&entry, &channel));
    }
    if !(interval.is_finite() && interval > 0.0) {
        return Err(format!(
            "--interval {interval}: a positive number of seconds"
        ));
    }
    let interval = Duration::from_secs_f64(interval);
    let start = Instant::now();
    let (mut last, mut last_at) = (channel, start);
    if !json_out {
        print_line(
            "SECONDS\tSENT/S\tRECEIVED/S\tSENT B/S\tRECEIVED B/S\tLAG MSGS\tLAG BYTES\tSENDER\tRECEIVER",
        )?;
    }
    let mut samples = 0;
    while count.is_none_or(|n| samples < n) {
        std::thread::sleep(interval);
        let (_, now) = channel_of(&name)?;
        let now_at = Instant::now();
        let dt = now_at.duration_since(last_at).as_secs_f64();
        let (p, c) = (&now.snapshot.producer, &now.snapshot.consumer);
        let (lp, lc) = (&last.snapshot.producer, &last.snapshot.consumer);
        let rate = |a: u64, b: u64| a.wrapping_sub(b) as f64 / dt;
        let sample = json!({
            "seconds": now_at.duration_since(start).as_secs_f64(),
            "interval": dt,
            "sent": p.counters.messages,
            "received": c.counters.messages,
            "sent_per_second": rate(p.counters.messages, lp.counters.messages),
            "received_per_second": rate(c.counters.messages, lc.counters.messages),
            "sent_bytes_per_second": rate(p.counters.bytes, lp.counters.bytes),
            "received_bytes_per_second": rate(c.counters.bytes, lc.counters.bytes),
            "lag_messages": p.counters.messages.wrapping_sub(c.counters.messages),
            "lag_bytes": now.snapshot.used,
            "sender": now.producer.status.as_str(),
            "receiver": now.consumer.status.as_str(),
        });
        let line = if json_out {
            sample.to_string()
        } else {
            format!(
                "{:.1}\t{:.0}\t{:.0}\t{:.0}\t{:.0}\t{}\t{}\t{}\t{}",
                sample["seconds"].as_f64().unwrap_or(0.0),
                sample["sent_per_second"].as_f64().unwrap_or(0.0),
                sample["received_per_second"].as_f64().unwrap_or(0.0),
                sample["sent_bytes_per_second"].as_f64().unwrap_or(0.0),
                sample["received_bytes_per_second"].as_f64().unwrap_or(0.0),
                sample["lag_messages"],
                sample["lag_bytes"],
                now.producer.status.as_str(),
                now.consumer.status.as_str(),
            )
        };
        print_line(&line)?;
        (last, last_at) = (now, now_at);
        samples += 1;
    }
    Ok(())
}

/// `shmlane rm-stale [--dry-run]`.
pub fn rm_stale(dry_run: bool, json_out: bool) -> Result<(), String> {
    let entries = inspect::list().map_err(|e| e.to_string())?;
    let mut done = Vec::new();
    for entry in entries.iter().filter(|e| e.is_stale()) {
        let action = if dry_run {
            "would remove"
        } else {
            match inspect::remove_stale(entry) {
                Ok(inspect::Removal::Removed) => "removed",
                Ok(inspect::Removal::Gone) => "gone already",
                Ok(inspect::Removal::Kept) => "kept (in use again)",
                Err(e) => return Err(format!("{}: {e}", entry.name)),
            }
        };
        done.push((entry, action));
    }
    if json_out {
        let list: Vec<Value> = done
            .iter()
            .map(|(e, action)| json!({"name": e.name, "kind": kind_word(e), "action": action}))
            .collect();
        return print_line(&Value::Array(list).to_string());
    }
    let lines: Vec<String> = done
        .iter()
        .map(|(e, action)| format!("{action} {} ({})", e.name, kind_word(e)))
        .collect();
    if lines.is_empty() {
        return Ok(());
    }
    print_line(&lines.join("\n"))
}

/// `NAME`, `/NAME` or `shm:/NAME` as a segment name.
fn segment_name(name: &str) -> String {
    let name = name.strip_prefix("shm:").unwrap_or(name);
    if name.starts_with('/') {
        name.to_owned()
    } else {
        format!("/{name}")
    }
}

/// The entry at `name`, which must be a readable channel.
fn channel_of(name: &str) -> Result<(Entry, Channel), String> {
    let entry = inspect::inspect(name).map_err(|e| format!("{name}: {e}"))?;
    let channel = match &entry.kind {
        Kind::Segment { channel: Ok(c), .. } => *c,
        Kind::Segment {
            channel: Err(e), ..
        } => return Err(format!("{name}: {e}")),
        Kind::Listener { .. } => {
            return Err(format!(
                "{name}: a listener's socket (its clients' rings are anonymous)"
            ));
        }
        Kind::Foreign { what } => return Err(format!("{name}: not a shmlane channel: {what}")),
        Kind::Unreadable { error } => return Err(format!("{name}: {error}")),
        _ => return Err(format!("{name}: not a shmlane channel")),
    };
    Ok((entry, channel))
}

fn kind_word(entry: &Entry) -> &'static str {
    match entry.kind {
        Kind::Segment { .. } => "channel",
        Kind::Listener { .. } => "listener",
        Kind::Foreign { .. } => "foreign",
        Kind::Unreadable { .. } => "unreadable",
        _ => "other",
    }
}

fn holder_word(holder: &Holder) -> String {
    match (holder.pid, holder.pid_verified) {
        (Some(pid), Some(true)) => format!("{} {pid}", holder.status.as_str()),
        (Some(pid), None) => format!("{} {pid}?", holder.status.as_str()),
        _ => holder.status.as_str().to_owned(),
    }
}

/// `stat`'s text: one channel, every field.
fn describe(entry: &Entry, c: &Channel) -> String {
    let s = &c.snapshot;
    let in_use = match entry.kind {
        Kind::Segment { in_use: true, .. } => "in use",
        _ => "stale: no process has it open",
    };
    let typed = match s.message_type {
        Some(t) => format!("message type {t:#018x}"),
        None => "untyped".to_owned(),
    };
    let side = |label: &str, h: &Holder, side: &inspect::Side, stall: &str| {
        let pid = match (h.pid, h.pid_verified) {
            (Some(pid), Some(true)) => format!(", pid {pid}"),
            (Some(pid), Some(false)) => format!(", pid {pid} (holds no lock: gone)"),
            (Some(pid), None) => format!(", pid {pid} (not verifiable)"),
            (None, _) => String::new(),
        };
        let n = &side.counters;
        format!(
            "  {label} {}{pid}{}: {} messages, {} bytes, {stall} {}, slept {}, woke its peer {}",
            h.status.as_str(),
            if side.asleep { ", asleep" } else { "" },
            n.messages,
            n.bytes,
            n.stalls,
            n.sleeps,
            n.wakes,
        )
    };
    [
        format!(
            "{}: channel, owner {}, mode {:04o}, {} bytes, {in_use}",
            entry.name, entry.owner, entry.mode, entry.size
        ),
        format!(
            "  capacity {}, max message {}, {typed}, {} bytes queued ({} messages)",
            s.capacity,
            s.max_message,
            s.used,
            s.producer
                .counters
                .messages
                .wrapping_sub(s.consumer.counters.messages)
        ),
        side("sender:  ", &c.producer, &s.producer, "full"),
        side("receiver:", &c.consumer, &s.consumer, "empty"),
    ]
    .join("\n")
}

/// An entry as JSON (`ls --json`, `stat --json`).
fn entry_json(entry: &Entry) -> Value {
    let mut v = json!({
        "name": entry.name,
        "kind": kind_word(entry),
        "owner": entry.owner,
        "mode": format!("{:04o}", entry.mode),
        "size": entry.size,
        "stale": entry.is_stale(),
    });
    match &entry.kind {
        Kind::Segment { in_use, channel } => {
            v["in_use"] = json!(in_use);
            match channel {
                Ok(c) => {
                    let s = &c.snapshot;
                    v["capacity"] = json!(s.capacity);
                    v["max_message"] = json!(s.max_message);
                    v["message_type"] = json!(s.message_type);
                    v["used"] = json!(s.used);
                    v["sender"] = side_json(&c.producer, &s.producer, "full");
                    v["receiver"] = side_json(&c.consumer, &s.consumer, "empty");
                }
                Err(e) => v["error"] = json!(e.to_string()),
            }
        }
        Kind::Listener { listening } => v["listening"] = json!(listening),
        Kind::Foreign { what } => v["what"] = json!(what),
        Kind::Unreadable { error } => v["error"] = json!(error.to_string()),
        _ => {}
    }
    v
}

fn side_json(h: &Holder, side: &inspect::Side, stall: &str) -> Value {
    let n = &side.counters;
    let mut v = json!({
        "status": h.status.as_str(),
        "pid": h.pid,
        "pid_verified": h.pid_verified,
        "asleep": side.asleep,
        "position": side.position,
        "messages": n.messages,
        "bytes": n.bytes,
        "sleeps": n.sleeps,
        "wakes": n.wakes,
    });
    v[stall] = json!(n.stalls);
    v
}

fn print_line(text: &str) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")
        .and_then(|()| out.flush())
        .map_err(|e| format!("stdout: {e}"))
}
