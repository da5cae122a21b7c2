//! Runs the built-in guests in Bochs (which emulates VT-x) and checks what the
//! guests print and what the hypervisor reports about them.
//!
//! - `hello64_runs_and_exits_zero`: hello64's deterministic console lines, in
//!   order, and its verdict.
//! - `bad_hypercalls_are_reported`: the hypervisor's decoded report of the
//!   unknown call and the bad-address print that hello64 makes on purpose.
//!   (These two share one boot: the first test to get there boots, the other
//!   waits for it.)
//! - `ept_violation_stops_the_guest`: escape_ram writes past its RAM; the
//!   hypervisor stops it at the EPT violation and reports the access.
//! - `triple_fault_is_reported_with_recent_exits`: triple_fault triple-faults;
//!   the hypervisor reports it with registers, its last exits and the VMCS.
//! - `guests_run_side_by_side_and_a_crash_stops_only_its_guest`: hello64 and
//!   triple_fault share the CPU; triple_fault's crash stops only it, and
//!   hello64 goes on to its clean exit.
//!
//! Each boot takes a few seconds; the tests run in parallel, each in a run
//! directory of its own under `target/runs/`. Every assertion prints the whole
//! serial output when it fails.

mod common;

use std::ops::Range;
use std::sync::OnceLock;

// The serial lines the tests look for. Adjust them here when the kernel's or a
// guest's wording changes.

/// hello64's console lines that are the same in every run, in order: all of
/// them but the `measure:` lines (guest-payloads/hello64/README.md).
const HELLO64_LINES: &[&str] = &[
    "[hello64] hello from a 64-bit guest",
    "[hello64] printed with rep outsb through the guest's page tables",
    "[hello64] ok: null -> 0",
    "[hello64] printed through the print hypercall",
    "[hello64] ok: print(message) -> 36",
    "[hello64] ok: info(GuestId) -> a position in the guest list",
    "[hello64] ok: info(RamSize) -> 0x200000",
    "[hello64] ok: info(TscHz) -> positive",
    "[hello64] ok: info(ReservedBase), info(ReservedSize) -> plausible",
    "[hello64] ok: info(99) -> BadArgument",
    "[hello64] ok: call 0xdead -> UnknownCall",
    "[hello64] ok: print(0x1ffff8, 64) -> BadAddress",
    "[hello64] ok: print(message, u64::MAX) -> BadAddress",
    "[hello64] ok: print(message, MAX_PRINT_LEN + 1) -> TooLong",
    "[hello64] ok: yield -> 0",
    "[hello64] checks: 12 passed, 0 failed",
    "[hello64] exiting with status 0",
];
/// The start of hello64's lines whose numbers vary from run to run.
const HELLO64_MEASURE_PREFIX: &str = "[hello64] measure:";
/// What hello64 measures, one `measure:` line each, in order.
const HELLO64_MEASUREMENTS: &[&str] = &[
    "[hello64] measure: tsc frequency ",
    "[hello64] measure: cpuid round trip ",
    "[hello64] measure: null vmcall round trip ",
];
/// The kernel's verdict on hello64.
const HELLO64_VERDICT: &str = "[hv INFO ] hello64: ended exit:0: verdict PASS (expected exit:0)";

/// The hypervisor's report of hello64's unknown call: `<prefix><RIP and
/// arguments><suffix>`.
const UNKNOWN_CALL_REPORT: (&str, &str) =
    ("[hv WARN ] hello64: hypercall 0xdead (unknown) at RIP 0x", ": unknown call number -> returns -1");
/// Its report of hello64's `print(0x1ffff8, 64)`, which runs past the end of RAM.
const BAD_ADDRESS_REPORT: (&str, &str, &str) = (
    "[hv WARN ] hello64: hypercall 0x1 (print) at RIP 0x",
    " with RDI=0x1ffff8 RSI=0x40 ",
    ": address outside guest RAM -> returns -2",
);
/// hello64's own line after each of those calls returned.
const UNKNOWN_CALL_RESULT: &str = "[hello64] ok: call 0xdead -> UnknownCall";
const BAD_ADDRESS_RESULT: &str = "[hello64] ok: print(0x1ffff8, 64) -> BadAddress";

/// escape_ram's lines before its write past RAM.
const ESCAPE_RAM_LINES: &[&str] =
    &["[escape_ram] RAM size: 0x200000 bytes", "[escape_ram] writing just past the end of RAM"];
/// The hypervisor's report of the EPT violation, up to the guest's RIP.
const EPT_VIOLATION_REPORT: &str = "[hv ERROR] escape_ram: stopped: EPT violation: write to GPA 0x200000, \
     not present (outside its RAM), guest-linear address 0x200000 at guest RIP 0x";
/// The kernel's verdict on escape_ram.
const ESCAPE_RAM_VERDICT: &str = "[hv INFO ] escape_ram: ended crash: verdict PASS (expected crash)";

/// triple_fault's line before its `ud2`.
const TRIPLE_FAULT_LINE: &str = "[triple_fault] about to triple-fault";
/// The hypervisor's report of the triple fault, up to the guest's RIP.
const TRIPLE_FAULT_REPORT: &str =
    "[hv ERROR] triple_fault: stopped: triple fault (the guest could not deliver an exception) at guest RIP 0x";
/// The kernel's verdict on triple_fault.
const TRIPLE_FAULT_VERDICT: &str = "[hv INFO ] triple_fault: ended crash: verdict PASS (expected crash)";

/// The first line of the VMCS dump that follows a stopped guest's report.
const VMCS_DUMP_HEADER: &str = "[hv ERROR] VMCS dump";
/// The registers a stopped guest's report shows.
const REPORTED_REGISTERS: &[&str] = &[
    "RIP", "RSP", "RFLAGS", "CR0", "CR3", "CR4", "RAX", "RBX", "RCX", "RDX", "RSI", "RDI", "RBP", "R8", "R9", "R10",
    "R11", "R12", "R13", "R14", "R15",
];
/// The exit-ring entry of the I/O instruction exits the guests' UART causes.
const IO_EXIT: &str = "I/O instruction";
/// Basic exit reasons (SDM Vol. 3C, Appendix C "VMX Basic Exit Reasons") as
/// the exit ring names them and as the VMCS dump shows them.
const EPT_VIOLATION_EXIT: (&str, u64) = ("EPT violation", 48);
const TRIPLE_FAULT_EXIT: (&str, u64) = ("Triple fault", 2);

/// The payloads are linked at guest-physical 0x100000 and all their segments
/// lie below 0x180000 (guest-rt's `link.ld`): where a guest RIP must be.
const PAYLOAD_CODE: Range<u64> = 0x10_0000..0x18_0000;

/// Boots the built-in guests `names` in Bochs, in that order.
fn boot_guests(what: &str, names: &[&str]) -> common::Booted {
    common::boot(what, &common::bochs_options(names))
}

/// The run of hello64 alone, shared by the tests that look at it.
fn hello64_run() -> &'static common::Booted {
    static RUN: OnceLock<common::Booted> = OnceLock::new();
    RUN.get_or_init(|| boot_guests("Bochs boot of hello64", &["hello64"]))
}

#[test]
fn hello64_runs_and_exits_zero() {
    let run = hello64_run();
    let deterministic: Vec<&str> =
        run.lines().filter(|line| line.starts_with("[hello64]") && !line.starts_with(HELLO64_MEASURE_PREFIX)).collect();
    if deterministic != HELLO64_LINES {
        run.fail(&format!(
            "hello64's lines (without `measure:`) differ\n  expected: {HELLO64_LINES:#?}\n  got: {deterministic:#?}"
        ));
    }
    let measurements: Vec<&str> = run.lines().filter(|line| line.starts_with(HELLO64_MEASURE_PREFIX)).collect();
    let measured_in_order = measurements.len() == HELLO64_MEASUREMENTS.len()
        && measurements.iter().zip(HELLO64_MEASUREMENTS).all(|(line, prefix)| line.starts_with(prefix));
    if !measured_in_order {
        run.fail(&format!("hello64 should print the measurements {HELLO64_MEASUREMENTS:?}, got {measurements:?}"));
    }
    let exit_line = run.assert_exact_line("[hello64] exiting with status 0");
    let verdict = run.assert_exact_line(HELLO64_VERDICT);
    if verdict < exit_line {
        run.fail("the kernel's verdict on hello64 should follow the guest's last line");
    }
    run.assert_last_line(common::PASS_LINE);
    run.assert_passed();
}

#[test]
fn bad_hypercalls_are_reported() {
    let run = hello64_run();
    let (prefix, suffix) = UNKNOWN_CALL_REPORT;
    let (report, line) = run.assert_line_from(0, "report of the unknown hypercall 0xdead", |line| {
        line.starts_with(prefix) && line.ends_with(suffix)
    });
    expect_code_address(run, "the RIP of the unknown call", hex_after(line, prefix));
    let result = run.assert_exact_line(UNKNOWN_CALL_RESULT);
    if result < report {
        run.fail("the hypervisor should report the unknown call before the guest sees its result");
    }

    let (prefix, arguments, suffix) = BAD_ADDRESS_REPORT;
    let (report, line) = run.assert_line_from(0, "report of the print hypercall with a buffer past RAM", |line| {
        line.starts_with(prefix) && line.contains(arguments) && line.ends_with(suffix)
    });
    expect_code_address(run, "the RIP of the bad-address print", hex_after(line, prefix));
    let result = run.assert_exact_line(BAD_ADDRESS_RESULT);
    if result < report {
        run.fail("the hypervisor should report the bad-address print before the guest sees its result");
    }
    run.assert_passed();
}

#[test]
fn ept_violation_stops_the_guest() {
    let run = boot_guests("Bochs boot of escape_ram", &["escape_ram"]);
    let before = assert_lines_in_order(&run, ESCAPE_RAM_LINES);
    let (report, rip) = assert_stop_report(&run, before, EPT_VIOLATION_REPORT);
    assert_no_guest_output_after(&run, "escape_ram", report);
    assert_register_dump(&run, "escape_ram", report, rip);
    assert_vmcs_dump(&run, report, EPT_VIOLATION_EXIT.1, &[("Guest-physical address", 0x20_0000)]);
    assert_exit_ring(&run, "escape_ram", report, EPT_VIOLATION_EXIT.0, rip);
    run.assert_line_from(report, "verdict on escape_ram", |line| line == ESCAPE_RAM_VERDICT);
    run.assert_last_line(common::PASS_LINE);
    run.assert_passed();
}

#[test]
fn triple_fault_is_reported_with_recent_exits() {
    let run = boot_guests("Bochs boot of triple_fault", &["triple_fault"]);
    let before = assert_lines_in_order(&run, &[TRIPLE_FAULT_LINE]);
    let (report, rip) = assert_stop_report(&run, before, TRIPLE_FAULT_REPORT);
    assert_no_guest_output_after(&run, "triple_fault", report);
    assert_register_dump(&run, "triple_fault", report, rip);
    assert_vmcs_dump(&run, report, TRIPLE_FAULT_EXIT.1, &[]);
    let ring = assert_exit_ring(&run, "triple_fault", report, TRIPLE_FAULT_EXIT.0, rip);
    if !ring.iter().any(|entry| entry.reason == IO_EXIT) {
        run.fail(&format!("the ring of last exits should show the UART's `{IO_EXIT}` exits: {ring:#?}"));
    }
    run.assert_line_from(report, "verdict on triple_fault", |line| line == TRIPLE_FAULT_VERDICT);
    run.assert_last_line(common::PASS_LINE);
    run.assert_passed();
}

#[test]
fn guests_run_side_by_side_and_a_crash_stops_only_its_guest() {
    let run = boot_guests("Bochs boot of hello64 beside triple_fault", &["hello64", "triple_fault"]);
    // hello64 has the CPU first: its first slice prints before triple_fault's crash...
    let (hello, _) = run.assert_line_from(0, "hello64 output", |line| line.starts_with("[hello64]"));
    let (crash, _) = run.assert_line_from(0, "triple-fault report", |line| line.starts_with(TRIPLE_FAULT_REPORT));
    if hello > crash {
        run.fail("hello64 should have run its first time slice before triple_fault crashed");
    }
    run.assert_line_from(crash, "verdict on triple_fault", |line| line == TRIPLE_FAULT_VERDICT);
    // ...and goes on after it, to its clean exit, with every check passed.
    let failed_checks: Vec<&str> = run.lines().filter(|line| line.starts_with("[hello64] FAIL")).collect();
    if !failed_checks.is_empty() {
        run.fail(&format!(
            "hello64 should pass all its checks beside a crashing guest, but it printed {failed_checks:#?}"
        ));
    }
    let last = assert_lines_in_order(&run, &[HELLO64_LINES[0], "[hello64] exiting with status 0", HELLO64_VERDICT]);
    if last <= crash {
        run.fail("hello64 should finish after triple_fault's crash: they share the CPU");
    }
    run.assert_hv_line_containing("summary of 2 guests (", "the summary table");
    run.assert_last_line(common::PASS_LINE);
    run.assert_passed();
}

/// Asserts that `expected` are serial lines in this order (others may come
/// between them); returns the index of the last one.
#[track_caller]
fn assert_lines_in_order(run: &common::Booted, expected: &[&str]) -> usize {
    let mut next = 0;
    let mut last = 0;
    for line in expected {
        let (index, _) = run.assert_line_from(next, &format!("line {line:?} (in order)"), |l| l == *line);
        last = index;
        next = index + 1;
    }
    last
}

/// The hexadecimal number that follows `prefix` at the start of `line` (up to
/// the first character that is not a hex digit).
fn hex_after(line: &str, prefix: &str) -> Option<u64> {
    let digits: String = line.strip_prefix(prefix)?.chars().take_while(char::is_ascii_hexdigit).collect();
    u64::from_str_radix(&digits, 16).ok()
}

/// Asserts that `address` is an address in the payload's code.
#[track_caller]
fn expect_code_address(run: &common::Booted, what: &str, address: Option<u64>) -> u64 {
    match address {
        Some(address) if PAYLOAD_CODE.contains(&address) => address,
        Some(address) => run.fail(&format!("{what} is {address:#x}, outside the payload's code {PAYLOAD_CODE:#x?}")),
        None => run.fail(&format!("{what} is not a hexadecimal number")),
    }
}

/// Asserts a stopped guest's report, a line `<report>RIP` after line `after`
/// whose RIP (hex) lies in the payload's code and ends the line; returns its
/// index and the RIP.
#[track_caller]
fn assert_stop_report(run: &common::Booted, after: usize, report: &str) -> (usize, u64) {
    let (index, line) = run.assert_line_from(after, &format!("report {report:?}<RIP>"), |l| l.starts_with(report));
    let digits = &line[report.len()..];
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        run.fail(&format!("the report should end with the guest's RIP in hex: {line:?}"));
    }
    (index, expect_code_address(run, "the guest RIP of the report", hex_after(line, report)))
}

/// Asserts that the guest printed nothing after line `after`: it was stopped.
#[track_caller]
fn assert_no_guest_output_after(run: &common::Booted, guest: &str, after: usize) {
    let prefix = format!("[{guest}]");
    if let Some((_, line)) = run.find_line_from(after, |line| line.starts_with(&prefix)) {
        run.fail(&format!("{guest} should have been stopped, but it printed {line:?} after its report"));
    }
}

/// Asserts the register lines right after a stopped guest's report
/// (`[hv ERROR] guest:   RIP 0x... RSP 0x...`): every register of
/// [`REPORTED_REGISTERS`] once, with a hex value, and RIP equal to `rip`.
#[track_caller]
fn assert_register_dump(run: &common::Booted, guest: &str, report: usize, rip: u64) {
    let prefix = format!("[hv ERROR] {guest}:   ");
    let lines: Vec<&str> = run
        .lines()
        .skip(report + 1)
        .take_while(|line| line.starts_with(&prefix) && !line[prefix.len()..].starts_with('#'))
        .collect();
    let mut registers: Vec<(&str, u64)> = Vec::new();
    for line in &lines {
        let words: Vec<&str> = line[prefix.len()..].split_whitespace().collect();
        for pair in words.chunks(2) {
            let value = pair.get(1).and_then(|v| v.strip_prefix("0x")).and_then(|v| u64::from_str_radix(v, 16).ok());
            match value {
                Some(value) => registers.push((pair[0], value)),
                None => run.fail(&format!("register line {line:?}: `{}` has no hex value", pair.join(" "))),
            }
        }
    }
    for name in REPORTED_REGISTERS {
        let count = registers.iter().filter(|(n, _)| n == name).count();
        if count != 1 {
            run.fail(&format!(
                "the register lines after the report should show {name} once, not {count} times: {lines:#?}"
            ));
        }
    }
    let reported_rip = registers.iter().find(|(n, _)| *n == "RIP").map(|(_, v)| *v);
    if reported_rip != Some(rip) {
        run.fail(&format!("the register lines' RIP {reported_rip:#x?} should be the report's {rip:#x}"));
    }
}

/// Asserts the VMCS dump after line `after`: its header, the exit reason
/// `exit_reason` and the `fields` (name, value).
#[track_caller]
fn assert_vmcs_dump(run: &common::Booted, after: usize, exit_reason: u64, fields: &[(&str, u64)]) {
    let (header, _) = run.assert_line_from(after, "VMCS dump", |line| line.starts_with(VMCS_DUMP_HEADER));
    // Dump lines: `[hv ERROR]   <field name>   <encoding> = <value>`.
    let field = |name: &str| -> Option<u64> {
        let prefix = format!("[hv ERROR]   {name} ");
        let (_, line) = run.find_line_from(header, |line| line.starts_with(&prefix))?;
        let value = line.rsplit_once(" = 0x")?.1;
        u64::from_str_radix(value, 16).ok()
    };
    for (name, expected) in [("Exit reason", exit_reason)].iter().chain(fields) {
        let got = field(name);
        if got != Some(*expected) {
            run.fail(&format!("the VMCS dump should show {name} = {expected:#x}, got {got:#x?}"));
        }
    }
}

/// One entry of the ring of last exits.
#[derive(Debug)]
struct RingEntry {
    number: u64,
    reason: String,
    rip: u64,
    outcome: String,
}

/// Asserts the ring of last exits after line `after`: `the last N exits,
/// oldest first:`, then N entries numbered one after another, the last one
/// `last_reason` at `rip` with the outcome `Stopped`. Returns the entries.
#[track_caller]
fn assert_exit_ring(run: &common::Booted, guest: &str, after: usize, last_reason: &str, rip: u64) -> Vec<RingEntry> {
    let heading = format!("[hv ERROR] {guest}: the last ");
    let (index, line) = run.assert_line_from(after, "ring of last exits", |line| {
        line.starts_with(&heading) && line.ends_with(" exits, oldest first:")
    });
    let count = line[heading.len()..].split(' ').next().and_then(|n| n.parse::<usize>().ok());
    let Some(count) = count.filter(|&n| n > 0) else { run.fail(&format!("bad ring heading {line:?}")) };

    // Entries: `[hv ERROR] guest:   #125    EPT violation    RIP 0x00000010007a  GPA 0x200000  -> Stopped`.
    let prefix = format!("[hv ERROR] {guest}:   #");
    let parse = |line: &str| -> Option<RingEntry> {
        let rest = line.strip_prefix(&prefix)?;
        let (number, rest) = rest.split_once(' ')?;
        let (reason, rest) = rest.split_once(" RIP 0x")?;
        let rip = hex_after(rest, "")?;
        let (_, outcome) = rest.rsplit_once("-> ")?;
        Some(RingEntry {
            number: number.parse().ok()?,
            reason: reason.trim().to_string(),
            rip,
            outcome: outcome.to_string(),
        })
    };
    let lines: Vec<&str> = run.lines().skip(index + 1).take(count).collect();
    let entries: Vec<RingEntry> = lines.iter().filter_map(|line| parse(line)).collect();
    if entries.len() != count {
        run.fail(&format!(
            "the ring announces {count} exits, but {} of the next lines are entries: {lines:#?}",
            entries.len()
        ));
    }
    if entries.windows(2).any(|pair| pair[1].number != pair[0].number + 1) {
        run.fail(&format!("the ring's entries should be consecutive exits, oldest first: {entries:#?}"));
    }
    match entries.last() {
        Some(last) if last.reason == last_reason && last.rip == rip && last.outcome == "Stopped" => {}
        last => run
            .fail(&format!("the ring's last exit should be `{last_reason}` at RIP {rip:#x} -> Stopped, got {last:#?}")),
    }
    entries
}

/// Boots hello64 from a boot blob damaged in one way and checks that the
/// kernel refuses it — with `expected` as the start of its message and a FAIL
/// verdict — and starts no guest.
#[track_caller]
fn assert_damaged_blob_refused(damage: boot::boot_blob::BlobDamage, expected: &str) {
    let options = boot::RunOptions { blob_damage: Some(damage), ..common::bochs_options(&["hello64"]) };
    let run = common::boot(&format!("Bochs boot with a damaged boot blob ({damage:?})"), &options);
    let line = run.assert_line_starting_with("[hv ERROR] boot blob refused: ", "the kernel's refusal");
    if !line.starts_with(expected) {
        run.fail(&format!("for {damage:?} the refusal should start with {expected:?}, got {line:?}"));
    }
    if run.lines().any(|line| line.starts_with("[hello64]")) {
        run.fail("no guest may run from a damaged blob");
    }
    run.assert_last_line("hypervisor: verdict FAIL: bad boot blob");
    run.assert_failed();
}

#[test]
fn a_blob_with_a_bad_checksum_is_refused() {
    assert_damaged_blob_refused(
        boot::boot_blob::BlobDamage::Checksum,
        "[hv ERROR] boot blob refused: boot blob checksum mismatch",
    );
}

#[test]
fn a_blob_of_another_version_is_refused() {
    assert_damaged_blob_refused(
        boot::boot_blob::BlobDamage::Version,
        "[hv ERROR] boot blob refused: boot blob version 3 is not supported (expected 2)",
    );
}

#[test]
fn a_blob_with_an_image_out_of_bounds_is_refused() {
    assert_damaged_blob_refused(
        boot::boot_blob::BlobDamage::ImageBounds,
        "[hv ERROR] boot blob refused: guest 0: image at offset ",
    );
}
