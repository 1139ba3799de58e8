//! `core/include/shmlane.h` against the Rust layout: every `SHMLANE_*`
//! value the header defines equals the crate's, and the header compiles
//! with the system C compiler (`$CC`, else `cc`), whose `_Static_assert`s
//! check its struct against its own offsets. So the C description cannot
//! drift from the Rust layout without this test failing.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use shmlane_core::layout::{self, offsets};

const HEADER: &str = include_str!("../include/shmlane.h");

/// The `#define SHMLANE_NAME value` lines of the header, as numbers.
fn defines() -> BTreeMap<String, u64> {
    HEADER
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("#define SHMLANE_")?;
            let (name, value) = rest.split_once(' ')?;
            let value = value.split("/*").next()?.trim();
            let value = value
                .strip_prefix("UINT64_C(")
                .and_then(|v| v.strip_suffix(')'))
                .unwrap_or(value)
                .trim_end_matches('u');
            let number = match value.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => value.parse(),
            }
            .unwrap_or_else(|e| panic!("SHMLANE_{name}: {value:?}: {e}"));
            Some((name.to_owned(), number))
        })
        .collect()
}

#[test]
fn every_value_the_c_header_defines_is_the_rust_layouts() {
    let rust: BTreeMap<&str, u64> = [
        ("MAGIC", layout::MAGIC),
        ("LAYOUT_VERSION", layout::LAYOUT_VERSION.into()),
        ("INIT_READY", layout::INIT_READY.into()),
        ("HEADER_SIZE", layout::HEADER_SIZE as u64),
        ("LINE_SIZE", layout::LINE_SIZE as u64),
        ("REGION_ALIGN", layout::REGION_ALIGN as u64),
        ("MIN_CAPACITY", layout::MIN_CAPACITY as u64),
        ("PAYLOAD_ALIGN", layout::PAYLOAD_ALIGN as u64),
        ("MAX_MESSAGE", layout::MAX_MESSAGE as u64),
        ("RECORD_HEADER", layout::RECORD_HEADER),
        ("KIND_MESSAGE", layout::KIND_MESSAGE.into()),
        ("KIND_PADDING", layout::KIND_PADDING.into()),
        ("KIND_LAP_MASK", layout::KIND_LAP_MASK.into()),
        ("STATE_IDLE", layout::STATE_IDLE.into()),
        ("STATE_ACTIVE", layout::STATE_ACTIVE.into()),
        ("STATE_CLOSED", layout::STATE_CLOSED.into()),
        ("WAITS_SET", layout::WAITS_SET.into()),
        ("WAITS_SLEEPS", layout::WAITS_SLEEPS.into()),
        ("WAITS_WAKES", layout::WAITS_WAKES.into()),
        ("WAITS_PRODUCER_SHIFT", layout::WAITS_PRODUCER_SHIFT.into()),
        ("WAITS_CONSUMER_SHIFT", layout::WAITS_CONSUMER_SHIFT.into()),
        ("WAITS_ALL", layout::WAITS_ALL.into()),
        ("SLEEPING", layout::SLEEPING.into()),
        ("OFF_MAGIC", offsets::MAGIC as u64),
        ("OFF_VERSION", offsets::VERSION as u64),
        ("OFF_HEADER_SIZE", offsets::HEADER_SIZE_FIELD as u64),
        ("OFF_CAPACITY", offsets::CAPACITY as u64),
        ("OFF_MAX_MESSAGE", offsets::MAX_MESSAGE as u64),
        ("OFF_PRODUCER_STATE", offsets::PRODUCER_STATE as u64),
        ("OFF_CONSUMER_STATE", offsets::CONSUMER_STATE as u64),
        ("OFF_INIT", offsets::INIT as u64),
        ("OFF_WAITS", offsets::WAITS as u64),
        ("OFF_PRODUCER_CPU", offsets::PRODUCER_CPU as u64),
        ("OFF_CONSUMER_CPU", offsets::CONSUMER_CPU as u64),
        ("OFF_PRODUCER_PID", offsets::PRODUCER_PID as u64),
        ("OFF_CONSUMER_PID", offsets::CONSUMER_PID as u64),
        ("OFF_MESSAGE_TYPE", offsets::MESSAGE_TYPE as u64),
        ("OFF_WRITE_POSITION", offsets::WRITE_POSITION as u64),
        ("OFF_CONSUMER_WAIT", offsets::CONSUMER_WAIT as u64),
        ("OFF_READ_POSITION", offsets::READ_POSITION as u64),
        ("OFF_PRODUCER_WAIT", offsets::PRODUCER_WAIT as u64),
        ("OFF_PRODUCER_COUNTERS", offsets::PRODUCER_COUNTERS as u64),
        ("OFF_CONSUMER_COUNTERS", offsets::CONSUMER_COUNTERS as u64),
        ("COUNTER_MESSAGES", offsets::COUNTER_MESSAGES as u64),
        ("COUNTER_STALLS", offsets::COUNTER_STALLS as u64),
        ("COUNTER_SLEEPS", offsets::COUNTER_SLEEPS as u64),
        ("COUNTER_WAKES", offsets::COUNTER_WAKES as u64),
        ("OFF_DATA", offsets::DATA as u64),
    ]
    .into_iter()
    .collect();
    let c = defines();
    let c: BTreeMap<&str, u64> = c.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    // Nothing missing, nothing extra, every value the same.
    assert_eq!(c, rust);
}

#[test]
#[cfg_attr(miri, ignore = "runs the C compiler, which Miri cannot")]
fn the_c_header_compiles_and_its_struct_matches_its_offsets() {
    let dir = std::env::temp_dir().join(format!("shmlane-c-header-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let source = dir.join("check.c");
    // The record helpers too, checked against the Rust ones.
    let kind = layout::record_kind(layout::KIND_MESSAGE, 4104, 12);
    std::fs::write(
        &source,
        format!(
            "#include \"shmlane.h\"\n\
             _Static_assert(sizeof(struct shmlane_identity) == SHMLANE_LINE_SIZE, \"identity line\");\n\
             int main(void) {{\n\
                 return shmlane_record_kind(SHMLANE_KIND_MESSAGE, 4104, 12) == {kind}u\n\
                     && shmlane_record_size(13) == 24 ? 0 : 1;\n\
             }}\n"
        ),
    )
    .unwrap();
    let include = Path::new(env!("CARGO_MANIFEST_DIR")).join("include");
    let exe = dir.join("check");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let out = Command::new(&cc)
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-o"])
        .arg(&exe)
        .arg("-I")
        .arg(&include)
        .arg(&source)
        .output()
        .unwrap_or_else(|e| panic!("the system C compiler ({cc}) is needed: {e}"));
    assert!(
        out.status.success(),
        "{cc} refused the header:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = Command::new(&exe).status().unwrap();
    assert!(run.success(), "the C record helpers disagree with Rust's");
    let _ = std::fs::remove_dir_all(&dir);
}
