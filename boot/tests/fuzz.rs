//! The `fuzz` payload in Bochs: a seeded pseudo-random stream of port I/O,
//! MSR accesses, CPUID leaves and hypercalls, each run ended by a touch
//! outside its RAM and restarted by its restart policy, beside a
//! well-behaved neighbour (the isolation set's `neighbour` when the registry
//! has it, `hello64` otherwise).
//!
//! It passes when the hypervisor never panics, stops every run but the last
//! at its out-of-RAM touch with an EPT violation, the runs together make at
//! least [`MIN_TOTAL_OPS`] operations (the sum of the per-run lines equals the
//! last run's total), the neighbour ends as expected, the hypervisor's code
//! and constants are unchanged, and the verdict is PASS.

mod common;

/// Runs the payload makes (its `RUNS`): the first and one per restart.
const FUZZ_RUNS: u64 = 10;
/// The floor for operations across all runs.
const MIN_TOTAL_OPS: u64 = 100_000;

/// `[fuzz] run N of 10: seed 0x...: M ops in T ticks, R ops per million ticks` → (N, M).
fn parse_run_line(line: &str) -> Option<(u64, u64)> {
    let rest = line.strip_prefix("[fuzz] run ")?;
    let (run, rest) = rest.split_once(" of ")?;
    let (_, rest) = rest.split_once(": seed ")?;
    let (_, rest) = rest.split_once(": ")?;
    let (ops, _) = rest.split_once(" ops in ")?;
    Some((run.parse().ok()?, ops.parse().ok()?))
}

#[test]
fn parse_run_lines() {
    let line = "[fuzz] run 3 of 10: seed 0x6d082d9520ebc963: 12684 ops in 20921421 ticks, 606 ops per million ticks";
    assert_eq!(parse_run_line(line), Some((3, 12684)));
    assert_eq!(parse_run_line("[fuzz] run 3 ends: reading 0x349c40f0, outside its 2 MiB of RAM"), None);
    assert_eq!(parse_run_line("[hv INFO ] fuzz: crashed; restarting (4 of 9 restarts)"), None);
}

#[test]
fn fuzz_beside_a_neighbour() {
    let neighbour = if boot::payloads::find("neighbour").is_some() { "neighbour" } else { "hello64" };
    let mut options = common::bochs_options(&["fuzz", neighbour]);
    // The payload ends every run but the last with a crash: one restart per further run.
    options.guests[0].config.restart_limit = (FUZZ_RUNS - 1) as u32;
    let run = common::boot(&format!("Bochs: fuzz beside {neighbour}"), &options);

    if let Some(line) = run.lines().find(|line| line.contains("hypervisor panic")) {
        run.fail(&format!("the hypervisor panicked: {line}"));
    }
    if let Some(line) = run.lines().find(|line| line.starts_with("[fuzz] FAIL") || line.starts_with("[fuzz] panic")) {
        run.fail(&format!("the fuzz guest reported a failure: {line}"));
    }

    // One line per run, runs 0..FUZZ_RUNS in order; their sum is the total the last run prints.
    let runs: Vec<(u64, u64)> = run.lines().filter_map(parse_run_line).collect();
    let numbers: Vec<u64> = runs.iter().map(|&(number, _)| number).collect();
    if numbers != (0..FUZZ_RUNS).collect::<Vec<_>>() {
        run.fail(&format!(
            "expected one `[fuzz] run N of {FUZZ_RUNS}` line per run 0..{FUZZ_RUNS}, got runs {numbers:?}"
        ));
    }
    let total: u64 = runs.iter().map(|&(_, ops)| ops).sum();
    if total < MIN_TOTAL_OPS {
        run.fail(&format!("the runs made {total} operations in total, fewer than {MIN_TOTAL_OPS}"));
    }
    run.assert_exact_line(&format!("[fuzz] total: {FUZZ_RUNS} runs, {total} ops"));
    for number in 0..FUZZ_RUNS {
        let prefix = format!("[fuzz] run {number} answers: ports ");
        run.assert_line_from(0, &format!("answers of run {number}"), |line| line.starts_with(&prefix));
    }

    // Every run but the last ends at its touch, stopped by EPT, then restarted.
    let stops = run.lines().filter(|line| line.starts_with("[hv ERROR] fuzz: stopped: EPT violation")).count() as u64;
    if stops != FUZZ_RUNS - 1 {
        run.fail(&format!("expected {} EPT-violation stops of fuzz, got {stops}", FUZZ_RUNS - 1));
    }
    for restart in 1..FUZZ_RUNS {
        run.assert_exact_line(&format!(
            "[hv INFO ] fuzz: crashed; restarting ({restart} of {} restarts)",
            FUZZ_RUNS - 1
        ));
    }
    run.assert_exact_line("[hv INFO ] fuzz: ended exit:0: verdict PASS (expected exit:0)");
    run.assert_line_from(0, "the neighbour's PASS verdict", |line| {
        line.starts_with(&format!("[hv INFO ] {neighbour}: ended ")) && line.contains(": verdict PASS")
    });
    run.assert_line_from(0, "the unchanged image checksum", |line| {
        line.starts_with("[hv INFO ] hypervisor image: code+rodata checksum 0x") && line.ends_with(" at end: unchanged")
    });
    run.assert_last_line(common::PASS_LINE);
    run.assert_passed();
}
