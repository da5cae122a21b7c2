//! `--bench` in Bochs: the three boots of the benchmark run, and every metric
//! of `boot::bench::EXPECTED_METRICS` comes back present and positive (the
//! workload's exit count may be zero: that is its target). The figures'
//! values are not checked: benchmarks report numbers, they do not fail for
//! being slow.

mod common;

use boot::bench::{self, EXPECTED_METRICS};
use boot::EmulatorChoice;

#[test]
fn every_metric_is_measured() {
    let options = common::options(EmulatorChoice::Bochs, false, common::BOCHS_TIMEOUT);
    let report = bench::run_bench(&options);
    let table = report.table();
    eprintln!("{table}");
    assert!(report.problems.is_empty(), "the benchmark had problems:\n{table}");
    for (name, zero_allowed) in EXPECTED_METRICS {
        let metric = report.metric(name).unwrap_or_else(|| panic!("no {name} in\n{table}"));
        assert!(metric.value > 0.0 || (zero_allowed && metric.value == 0.0), "{name} = {}\n{table}", metric.value);
        assert!(metric.samples >= 1 && metric.min <= metric.median && metric.median <= metric.max, "{name}\n{table}");
    }
    // The exit round trips come from at least 20 batches of 500, the yields from 100.
    for name in ["cpuid_leaf0", "vmcall_null", "apic_mmio_read", "hlt_wakeup"] {
        assert!(report.metric(name).is_some_and(|m| m.samples >= 20), "{name}\n{table}");
    }
    assert!(report.metric("yield_round_trip").is_some_and(|m| m.samples >= 100), "{table}");
    assert_eq!(report.emulator, "Bochs");
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).expect("the JSON parses");
    assert_eq!(json["metrics"].as_array().map(Vec::len), Some(report.metrics.len()));
}
