//! Guests sharing the CPU: timer interrupts delivered at each guest's own
//! rate, and no guest seeing another's registers.
//!
//! Boots in Bochs:
//!
//! - `timers_keep_their_rates_while_guests_share_the_cpu`: `timer_pic`
//!   (PIT at 100 Hz through the PIC), `timer_pic_1khz` (PIT at 1 kHz) and
//!   `timer_apic` (local APIC timer, periodic and TSC-deadline, and two
//!   NMIs sent to itself through the ICR) run side by
//!   side, each sleeping in HLT between its ticks. Each measures its tick rate
//!   against the TSC over one second of ticks; all must be within 1 % of the
//!   programmed rate, and the hypervisor reports the interrupts it injected
//!   and merged per guest.
//! - `guests_never_see_each_others_registers`: two `leftovers` guests (and
//!   hello64) check that x87/SSE/AVX state, MXCSR, CR2, DR0–DR3, DR6 and the
//!   pass-through MSRs start in their reset state, and keep their own values
//!   across 50 yields while the other guests run in between.

mod common;

/// The deviation in hundredths of a percent from a line ending in
/// `off by A.BB %`.
fn deviation_basis_points(line: &str) -> Option<u64> {
    let number = line.rsplit_once("off by ")?.1.strip_suffix(" %")?;
    let (whole, fraction) = number.split_once('.')?;
    Some(whole.parse::<u64>().ok()? * 100 + fraction.parse::<u64>().ok()?)
}

/// Asserts a guest's rate line (`<prefix> ... off by A.BB %`) is within 1 %.
#[track_caller]
fn assert_rate_within_one_percent(run: &common::Booted, prefix: &str) {
    let line = run.assert_line_starting_with(prefix, "a tick-rate measurement");
    match deviation_basis_points(line) {
        Some(deviation) if deviation <= 100 => {}
        Some(deviation) => {
            run.fail(&format!("{line}: off by {}.{:02} %, more than 1 %", deviation / 100, deviation % 100))
        }
        None => run.fail(&format!("cannot read the deviation in `{line}`")),
    }
}

#[test]
fn timers_keep_their_rates_while_guests_share_the_cpu() {
    let run = common::boot(
        "Bochs boot of three timer guests",
        &common::bochs_options_from_args(&[
            "--guest",
            "timer_pic",
            "--guest",
            "timer_pic_1khz",
            "--guest",
            "timer_apic",
        ]),
    );
    assert_rate_within_one_percent(&run, "[timer_pic] 100 ticks in ");
    assert_rate_within_one_percent(&run, "[timer_pic_1khz] 1000 ticks in ");
    assert_rate_within_one_percent(&run, "[timer_apic] periodic: 100 ticks in ");
    assert_rate_within_one_percent(&run, "[timer_apic] tsc-deadline: 100 ticks in ");
    run.assert_line_starting_with("[timer_apic] tsc-deadline: deadline to handler: ", "the delivery latency");
    run.assert_line_starting_with("[timer_pic] rtc: 20", "the CMOS date");
    // NMIs: two self-IPIs with delivery mode NMI, each injected as vector 2.
    run.assert_exact_line("[timer_apic] nmi: 2 self-IPI NMIs arrived at vector 2");
    run.assert_hv_line_containing(" HLTs slept, 2 NMIs injected", "timer_apic's NMI count");
    // Every tick the PIT raised was injected or counted as merged.
    for (guest, at_least) in [("timer_pic", 101), ("timer_pic_1khz", 1001), ("timer_apic", 202)] {
        let line = run.assert_hv_line_containing(&format!("{guest}: interrupts: "), "the interrupt report");
        let injected: u64 = line
            .split("interrupts: ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| run.fail(&format!("cannot read the injected count in `{line}`")));
        if injected < at_least {
            run.fail(&format!("{guest}: {injected} interrupts injected, expected at least {at_least}"));
        }
        if !line.contains(" merged into an earlier one), ") || !line.contains(" HLTs slept") {
            run.fail(&format!("{guest}: the report does not count merged ticks and HLT sleeps: `{line}`"));
        }
    }
    run.assert_hv_line_containing("summary of 3 guests (", "the summary table");
    for guest in ["timer_pic", "timer_pic_1khz", "timer_apic"] {
        run.assert_hv_line_containing(&format!("{guest}: ended exit:0: verdict PASS"), "each guest's verdict");
    }
    run.assert_passed();
}

#[test]
fn guests_never_see_each_others_registers() {
    let run = common::boot(
        "Bochs boot of two leftovers guests and hello64",
        &common::bochs_options_from_args(&[
            "--guest",
            "leftovers",
            "--guest",
            "leftovers",
            "--name",
            "leftovers-2",
            "--guest",
            "hello64",
        ]),
    );
    for guest in ["leftovers", "leftovers-2"] {
        run.assert_exact_line(&format!("[{guest}] clean start: all 53 values in their reset state"));
        let kept = run.assert_line_starting_with(
            &format!("[{guest}] kept: all 53 values across 50 yields (other guests ran during "),
            "the values kept across guest switches",
        );
        if kept.ends_with("during 0)") {
            run.fail(&format!("{guest}: no other guest ran while it yielded: the check proved nothing"));
        }
        run.assert_exact_line(&format!("[{guest}] exiting with status 0"));
    }
    run.assert_hv_line_containing("XSAVE: state components ", "the XSAVE layout report");
    run.assert_passed();
}
