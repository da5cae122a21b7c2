//! `cargo run -- --bench`: what a VM exit costs, what a guest costs, how far
//! the hypervisor scales — measured, printed as a table, written as JSON.
//!
//! The benchmark boots three times ([`run_bench`]):
//!
//! 1. **Exits** (the default 256 MiB machine): the `bench` guest (64 MiB; it
//!    measures and prints one `bench:` line per metric, see
//!    `guest-payloads/bench`), its yield partner `bench_yield`, and two
//!    `bench_idle` guests of 2 MiB and 64 MiB whose creation lines give the
//!    hypervisor memory per guest. The kernel runs the workload natively
//!    first (the boot blob's `native_workload` feature) and prints its own
//!    `bench:` line, then the time from its entry to the first VM entry.
//!    The runner times its start to the first guest line.
//! 2. **1 GiB guest**: one `bench_idle` guest of 1 GiB, in the smallest
//!    machine that holds it ([`machine_mib_for`]).
//! 3. **Scale** (the default machine): as many `bench_idle` guests of 2 MiB
//!    as the boot blob and the machine's memory allow; the metric is how
//!    many the kernel created, and what they cost it in total.
//!
//! Every `bench:` line of the serial output becomes a [`Metric`]
//! ([`parse_metric_line`]), and so do the kernel's start-up and memory lines
//! ([`kernel_metrics`]); the runner adds the image size, its own wall-clock
//! figure and the guest/native workload ratio. The table goes to stdout and
//! the same data as JSON to `target/bench/latest.json`.
//!
//! In Bochs the TSC advances with executed instructions, so the tick figures
//! count instructions and repeat exactly from run to run; on KVM they are
//! CPU cycles. The benchmark reports figures; it never fails for being slow.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use hypervisor_core::blob::MAX_GUESTS;
use hypervisor_core::config::{GuestName, DEFAULT_TIME_SLICE_TICKS};
use serde::Serialize;

use crate::disk_image::Firmware;
use crate::machine_memory::{guest_ram_budget, machine_mib_for, DEFAULT_MACHINE_MEMORY_MIB};
use crate::options::{GuestSpec, RunOptions};
use crate::{payloads, Machine, RunError, RunOutcome};

/// 1 MiB.
const MIB: u64 = 1 << 20;

/// The `bench` guest's RAM: 32 MiB of workload above its image, plus room.
pub const BENCH_RAM: u64 = 64 * MIB;

/// The `bench` guest's time slice: long enough that the workload runs in one
/// slice (no preemption-timer exits in the middle of it).
pub const BENCH_TIME_SLICE_TICKS: u64 = 500 * DEFAULT_TIME_SLICE_TICKS;

/// The sizes of the idle guests whose hypervisor memory is reported, with
/// their metric names.
pub const FOOTPRINT_GUESTS: [(&str, u64, &str); 3] = [
    ("idle-2m", 2 * MIB, "memory_per_guest_2m"),
    ("idle-64m", 64 * MIB, "memory_per_guest_64m"),
    ("idle-1g", 1024 * MIB, "memory_per_guest_1g"),
];

/// Every metric a complete benchmark run reports, and whether zero is a
/// valid value for it (a count whose target is zero).
pub const EXPECTED_METRICS: [(&str, bool); 24] = [
    ("yield_round_trip", false),
    ("guest_switch", false),
    ("cpuid_leaf0", false),
    ("cpuid_hypervisor_leaf", false),
    ("vmcall_null", false),
    ("out_uart_scratch", false),
    ("in_uart_scratch", false),
    ("rdmsr_sysenter_cs", false),
    ("wrmsr_sysenter_cs", false),
    ("apic_mmio_read", false),
    ("hlt_wakeup", false),
    ("irq_latency", false),
    ("workload_guest", false),
    ("workload_guest_exits", true),
    ("workload_native", false),
    ("workload_ratio", false),
    ("kernel_entry_to_first_vm_entry", false),
    ("runner_to_first_guest_line", false),
    ("memory_per_guest_2m", false),
    ("memory_per_guest_64m", false),
    ("memory_per_guest_1g", false),
    ("hypervisor_image", false),
    ("guests_max", false),
    ("overhead_at_max", false),
];

/// What the tick figures mean, printed with the table and stored in the JSON.
pub const TSC_NOTE: &str = "In Bochs the TSC advances with executed instructions: tick figures count \
    instructions and repeat exactly from run to run. On QEMU with KVM they are CPU cycles.";

/// One measured figure.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metric {
    /// Its name, e.g. `vmcall_null`.
    pub name: String,
    /// The figure to quote: the smallest sample (for exit round trips, the
    /// batch no other guest disturbed).
    pub value: f64,
    /// `ticks`, `exits`, `KiB`, `bytes`, `seconds`, `guests` or `ratio`.
    pub unit: String,
    /// How many samples `min`, `median` and `max` summarize.
    pub samples: u64,
    /// The smallest sample.
    pub min: f64,
    /// The median sample.
    pub median: f64,
    /// The largest sample.
    pub max: f64,
    /// Where it came from: `guest`, `kernel` or `runner`.
    pub source: String,
}

impl Metric {
    /// A single-sample metric.
    pub fn single(name: &str, value: f64, unit: &str, source: &str) -> Self {
        Metric {
            name: name.to_string(),
            value,
            unit: unit.to_string(),
            samples: 1,
            min: value,
            median: value,
            max: value,
            source: source.to_string(),
        }
    }
}

/// Parses `bench: <metric> <unit> samples=<n> min=<x> median=<y> max=<z>`,
/// anywhere after a console prefix (`[bench] ` or `[hv INFO ] `). `None` for
/// any other line, or one with a field missing or not a number.
pub fn parse_metric_line(line: &str) -> Option<Metric> {
    let (prefix, rest) = line.split_once("bench: ")?;
    let source = if prefix.starts_with("[hv ") { "kernel" } else { "guest" };
    let mut words = rest.split_whitespace();
    let name = words.next()?;
    let unit = words.next()?;
    let mut field = |key: &str| -> Option<&str> { words.next()?.strip_prefix(key)?.strip_prefix('=') };
    let samples = field("samples")?.parse().ok()?;
    let min: f64 = field("min")?.parse().ok()?;
    let median = field("median")?.parse().ok()?;
    let max = field("max")?.parse().ok()?;
    let plain = |text: &str| !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !plain(name) || !plain(unit) {
        return None;
    }
    Some(Metric {
        name: name.to_string(),
        value: min,
        unit: unit.to_string(),
        samples,
        min,
        median,
        max,
        source: source.to_string(),
    })
}

/// The text of a kernel line after its `[hv LEVEL] ` prefix.
fn kernel_text(line: &str) -> Option<&str> {
    line.strip_prefix("[hv ")?.split_once("] ").map(|(_, text)| text)
}

/// The KiB of hypervisor memory the kernel reported when it created the
/// guest `name` (`<name>: ... K KiB of hypervisor memory`).
pub fn guest_overhead_kib(serial: &str, name: &str) -> Option<u64> {
    serial.lines().filter_map(kernel_text).find_map(|text| {
        let rest = text.strip_prefix(name)?.strip_prefix(": ")?;
        let before = rest.strip_suffix(" KiB of hypervisor memory")?;
        before.rsplit(' ').next()?.parse().ok()
    })
}

/// How many guests the kernel created (one creation line each).
pub fn guests_created(serial: &str) -> u64 {
    serial.lines().filter_map(kernel_text).filter(|text| text.ends_with(" KiB of hypervisor memory")).count() as u64
}

/// The figures of the kernel's own lines: `kernel entry to first VM entry: N
/// ticks` and `hypervisor memory for guests: N KiB in total`.
pub fn kernel_metrics(serial: &str) -> (Option<u64>, Option<u64>) {
    let mut entry = None;
    let mut total = None;
    for text in serial.lines().filter_map(kernel_text) {
        if let Some(rest) = text.strip_prefix("kernel entry to first VM entry: ") {
            entry = entry.or_else(|| rest.strip_suffix(" ticks")?.parse().ok());
        }
        if let Some(rest) = text.strip_prefix("hypervisor memory for guests: ") {
            total = total.or_else(|| rest.split_once(" KiB in total")?.0.parse().ok());
        }
    }
    (entry, total)
}

/// The names of [`EXPECTED_METRICS`] that `metrics` lacks or holds a
/// non-positive value for (zero allowed where marked).
pub fn missing_metrics(metrics: &[Metric]) -> Vec<&'static str> {
    EXPECTED_METRICS
        .iter()
        .filter(|(name, zero_allowed)| {
            let found = metrics.iter().find(|metric| metric.name == *name);
            !found.is_some_and(|metric| metric.value > 0.0 || (*zero_allowed && metric.value == 0.0))
        })
        .map(|(name, _)| *name)
        .collect()
}

/// A benchmark run's results: what ran where, and every metric.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchReport {
    /// When (UTC, `YYYY-MM-DD`).
    pub date: String,
    /// The emulator, e.g. `Bochs`.
    pub emulator: String,
    /// The emulated (Bochs) or host (KVM) CPU model.
    pub cpu_model: String,
    /// What a tick is ([`TSC_NOTE`]).
    pub note: String,
    /// The figures, in the order they were found.
    pub metrics: Vec<Metric>,
    /// What went wrong on the way (a boot that failed, a metric missing).
    pub problems: Vec<String>,
}

impl BenchReport {
    /// The table printed at the end: one row per metric.
    pub fn table(&self) -> String {
        let mut text = String::new();
        let _ = writeln!(text, "benchmark results: {}, {} ({}).", self.date, self.emulator, self.cpu_model);
        let _ = writeln!(text, "{}", self.note);
        let _ = writeln!(
            text,
            "{:<32} {:>14} {:<8} {:>7} {:>14} {:>14} {:>14}",
            "metric", "value", "unit", "samples", "min", "median", "max"
        );
        for metric in &self.metrics {
            let _ = writeln!(
                text,
                "{:<32} {:>14} {:<8} {:>7} {:>14} {:>14} {:>14}",
                metric.name,
                number(metric.value),
                metric.unit,
                metric.samples,
                number(metric.min),
                number(metric.median),
                number(metric.max)
            );
        }
        for problem in &self.problems {
            let _ = writeln!(text, "problem: {problem}");
        }
        text
    }

    /// The same as JSON (pretty-printed).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|error| format!("{{\"error\": \"{error}\"}}"))
    }

    /// The metric called `name`.
    pub fn metric(&self, name: &str) -> Option<&Metric> {
        self.metrics.iter().find(|metric| metric.name == name)
    }
}

/// A figure for the table: whole numbers without decimals, others with up to three.
fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        let text = format!("{value:.3}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Today's date in UTC as `YYYY-MM-DD` (from the system clock; civil-from-days
/// after Howard Hinnant's "chrono-Compatible Low-Level Date Algorithms").
pub fn utc_date(since_epoch_secs: u64) -> String {
    let days = (since_epoch_secs / 86_400) as i64 + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// The host CPU's model name from `/proc/cpuinfo`.
fn host_cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines().find_map(|line| {
                let (key, value) = line.split_once(':')?;
                (key.trim() == "model name").then(|| value.trim().to_string())
            })
        })
        .unwrap_or_else(|| "unknown CPU".to_string())
}

/// A built-in payload as a guest named `name` with `ram` bytes of RAM.
fn guest(payload: &str, name: &str, ram: u64) -> Result<GuestSpec, String> {
    let payload = payloads::find(payload).ok_or_else(|| format!("the {payload} payload is not built in"))?;
    let name = GuestName::new(name).map_err(|error| error.to_string())?;
    let mut config = payload.default_config(name);
    config.set_ram_bytes(ram);
    Ok(GuestSpec { config, image: payload.image_path().to_path_buf() })
}

/// Boot 1's guests: `bench`, `bench_yield`, and the 2 MiB and 64 MiB idle guests.
pub fn exits_guests() -> Result<Vec<GuestSpec>, String> {
    let mut bench = guest("bench", "bench", BENCH_RAM)?;
    bench.config.time_slice_ticks = BENCH_TIME_SLICE_TICKS;
    let mut guests = vec![bench, guest("bench_yield", "bench_yield", 2 * MIB)?];
    for (name, ram, _) in &FOOTPRINT_GUESTS[..2] {
        guests.push(guest("bench_idle", name, *ram)?);
    }
    Ok(guests)
}

/// Boot 2's guest (the 1 GiB idle guest) and the machine memory it needs, in MiB.
pub fn gigabyte_guest() -> Result<(Vec<GuestSpec>, u32), String> {
    let (name, ram, _) = FOOTPRINT_GUESTS[2];
    let machine = u32::try_from(machine_mib_for(ram, Firmware::Bios)).map_err(|error| error.to_string())?;
    Ok((vec![guest("bench_idle", name, ram)?], machine))
}

/// Boot 3's guests: as many 2 MiB idle guests as the blob and the default
/// machine hold.
pub fn scale_guests() -> Result<Vec<GuestSpec>, String> {
    let fit = guest_ram_budget(DEFAULT_MACHINE_MEMORY_MIB, Firmware::Bios) / (2 * MIB);
    let count = (fit as usize).min(MAX_GUESTS);
    (1..=count).map(|index| guest("bench_idle", &format!("idle-{index}"), 2 * MIB)).collect()
}

/// One boot of the benchmark; `Err` with a description when it did not
/// pass.
fn boot(what: &str, options: &RunOptions) -> Result<RunOutcome, String> {
    if options.stream {
        eprintln!("runner: bench: {what}: {} guests", options.guests.len());
    }
    match crate::run(options) {
        Ok(outcome) if outcome.passed() => Ok(outcome),
        Ok(outcome) => Err(format!("{what}: {}", outcome.failure_report())),
        Err(RunError::MissingPrerequisites(missing)) => Err(format!("{what}: {missing}")),
        Err(error) => Err(format!("{what}: {error}")),
    }
}

/// Runs the three boots with `base`'s emulator, timeout, log level and Bochs
/// CPU model, and collects every metric. Boots that fail leave their metrics
/// out and add a problem; the report says which metrics are missing.
pub fn run_bench(base: &RunOptions) -> BenchReport {
    let mut metrics = Vec::new();
    let mut problems = Vec::new();
    let mut machine = None;
    let options = |guests: Vec<GuestSpec>, machine_memory_mib: u32, native_workload: bool| RunOptions {
        guests,
        machine_memory_mib,
        native_workload,
        caps_report: false,
        trace: hypervisor_core::blob::TraceSelection::None,
        step: hypervisor_core::blob::StepSelection::None,
        break_entry: 0,
        blob_damage: None,
        ..base.clone()
    };

    // 1. Exits, switches, workload, start-up, 2 MiB and 64 MiB guests.
    match exits_guests() {
        Ok(guests) => {
            let started = Instant::now();
            match boot("exits", &options(guests, DEFAULT_MACHINE_MEMORY_MIB, true)) {
                Ok(outcome) => {
                    machine = Some(outcome.decision.machine);
                    exits_boot_metrics(&outcome, started, &mut metrics, &mut problems);
                }
                Err(problem) => problems.push(problem),
            }
        }
        Err(problem) => problems.push(problem),
    }
    let ratio = match (
        metrics.iter().find(|m| m.name == "workload_guest"),
        metrics.iter().find(|m| m.name == "workload_native"),
    ) {
        (Some(guest), Some(native)) if native.value > 0.0 => Some(guest.value / native.value),
        _ => None,
    };
    if let Some(ratio) = ratio {
        metrics.push(Metric::single("workload_ratio", round3(ratio), "ratio", "runner"));
    }

    // 2. A 1 GiB guest.
    match gigabyte_guest() {
        Ok((guests, machine_mib)) => match boot("1 GiB guest", &options(guests, machine_mib, false)) {
            Ok(outcome) => {
                let (name, _, metric) = FOOTPRINT_GUESTS[2];
                if let Some(kib) = guest_overhead_kib(&outcome.serial, name) {
                    let mut found = Metric::single(metric, kib as f64, "KiB", "kernel");
                    found.source = format!("kernel ({machine_mib} MiB machine)");
                    metrics.push(found);
                }
            }
            Err(problem) => problems.push(problem),
        },
        Err(problem) => problems.push(problem),
    }

    // The image the emulator booted.
    match std::fs::metadata(&base.kernel) {
        Ok(meta) => metrics.push(Metric::single("hypervisor_image", meta.len() as f64, "bytes", "runner")),
        Err(error) => problems.push(format!("the kernel image {}: {error}", base.kernel.display())),
    }

    // 3. Scale.
    match scale_guests() {
        Ok(guests) => {
            let asked = guests.len();
            match boot("scale", &options(guests, DEFAULT_MACHINE_MEMORY_MIB, false)) {
                Ok(outcome) => {
                    let created = guests_created(&outcome.serial);
                    let mut count = Metric::single("guests_max", created as f64, "guests", "kernel");
                    count.source = format!(
                        "kernel ({DEFAULT_MACHINE_MEMORY_MIB} MiB machine; {asked} asked: the blob's limit is {MAX_GUESTS}, \
                         the machine's RAM holds {} of 2 MiB)",
                        guest_ram_budget(DEFAULT_MACHINE_MEMORY_MIB, Firmware::Bios) / (2 * MIB)
                    );
                    metrics.push(count);
                    if let (_, Some(kib)) = kernel_metrics(&outcome.serial) {
                        metrics.push(Metric::single("overhead_at_max", kib as f64, "KiB", "kernel"));
                    }
                }
                Err(problem) => problems.push(problem),
            }
        }
        Err(problem) => problems.push(problem),
    }

    for name in missing_metrics(&metrics) {
        problems.push(format!("metric {name} is missing or not positive"));
    }
    let machine_name = machine.map_or_else(|| "unknown emulator".to_string(), |machine| machine.to_string());
    let cpu_model = match machine {
        Some(Machine::Bochs) => format!("Bochs CPU model {} on a host {}", base.bochs_cpu_model, host_cpu_model()),
        _ => host_cpu_model(),
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs());
    BenchReport {
        date: utc_date(now),
        emulator: machine_name,
        cpu_model,
        note: TSC_NOTE.to_string(),
        metrics,
        problems,
    }
}

/// Boot 1's figures: every `bench:` line, the kernel's start-up line, the
/// runner's time from `started` to the first guest line, and the 2 MiB and
/// 64 MiB guests' memory. A problem when the guest's and the native
/// workload's digests differ (they did not do the same work).
fn exits_boot_metrics(outcome: &RunOutcome, started: Instant, metrics: &mut Vec<Metric>, problems: &mut Vec<String>) {
    metrics.extend(outcome.serial.lines().filter_map(parse_metric_line));
    if let (Some(ticks), _) = kernel_metrics(&outcome.serial) {
        metrics.push(Metric::single("kernel_entry_to_first_vm_entry", ticks as f64, "ticks", "kernel"));
    }
    if let Some(at) = outcome.first_guest_line {
        let seconds = round3(at.duration_since(started).as_secs_f64());
        metrics.push(Metric::single("runner_to_first_guest_line", seconds, "seconds", "runner"));
    }
    for (name, _, metric) in &FOOTPRINT_GUESTS[..2] {
        if let Some(kib) = guest_overhead_kib(&outcome.serial, name) {
            metrics.push(Metric::single(metric, kib as f64, "KiB", "kernel"));
        }
    }
    let digests: Vec<&str> =
        outcome.serial.lines().filter(|line| line.contains("bench-info: workload digest")).collect();
    let same = digests.len() == 2 && digests.iter().all(|line| digest_of(line) == digest_of(digests[0]));
    if !same {
        problems.push(format!("the guest's and the native workload's digests differ: {digests:?}"));
    }
}

/// The hex digest of a `bench-info: workload digest 0x... over ...` line.
fn digest_of(line: &str) -> &str {
    line.split_once("digest ").and_then(|(_, rest)| rest.split_whitespace().next()).unwrap_or("?")
}

/// Rounded to three decimals.
fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// Where the JSON goes: `bench/latest.json` in the cargo target directory
/// (next to `runs/`).
pub fn json_path(options: &RunOptions) -> PathBuf {
    let runs = options.runs_root.clone().unwrap_or_else(|| crate::run_dir::default_runs_root(&options.kernel));
    runs.parent().unwrap_or(Path::new(".")).join("bench").join("latest.json")
}

/// `--bench` from the command line: runs [`run_bench`], prints the table,
/// writes the JSON and prints its path. Exit status 0 when every metric was
/// measured, 1 otherwise (never for a slow figure).
pub fn run_and_report(options: RunOptions) -> ExitCode {
    let report = run_bench(&options);
    println!("\n{}", report.table());
    let path = json_path(&options);
    let written = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::write(&path, report.to_json() + "\n"));
    match written {
        Ok(()) => println!("runner: bench: results written to {}", path.display()),
        Err(error) => eprintln!("runner: error: cannot write {}: {error}", path.display()),
    }
    if report.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_lines_parse_from_guests_and_the_kernel() {
        let guest = parse_metric_line("[bench] bench: vmcall_null ticks samples=20 min=64.0 median=64.5 max=900.1");
        let guest = guest.expect("a guest line");
        assert_eq!((guest.name.as_str(), guest.unit.as_str(), guest.samples), ("vmcall_null", "ticks", 20));
        assert_eq!((guest.value, guest.min, guest.median, guest.max), (64.0, 64.0, 64.5, 900.1));
        assert_eq!(guest.source, "guest");
        let kernel = parse_metric_line("[hv INFO ] bench: workload_native ticks samples=1 min=5.0 median=5.0 max=5.0");
        assert_eq!(kernel.map(|m| (m.source, m.value)), Some(("kernel".to_string(), 5.0)));
        let negative = parse_metric_line("[bench] bench: x ticks samples=20 min=-1.5 median=0.0 max=2.0");
        assert_eq!(negative.map(|m| m.min), Some(-1.5));
    }

    #[test]
    fn the_guests_lines_parse_back() {
        use hypervisor_core::samples::{Summary, Tenths};
        let summary = Summary { samples: 20, min: Tenths(-15), median: Tenths(510), max: Tenths(19756) };
        let line = format!("[bench] {}", summary.line("apic_mmio_read", "ticks"));
        let metric = parse_metric_line(&line).expect("the guest's own format");
        assert_eq!((metric.name.as_str(), metric.unit.as_str(), metric.samples), ("apic_mmio_read", "ticks", 20));
        assert_eq!((metric.min, metric.median, metric.max), (-1.5, 51.0, 1975.6));
    }

    #[test]
    fn other_and_broken_lines_are_not_metrics() {
        for line in [
            "",
            "[bench] bench-info: tsc_hz 20000000",
            "[bench] bench: vmcall_null ticks samples=20 min=64.0 median=64.5",
            "[bench] bench: vmcall_null ticks samples=x min=64.0 median=64.5 max=1",
            "[bench] bench: vmcall_null ticks samples=20 max=64.0 median=64.5 min=1",
            "[bench] bench: vmcall-null ticks samples=20 min=1 median=1 max=1",
            "[hv INFO ] kernel entry to first VM entry: 5 ticks",
        ] {
            assert_eq!(parse_metric_line(line), None, "{line:?}");
        }
    }

    const SERIAL: &str = "\
[hv INFO ] idle-2m: 2 MiB RAM, entry 0x100000 in long mode, EPT 3 tables, VPID 3, 31 KiB of hypervisor memory
[hv INFO ] idle-64m: 64 MiB RAM, entry 0x100000 in long mode, EPT 3 tables, VPID 4, 39 KiB of hypervisor memory
[hv INFO ] kernel entry to first VM entry: 4242 ticks
[idle-2m] idle-64m: 1 MiB RAM ... 7 KiB of hypervisor memory
[hv INFO ] hypervisor memory for guests: 70 KiB in total, 35 KiB per guest on average (VMCS, ...)
";

    #[test]
    fn kernel_lines_give_start_up_and_memory() {
        assert_eq!(guest_overhead_kib(SERIAL, "idle-2m"), Some(31));
        assert_eq!(guest_overhead_kib(SERIAL, "idle-64m"), Some(39), "a guest's own line does not count");
        assert_eq!(guest_overhead_kib(SERIAL, "idle-1g"), None);
        assert_eq!(guest_overhead_kib(SERIAL, "idle"), None, "names match exactly");
        assert_eq!(guests_created(SERIAL), 2);
        assert_eq!(kernel_metrics(SERIAL), (Some(4242), Some(70)));
        assert_eq!(kernel_metrics(""), (None, None));
    }

    #[test]
    fn missing_and_non_positive_metrics_are_named() {
        let all: Vec<Metric> =
            EXPECTED_METRICS.iter().map(|(name, _)| Metric::single(name, 1.0, "ticks", "guest")).collect();
        assert!(missing_metrics(&all).is_empty());
        let mut some = all.clone();
        some.retain(|metric| metric.name != "vmcall_null");
        assert_eq!(missing_metrics(&some), ["vmcall_null"]);
        let mut zero = all.clone();
        for metric in &mut zero {
            metric.value = 0.0;
        }
        let zero_missing = missing_metrics(&zero);
        assert_eq!(zero_missing.len(), EXPECTED_METRICS.len() - 1);
        assert!(!zero_missing.contains(&"workload_guest_exits"), "zero exits is the target");
        let mut negative = all;
        negative[0].value = -1.0;
        assert_eq!(missing_metrics(&negative), [EXPECTED_METRICS[0].0]);
    }

    #[test]
    fn the_report_prints_a_row_per_metric_and_valid_json() {
        let report = BenchReport {
            date: "2026-11-25".to_string(),
            emulator: "Bochs".to_string(),
            cpu_model: "corei7_icelake_u".to_string(),
            note: TSC_NOTE.to_string(),
            metrics: vec![
                Metric::single("vmcall_null", 64.0, "ticks", "guest"),
                Metric::single("workload_ratio", 1.25, "ratio", "runner"),
            ],
            problems: vec!["metric x is missing".to_string()],
        };
        let table = report.table();
        assert!(table.contains("2026-11-25") && table.contains("Bochs") && table.contains("instructions"));
        assert!(table.lines().any(|line| line.starts_with("vmcall_null") && line.contains(" 64 ")), "{table}");
        assert!(table.lines().any(|line| line.starts_with("workload_ratio") && line.contains(" 1.25 ")), "{table}");
        assert!(table.contains("problem: metric x is missing"));
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).expect("valid JSON");
        assert_eq!(json["metrics"][0]["name"], "vmcall_null");
        assert_eq!(json["metrics"][0]["median"], 64.0);
        assert_eq!(json["emulator"], "Bochs");
        assert_eq!(report.metric("workload_ratio").map(|m| m.unit.as_str()), Some("ratio"));
    }

    #[test]
    fn numbers_print_short() {
        assert_eq!(number(64.0), "64");
        assert_eq!(number(64.5), "64.5");
        assert_eq!(number(1.2346), "1.235");
        assert_eq!(number(0.974), "0.974");
        assert_eq!(number(-3.25), "-3.25");
    }

    #[test]
    fn dates_are_civil_utc() {
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(951_782_400), "2000-02-29");
        assert_eq!(utc_date(1_795_629_270), "2026-11-25");
        assert_eq!(utc_date(1_709_251_199), "2024-02-29");
    }

    #[test]
    fn the_boots_fit_their_machines() {
        let exits = exits_guests().expect("the bench payloads are built in");
        assert_eq!(exits[0].config.name.as_str(), "bench");
        assert_eq!(exits[0].config.ram_bytes, BENCH_RAM);
        assert_eq!(exits[0].config.validate(), Ok(()));
        let ram: u64 = exits.iter().map(|spec| spec.config.ram_bytes).sum();
        assert!(ram <= guest_ram_budget(DEFAULT_MACHINE_MEMORY_MIB, Firmware::Bios));
        let (big, machine) = gigabyte_guest().unwrap();
        assert_eq!(big[0].config.ram_bytes, 1 << 30);
        assert!(guest_ram_budget(machine, Firmware::Bios) >= 1 << 30);
        assert!(machine <= crate::machine_memory::MAX_MACHINE_MEMORY_MIB);
        let scale = scale_guests().unwrap();
        assert!(scale.len() <= MAX_GUESTS && scale.len() > 1);
        let ram: u64 = scale.iter().map(|spec| spec.config.ram_bytes).sum();
        assert!(ram <= guest_ram_budget(DEFAULT_MACHINE_MEMORY_MIB, Firmware::Bios));
        let mut list = Vec::new();
        for spec in scale {
            assert_eq!(crate::options::add_guest(&mut list, spec), Ok(()));
        }
    }

    #[test]
    fn the_json_lands_next_to_the_runs() {
        let options = RunOptions { runs_root: Some(PathBuf::from("/x/target/runs")), ..RunOptions::default() };
        assert_eq!(json_path(&options), PathBuf::from("/x/target/bench/latest.json"));
    }
}
