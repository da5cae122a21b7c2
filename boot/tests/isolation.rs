//! Isolation that holds: one hostile guest beside two well-behaved
//! neighbours per test, booted in Bochs (issue 5, "Isolation that holds").
//!
//! Every test boots the hostile payload (with the restart limit and budget
//! its registry entry gives it) between `neighbour-1` and `neighbour-2`
//! ([`boot::payloads::neighbour_specs`]) and passes only if
//!
//! 1. the hostile guest is stopped or faulted as specified: its own lines
//!    and the hypervisor's reports of each stop, and its verdict line
//!    `[hv INFO ] <name>: ended <outcome>: verdict PASS (expected <outcome>)`;
//! 2. both neighbours report `checksum 0x... ok` (their RAM holds exactly
//!    the pattern they wrote) and end with `exit:0`;
//! 3. the hypervisor's code and read-only data are unchanged: the kernel
//!    checksums them at start and at the end and prints
//!    `hypervisor image: code+rodata checksum 0x<16 hex digits> at end: unchanged`
//!    (the two checksums are also compared here);
//! 4. the run's verdict is PASS.
//!
//! `the_isolation_demo_passes` boots `--demo isolation`: every hostile guest
//! at once, between the same two neighbours.

mod common;

use std::ffi::OsString;

use boot::cli::{self, Command};
use boot::{EmulatorChoice, GuestSpec, RunOptions};

/// Boots `hostile` between the two neighbours in Bochs.
#[track_caller]
fn boot_beside_neighbours(hostile: &str) -> common::Booted {
    let mut neighbours = boot::payloads::neighbour_specs().into_iter();
    let mut guests: Vec<GuestSpec> = Vec::new();
    let hostile_guests = common::built_in_guests(&[hostile]);
    for spec in neighbours.next().into_iter().chain(hostile_guests).chain(neighbours) {
        boot::options::add_guest(&mut guests, spec).unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(guests.len(), 3, "two neighbours and {hostile}");
    let options = RunOptions { guests, ..common::options(EmulatorChoice::Bochs, false, common::BOCHS_TIMEOUT) };
    common::boot(&format!("Bochs boot of {hostile} between two neighbours"), &options)
}

/// The kernel's verdict line for a guest that ended as expected. The end is
/// written as the kernel describes it (`over budget`), the expectation as
/// the configuration spells it (`over-budget`).
fn pass_verdict(guest: &str, ended: &str, expected: &str) -> String {
    format!("[hv INFO ] {guest}: ended {ended}: verdict PASS (expected {expected})")
}

/// The lines of a guest's own output (`[name] ...`), without the prefix.
fn guest_lines<'a>(run: &'a common::Booted, guest: &str) -> Vec<&'a str> {
    let prefix = format!("[{guest}] ");
    run.lines().filter_map(|line| line.strip_prefix(&prefix)).collect()
}

/// The checks every isolation test ends with: the hostile guest's verdict,
/// both neighbours' intact checksums and verdicts, the hypervisor's image
/// unchanged, the run's PASS.
#[track_caller]
fn assert_isolation_held(run: &common::Booted, hostile: &str, ended: &str, expected: &str) {
    run.assert_exact_line(&pass_verdict(hostile, ended, expected));
    for neighbour in boot::payloads::NEIGHBOUR_NAMES {
        let lines = guest_lines(run, neighbour);
        let checksum = lines.iter().find(|line| line.starts_with("checksum "));
        match checksum {
            Some(line) if is_intact_checksum(line) => {}
            Some(line) => run.fail(&format!("{neighbour}'s RAM changed under it: {line:?}")),
            None => run.fail(&format!("{neighbour} never reported its checksum")),
        }
        run.assert_exact_line(&pass_verdict(neighbour, "exit:0", "exit:0"));
    }
    assert_image_unchanged(run);
    run.assert_last_line(common::PASS_LINE);
    run.assert_passed();
}

/// `checksum 0x<16 hex digits> ok`.
fn is_intact_checksum(line: &str) -> bool {
    let Some(hex) = line.strip_prefix("checksum 0x").and_then(|rest| rest.strip_suffix(" ok")) else {
        return false;
    };
    hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The kernel's image checksum lines: the one at the end says `unchanged`
/// and carries the same value as the one at the start.
#[track_caller]
fn assert_image_unchanged(run: &common::Booted) {
    const PREFIX: &str = "[hv INFO ] hypervisor image: code+rodata checksum 0x";
    let value = |suffix: &str| -> Option<String> {
        run.lines().find_map(|line| {
            let hex = line.strip_prefix(PREFIX)?.strip_suffix(suffix)?;
            (hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| hex.to_string())
        })
    };
    let Some(end) = value(" at end: unchanged") else {
        run.fail("no `hypervisor image: code+rodata checksum 0x<16 hex digits> at end: unchanged` line")
    };
    match value(" at start") {
        Some(start) if start == end => {}
        Some(start) => run.fail(&format!("image checksum {start} at start, {end} at end, yet `unchanged`")),
        None => run.fail("no `hypervisor image: code+rodata checksum 0x... at start` line"),
    }
}

/// The number of serial lines that satisfy `matches`.
fn count_lines(run: &common::Booted, matches: impl Fn(&str) -> bool) -> usize {
    run.lines().filter(|line| matches(line)).count()
}

// ---------------------------------------------------------------------------
// 1. Memory

/// Nine runs, one address each, restarted by the restart policy; every
/// access outside RAM is an EPT violation reported with its address. The
/// local APIC (the last run) may be emulated instead (a virtual xAPIC):
/// then the guest reads a version register and crashes past its RAM.
#[test]
fn memory_outside_its_ram_is_never_reached() {
    let run = boot_beside_neighbours("hostile_memory");
    let runs = count_lines(&run, |line| line.starts_with("[hostile_memory] run ") && line.contains(" of 9: "));
    if runs != 9 {
        run.fail(&format!("hostile_memory should have run 9 times (1 run + 8 restarts), saw {runs}"));
    }
    let probes = [
        ("read", 0x20_0000u64),
        ("write", 0x20_0000),
        ("read", 0x80_0000),
        ("write", 0x80_0000),
        ("read", 0xFEC0_0000),
        ("write", 0xFEC0_0000),
        ("read", 0xFFFF_F000),
        ("write", 0xFFFF_F000),
    ];
    for (access, gpa) in probes {
        let report = format!("hostile_memory: stopped: EPT violation: {access} to GPA {gpa:#x}, ");
        run.assert_line_from(0, &format!("the report of the {access} at {gpa:#x}"), |line| {
            line.starts_with("[hv ERROR] ") && line.contains(&report)
        });
    }
    let apic_stopped =
        run.find_line_from(0, |line| line.contains("hostile_memory: stopped: EPT violation: read to GPA 0xfee00030, "));
    let apic_emulated = run.find_line_from(0, |line| line.starts_with("[hostile_memory] the local APIC is emulated: "));
    match (apic_stopped, apic_emulated) {
        (Some(_), None) => {}
        (None, Some(_)) => {
            // The emulated read is followed by a write past the end: a 9th report at 0x200000.
            let past_end = count_lines(&run, |line| {
                line.contains("hostile_memory: stopped: EPT violation: write to GPA 0x200000, ")
            });
            if past_end != 2 {
                run.fail("after the emulated APIC read, the guest should be stopped writing past its RAM");
            }
        }
        _ => run.fail("the local APIC read should be stopped (EPT violation) or emulated, exactly one of them"),
    }
    if let Some((_, line)) = run.find_line_from(0, |line| line.starts_with("[hostile_memory] FAIL")) {
        run.fail(&format!("an access outside RAM was allowed: {line:?}"));
    }
    run.assert_exact_line("[hv INFO ] hostile_memory: crashed; restarting (8 of 8 restarts)");
    assert_isolation_held(&run, "hostile_memory", "crash", "crash");
}

// ---------------------------------------------------------------------------
// 2. Ports

/// guest-payloads/hostile_ports/README.md, "Expected output".
const HOSTILE_PORTS_LINES: &[&str] = &[
    "hostile_ports: I/O to the host's devices, reset and power-off ports",
    "survived: PIC 0x20/0x21/0xA0/0xA1: ICW1-4 with other vectors, all IRQs unmasked, reads (15 accesses, 4 reads)",
    "survived: PIT 0x40-0x43: channel 0 at the fastest rate, channel 2 and the speaker, reads (12 accesses, 4 reads)",
    "survived: CMOS 0x70/0x71: NMI off, shutdown status, RTC and checksum bytes overwritten (8 accesses, 1 reads)",
    "survived: PCI 0xCF8/0xCFC: config reads of bus 0, a BAR overwritten, the host bridge's command register \
     cleared (8 accesses, 2 reads)",
    "survived: IDE 0x1F0-0x1F7, 0x170-0x177, 0x3F6: status reads, IDENTIFY, WRITE SECTORS, software reset \
     (16 accesses, 4 reads)",
    "survived: COM1 LCR/MCR/divisor latch and COM2: text written with DLAB set, in loopback, and to 0x2F8 \
     (20 accesses, 2 reads)",
    "survived: keyboard controller 0x60/0x64: status, output port with the reset line low, pulse reset (0xFE) \
     (5 accesses, 2 reads)",
    "survived: reset control 0xCF9 (hard and full reset) and port 0x92 (fast A20 and reset) (5 accesses, 1 reads)",
    "survived: Bochs shutdown port 0x8900: \"Shutdown\" (8 accesses, 0 reads)",
    "survived: ACPI PM1a control 0xB004 and 0x604, 0x4004: sleep enable (power off) (3 accesses, 0 reads)",
    "hostile_ports: still running after 100 port accesses",
];

/// The machine keeps running through every reset and power-off port, and
/// the text written to the UART's divisor latch, in loopback and to COM2
/// never appears: the guest's output is exactly its own lines.
#[test]
fn ports_reach_no_device_of_the_host() {
    let run = boot_beside_neighbours("hostile_ports");
    let lines = guest_lines(&run, "hostile_ports");
    if lines != HOSTILE_PORTS_LINES {
        run.fail(&format!("hostile_ports' lines differ\n  expected: {HOSTILE_PORTS_LINES:#?}\n  got: {lines:#?}"));
    }
    if let Some((_, line)) = run.find_line_from(0, |line| line.contains("LEAK") || line.contains("XX")) {
        run.fail(&format!("text written outside the guest's transmitter appeared: {line:?}"));
    }
    for port in ["0x8900: 8 accesses", "0x0cf9: 3 accesses", "0xb004: 1 accesses", "0x02f8: 5 accesses"] {
        run.assert_hv_line_containing(&format!("hostile_ports:   unemulated port {port}"), "an ignored port counted");
    }
    assert_isolation_held(&run, "hostile_ports", "exit:0", "exit:0");
}

// ---------------------------------------------------------------------------
// 3. MSRs

/// Every MSR access is refused with #GP(0) or answered with a documented
/// emulated value (IA32_APIC_BASE, IA32_TSC_DEADLINE).
#[test]
fn msrs_of_the_host_are_refused() {
    let run = boot_beside_neighbours("hostile_msrs");
    let lines = guest_lines(&run, "hostile_msrs");
    if let Some(line) = lines.iter().find(|line| line.starts_with("FAIL") || line.starts_with("panic")) {
        run.fail(&format!("hostile_msrs: {line}"));
    }
    run.assert_exact_line("[hostile_msrs] ok: rdmsr of all 256 x2APIC MSRs 0x800-0x8ff -> #GP(0) for every one");
    run.assert_exact_line("[hostile_msrs] ok: rdmsr of all 18 VMX capability MSRs 0x480-0x491 -> #GP(0) for every one");
    run.assert_exact_line("[hostile_msrs] ok: wrmsr IA32_FEATURE_CONTROL (0x3a) 0x5 -> #GP(0)");
    run.assert_exact_line("[hostile_msrs] ok: wrmsr IA32_BIOS_UPDT_TRIG (0x79) 0x100000 -> #GP(0)");
    run.assert_exact_line("[hostile_msrs] checks: 52 passed, 0 failed");
    assert_isolation_held(&run, "hostile_msrs", "exit:0", "exit:0");
}

// ---------------------------------------------------------------------------
// 4. Instructions

/// VMX instructions raise #UD, illegal XSETBV and CR0/CR4 values #GP(0),
/// in the hostile guest only.
#[test]
fn vmx_and_invalid_control_register_writes_fault_in_the_guest() {
    let run = boot_beside_neighbours("hostile_instructions");
    for instruction in ["vmxon [mem]", "vmptrld [mem]", "invept rax, [mem]"] {
        run.assert_exact_line(&format!("[hostile_instructions] ok: {instruction} -> #UD"));
    }
    run.assert_line_from(0, "CR0 PG without PE refused", |line| {
        line.starts_with("[hostile_instructions] ok: mov cr0, ") && line.ends_with(" (PG without PE) -> #GP(0)")
    });
    run.assert_line_from(0, "CR4.VMXE refused", |line| {
        line.starts_with("[hostile_instructions] ok: mov cr4, ") && line.ends_with(" (VMXE) -> #GP(0)")
    });
    run.assert_exact_line("[hostile_instructions] checks: 23 passed, 0 failed");
    assert_isolation_held(&run, "hostile_instructions", "exit:0", "exit:0");
}

// ---------------------------------------------------------------------------
// 5. CPU time

/// `cli; jmp $` cannot keep the CPU: the preemption timer takes it back
/// every slice, and the budget stops the guest; the neighbours finish.
#[test]
fn a_guest_that_never_yields_is_stopped_at_its_budget() {
    let run = boot_beside_neighbours("hostile_cpu");
    let budget = boot::payloads::HOSTILE_CPU_BUDGET_TICKS;
    run.assert_line_starting_with(
        &format!("[hv WARN ] hostile_cpu: stopped: used its CPU-time budget of {budget} ticks (at guest RIP "),
        "the budget report",
    );
    let timer = run.assert_hv_line_containing("hostile_cpu:   VMX-preemption timer expired", "preemption-timer exits");
    let exits: u64 = timer
        .split_whitespace()
        .find_map(|word| word.parse().ok())
        .unwrap_or_else(|| run.fail(&format!("no exit count in {timer:?}")));
    if exits < 2 {
        run.fail(&format!("the preemption timer should have taken the CPU back several times: {timer:?}"));
    }
    assert_isolation_held(&run, "hostile_cpu", "over budget", "over-budget");
}

// ---------------------------------------------------------------------------
// 6. Crashes

/// Four crashes (two triple faults, two EPT violations during event
/// delivery), each stopped with the guest's state dumped; the others finish.
#[test]
fn crashes_stop_only_the_crashing_guest() {
    let run = boot_beside_neighbours("hostile_crash");
    let triple_faults = count_lines(&run, |line| line.starts_with("[hv ERROR] hostile_crash: stopped: triple fault"));
    if triple_faults != 2 {
        run.fail(&format!("expected 2 triple faults (no IDT, corrupted IDT), saw {triple_faults}"));
    }
    run.assert_hv_line_containing("hostile_crash: stopped: EPT violation: read to GPA 0xfffff060, ", "the IDT read");
    run.assert_hv_line_containing("hostile_crash: stopped: EPT violation: write to GPA 0x200ff8, ", "the frame push");
    let dumps = count_lines(&run, |line| line.starts_with("[hv ERROR] hostile_crash:   RIP 0x"));
    if dumps != 4 {
        run.fail(&format!("each of the 4 crashes should dump the guest's registers, saw {dumps} dumps"));
    }
    run.assert_exact_line("[hv INFO ] hostile_crash: crashed; restarting (3 of 3 restarts)");
    if let Some((_, line)) = run.find_line_from(0, |line| line.starts_with("[hostile_crash] FAIL")) {
        run.fail(&format!("a crash did not happen: {line:?}"));
    }
    assert_isolation_held(&run, "hostile_crash", "crash", "crash");
}

// ---------------------------------------------------------------------------
// 7. Hypercalls

/// Bad pointers, wrapping lengths, misleading call numbers and 100,000 calls
/// in a row: every one answered with its error code, every failure counted.
#[test]
fn hypercall_abuse_gets_error_codes() {
    let run = boot_beside_neighbours("hostile_hypercalls");
    run.assert_exact_line(
        "[hostile_hypercalls] ok: print(0x1000, 0xfffffffffffff000): a length that wraps address + length to 0 \
         -> BadAddress",
    );
    run.assert_exact_line("[hostile_hypercalls] ok: call 0x100000001 (print with bit 32 set) -> UnknownCall");
    run.assert_exact_line("[hostile_hypercalls] ok: call 0x8000000000000002 (exit with bit 63 set) -> UnknownCall");
    run.assert_exact_line(
        "[hostile_hypercalls] ok: 100000 calls in a tight loop (null and print of a bad address, alternating) \
         -> every one answered as expected",
    );
    run.assert_exact_line("[hostile_hypercalls] checks: 15 passed, 0 failed");
    // 8 bad buffers + 4 unknown calls + 2 bad keys + 50,000 bad prints.
    run.assert_hv_line_containing("hostile_hypercalls: ran ", "the guest's summary line");
    run.assert_hv_line_containing(" 50014 failed hypercalls", "every failed hypercall counted");
    assert_isolation_held(&run, "hostile_hypercalls", "exit:0", "exit:0");
}

// ---------------------------------------------------------------------------
// All at once

/// `cargo run -- --demo isolation`: every hostile guest between the two
/// neighbours in one boot, each ending as its registry entry expects.
#[test]
fn the_isolation_demo_passes() {
    let options = match cli::parse_args(["--demo", "isolation"].map(OsString::from)) {
        Ok(Command::Run(options)) => {
            RunOptions { emulator: EmulatorChoice::Bochs, stream: false, timeout: common::BOCHS_TIMEOUT, ..options }
        }
        other => panic!("`--demo isolation` should be a run, got {other:?}"),
    };
    let run = common::boot("Bochs boot of --demo isolation", &options);
    for spec in &options.guests {
        let name = spec.config.name.as_str();
        let expected = spec.config.expected.to_string();
        let ended = if expected == "over-budget" { "over budget".to_string() } else { expected.clone() };
        run.assert_exact_line(&pass_verdict(name, &ended, &expected));
    }
    for neighbour in boot::payloads::NEIGHBOUR_NAMES {
        if !guest_lines(&run, neighbour).iter().any(|line| is_intact_checksum(line)) {
            run.fail(&format!("{neighbour} did not report an intact checksum"));
        }
    }
    assert_image_unchanged(&run);
    run.assert_last_line(common::PASS_LINE);
    run.assert_passed();
}

#[test]
fn checksum_lines_are_recognized_exactly() {
    assert!(is_intact_checksum("checksum 0x3cbedf34b7f573b9 ok"));
    assert!(!is_intact_checksum("checksum 0x3cbedf34b7f573b9 expected 0x3cbedf34b7f573b8 CORRUPTED"));
    assert!(!is_intact_checksum("checksum 0x3cbedf34b7f573b ok"));
    assert!(!is_intact_checksum("checksum 0x3cbedf34b7f573bz ok"));
    assert!(!is_intact_checksum("checksum 0x3cbedf34b7f573b9 ok!"));
}
