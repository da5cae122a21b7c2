//! Guests of every kind: user images in each start mode, configuration
//! files, every built-in payload, and the inputs the runner refuses.
//!
//! Boots in Bochs (each a few seconds; they run in parallel, each in a run
//! directory of its own):
//!
//! - `real_mode_user_image` / `protected_mode_user_image`: a flat image the
//!   test assembles by hand, given with `--guest-file ... --mode real` (or
//!   `protected`), prints a line through the UART and exits through port 0xF4
//!   with the status `--expect` names;
//! - `long_mode_user_elf`: a built-in's ELF given as a user's file;
//!   `user_elf_flattened_for_real_mode`: one given for real mode, which the
//!   runner flattens;
//! - `example_configuration`: `--config guests.example.toml`;
//! - one test per built-in payload added with the start modes (`hypercall`,
//!   `protected32`, `realmode16`, `cpuid_msr`, `memtest`, `control_regs`,
//!   `exceptions`):
//!   exactly the lines its README promises ("Expected output"), and its
//!   verdict;
//! - `the_default_run_boots_every_built_in`: no guest option at all (the
//!   default set; the isolation guests have `boot/tests/isolation.rs`).
//!
//! Refused inputs never boot (`refused_*`, fast): the runner must stop with a
//! clear message, through [`boot::run`] (which returns before it looks for an
//! emulator) and through the `boot` binary (exit status 2).
//!
//! The command lines go through [`boot::cli::parse_args`], as `cargo run --`
//! would pass them.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command as Process;

use boot::guest_images::{GuestCheckError, ImageError};
use boot::{RunError, RunOptions};

/// The kernel's verdict line for a guest that ended as expected, e.g.
/// `[hv INFO ] hello64: ended exit:0: verdict PASS (expected exit:0)`.
fn pass_verdict(guest: &str, outcome: &str) -> String {
    format!("[hv INFO ] {guest}: ended {outcome}: verdict PASS (expected {outcome})")
}

/// The run options of `cargo run -- <args>`, for Bochs, without streaming.
#[track_caller]
fn options_from(args: &[&str]) -> RunOptions {
    common::bochs_options_from_args(args)
}

/// Boots `cargo run -- <args>` in Bochs.
#[track_caller]
fn boot_with(what: &str, args: &[&str]) -> common::Booted {
    common::boot(what, &options_from(args))
}

/// A scratch directory for one test, emptied first.
fn scratch_dir(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("guests").join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

/// Writes `bytes` to `dir/name` and returns the path as a string.
fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path.to_string_lossy().into_owned()
}

/// The operand size of the code a test image is assembled for.
#[derive(Clone, Copy)]
enum Bits {
    /// 16-bit code: real mode.
    Sixteen,
    /// 32-bit code: protected mode.
    ThirtyTwo,
}

/// Hand-assembles a program that writes `line` and a newline to the UART at
/// 0x3F8, then writes `status` to the exit port 0xF4:
///
/// ```text
/// mov dx, 0x3f8        ; BA F8 03        (32-bit: mov edx, 0x3f8 = BA F8 03 00 00)
/// mov al, 'R'          ; B0 52
/// out dx, al           ; EE              ... once per byte
/// mov dx, 0xf4         ; BA F4 00        (32-bit: BA F4 00 00 00)
/// mov al, status       ; B0 ss
/// out dx, al           ; EE              (the guest ends here)
/// hlt                  ; F4
/// jmp $-1              ; EB FD           (back to hlt, should it ever return)
/// ```
///
/// `mov al, imm8` and `out dx, al` encode the same in both modes; `mov dx,
/// imm16` becomes `mov edx, imm32` in 32-bit code. Nothing else depends on
/// the mode, so no segment or stack is touched.
fn serial_program(bits: Bits, line: &str, status: u8) -> Vec<u8> {
    let mov_dx = |port: u16| -> Vec<u8> {
        let [low, high] = port.to_le_bytes();
        match bits {
            Bits::Sixteen => vec![0xBA, low, high],
            Bits::ThirtyTwo => vec![0xBA, low, high, 0, 0],
        }
    };
    let mut code = mov_dx(0x3F8);
    for byte in line.bytes().chain(std::iter::once(b'\n')) {
        code.extend([0xB0, byte, 0xEE]);
    }
    code.extend(mov_dx(0xF4));
    code.extend([0xB0, status, 0xEE, 0xF4, 0xEB, 0xFD]);
    code
}

/// Asserts that the guest's output lines (`[name] ...`) are exactly `expected`.
#[track_caller]
fn assert_guest_lines(run: &common::Booted, guest: &str, expected: &[&str]) {
    let prefix = format!("[{guest}] ");
    let got: Vec<&str> = run.lines().filter_map(|line| line.strip_prefix(&prefix)).collect();
    if got != expected {
        run.fail(&format!("{guest}'s lines differ\n  expected: {expected:#?}\n  got: {got:#?}"));
    }
}

/// Asserts the verdict line of each `(guest, outcome)`, then the run's PASS.
/// The guests run side by side, so their verdicts come in the order they
/// end, not in the order given.
#[track_caller]
fn assert_verdicts(run: &common::Booted, verdicts: &[(&str, &str)]) {
    for (guest, outcome) in verdicts {
        run.assert_exact_line(&pass_verdict(guest, outcome));
    }
    run.assert_last_line(common::PASS_LINE);
    run.assert_passed();
}

// ---------------------------------------------------------------------------
// User images

#[test]
fn real_mode_user_image() {
    let dir = scratch_dir("real");
    let image =
        write_file(&dir, "user-real.bin", &serial_program(Bits::Sixteen, "R: hello from a user's real-mode image", 7));
    let run = boot_with(
        "Bochs boot of a real-mode user image",
        &["--guest-file", &image, "--mode", "real", "--expect", "exit:7"],
    );
    run.assert_hv_line_containing("user-real: 2 MiB RAM, entry 0x7c00 in real mode", "the guest's start report");
    assert_guest_lines(&run, "user-real", &["R: hello from a user's real-mode image"]);
    assert_verdicts(&run, &[("user-real", "exit:7")]);
}

#[test]
fn protected_mode_user_image() {
    let dir = scratch_dir("protected");
    let image =
        write_file(&dir, "pm.bin", &serial_program(Bits::ThirtyTwo, "P: hello from a user's protected-mode image", 9));
    let run = boot_with(
        "Bochs boot of a protected-mode user image",
        &["--guest-file", &image, "--mode=protected", "--name", "pm-user", "--ram", "4M", "--expect", "exit:9"],
    );
    run.assert_hv_line_containing("pm-user: 4 MiB RAM, entry 0x100000 in protected mode", "the guest's start report");
    assert_guest_lines(&run, "pm-user", &["P: hello from a user's protected-mode image"]);
    assert_verdicts(&run, &[("pm-user", "exit:9")]);
}

#[test]
fn long_mode_user_elf() {
    // hello64's ELF, given as a user's file: a static x86-64 executable.
    let hello64 = boot::payloads::find("hello64").expect("hello64 is built in").image_path();
    let run = boot_with(
        "Bochs boot of a long-mode user ELF",
        &["--guest-file", &hello64.to_string_lossy(), "--mode", "long", "--name", "user-elf"],
    );
    run.assert_exact_line("[user-elf] hello from a 64-bit guest");
    run.assert_exact_line("[user-elf] checks: 12 passed, 0 failed");
    assert_verdicts(&run, &[("user-elf", "exit:0")]);
}

#[test]
fn user_elf_flattened_for_real_mode() {
    // realmode16's ELF, given as a user's file for real mode: the runner flattens it.
    let realmode16 = boot::payloads::find("realmode16").expect("realmode16 is built in").image_path();
    let run = boot_with(
        "Bochs boot of a user ELF flattened for real mode",
        &["--guest-file", &realmode16.to_string_lossy(), "--mode", "real", "--name", "flat16", "--expect", "exit:0x16"],
    );
    assert_guest_lines(&run, "flat16", REALMODE16_LINES);
    assert_verdicts(&run, &[("flat16", "exit:22")]);
}

#[test]
fn example_configuration() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guests.example.toml");
    let run = boot_with("Bochs boot of guests.example.toml", &["--config", &example.to_string_lossy()]);
    run.assert_exact_line("[hello] hello from a 64-bit guest");
    run.assert_exact_line("[escaper] writing just past the end of RAM");
    assert_verdicts(&run, &[("hello", "exit:0"), ("escaper", "crash")]);
}

#[test]
fn files_settings_and_configurations_mix_in_order() {
    let dir = scratch_dir("mixed");
    let real = write_file(&dir, "first.bin", &serial_program(Bits::Sixteen, "first", 1));
    let config = write_file(
        &dir,
        "guests.toml",
        b"[[guest]]\nname = \"second\"\nfile = \"second.bin\"\nmode = \"protected\"\nexpect = \"exit:2\"\n",
    );
    write_file(&dir, "second.bin", &serial_program(Bits::ThirtyTwo, "second", 2));
    let run = boot_with(
        "Bochs boot of a file, a configuration and a built-in",
        &[
            "--guest-file",
            &real,
            "--mode",
            "real",
            "--expect",
            "exit:1",
            "--config",
            &config,
            "--guest",
            "triple_fault",
        ],
    );
    assert_guest_lines(&run, "first", &["first"]);
    assert_guest_lines(&run, "second", &["second"]);
    assert_verdicts(&run, &[("first", "exit:1"), ("second", "exit:2"), ("triple_fault", "crash")]);
}

// ---------------------------------------------------------------------------
// The built-in payloads of the start modes, with the lines of their READMEs.

/// guest-payloads/protected32/README.md, "Expected output" (2 MiB of RAM).
const PROTECTED32_LINES: &[&str] =
    &["hello from 32-bit protected mode", "CR0.PE=1 CR0.PG=0 push=4 bytes", "RAM size 0x00200000"];

/// guest-payloads/realmode16/README.md, "Expected output".
const REALMODE16_LINES: &[&str] =
    &["real mode: hello from 0000:7C00", "protected mode: CR0.PE=1", "long mode: EFER.LMA=1"];

/// guest-payloads/hypercall/README.md, "Expected output".
const HYPERCALL_LINES: &[&str] = &[
    "hypercall: every call, valid and invalid",
    "ok: null -> 0",
    "ok: null preserves RBX RCX RDX RSI RDI RBP R8-R15 -> unchanged",
    "ok: info(GuestId) -> a position in the guest list",
    "ok: info(RamSize) -> a positive multiple of 2 MiB",
    "ok: info(TscHz) -> positive",
    "ok: info(RestartCount) -> 0",
    "ok: info(ReservedBase) -> page-aligned, above the image, our stack just below it",
    "ok: info(ReservedSize) -> whole pages, ReservedBase + ReservedSize == RamSize",
    "ok: print(buffer, 0) -> 0",
    "ok: print(RamSize, 0) -> 0",
    "the last byte of RAM: .",
    "ok: print(RamSize - 1, 1) -> 1",
    "ok: print(RamSize - 8, 16) -> BadAddress",
    "ok: print(RamSize, 1) -> BadAddress",
    "ok: print(RamSize + 1, 0) -> BadAddress",
    "ok: print(u64::MAX - 1, 2) -> BadAddress",
    "a print of exactly MAX_PRINT_LEN (4096) bytes: carriage returns, then this line",
    "ok: print(buffer, MAX_PRINT_LEN) -> 4096",
    "ok: print(buffer, MAX_PRINT_LEN + 1) -> TooLong",
    "ok: info(7) -> BadArgument",
    "ok: info(u64::MAX) -> BadArgument",
    "ok: call 5 -> UnknownCall",
    "ok: call 0x100 -> UnknownCall",
    "ok: call u64::MAX -> UnknownCall",
    "ok: yield -> 0",
    "checks: 23 passed, 0 failed",
    "exiting through the exit hypercall with status 0x42",
];

/// guest-payloads/cpuid_msr/README.md, "Expected output".
const CPUID_MSR_LINES: &[&str] = &[
    "cpuid_msr: what a guest sees through CPUID and the MSRs",
    "ok: cpuid(1).ecx[31] hypervisor -> set",
    "ok: cpuid(1).ecx[5] VMX -> hidden",
    "ok: cpuid(1).ecx[6] SMX -> hidden",
    "ok: cpuid(1).ecx[3] MONITOR -> hidden",
    "ok: cpuid(1).ecx[15] PDCM -> hidden",
    "ok: cpuid(1).ecx[21] x2APIC -> hidden",
    "ok: cpuid(0x40000000) signature -> \"VtxTeachHV\"",
    "ok: cpuid(0x40000000).eax max leaf -> 0x40000001",
    "ok: cpuid(0x40000001).eax TSC kHz -> positive, info(TscHz) / 1000",
    "ok: cpuid(0xa) architectural PMU -> all zero",
    "ok: cpuid(0x40000002) unused hypervisor leaf -> all zero",
    "ok: expect_fault(no fault) -> None",
    "ok: ud2 -> #UD",
    "ok: load from non-canonical 0x8000000000000000 -> #GP(0)",
    "ok: rdmsr IA32_EFER (0xc0000080) -> allowed, LME and LMA set",
    "ok: wrmsr IA32_EFER (0xc0000080) its current value -> allowed, unchanged",
    "ok: wrmsr IA32_EFER (0xc0000080) its current value | reserved bit 1 -> #GP(0)",
    "ok: wrmsr+rdmsr IA32_FS_BASE (0xc0000100) 0x7f0012345000 -> allowed, round-trips",
    "ok: wrmsr+rdmsr IA32_GS_BASE (0xc0000101) 0x7f0056789000 -> allowed, round-trips",
    "ok: wrmsr+rdmsr IA32_KERNEL_GS_BASE (0xc0000102) 0xffff8000deadb000 -> allowed, round-trips",
    "ok: wrmsr+rdmsr IA32_STAR (0xc0000081) 0x230008cafef00d -> allowed, round-trips",
    "ok: wrmsr+rdmsr IA32_LSTAR (0xc0000082) 0xffff800000101000 -> allowed, round-trips",
    "ok: wrmsr+rdmsr IA32_FMASK (0xc0000084) 0x47700 -> allowed, round-trips",
    "ok: wrmsr+rdmsr IA32_SYSENTER_CS (0x174) 0x8 -> allowed, round-trips",
    "ok: wrmsr+rdmsr IA32_SYSENTER_ESP (0x175) 0xffff800000200000 -> allowed, round-trips",
    "ok: wrmsr+rdmsr IA32_SYSENTER_EIP (0x176) 0xffff800000102000 -> allowed, round-trips",
    "ok: rdmsr IA32_PAT (0x277) -> 0x0007040600070406",
    "ok: wrmsr IA32_PAT (0x277) 0x7040600070402 -> #GP(0)",
    "ok: wrmsr IA32_SYSENTER_EIP (0x176) 0x800000000000 -> #GP(0)",
    "ok: wrmsr IA32_FEATURE_CONTROL (0x3a) 0x5 -> #GP(0)",
    "ok: rdmsr IA32_VMX_BASIC (0x480) -> #GP(0)",
    "ok: rdmsr no such MSR (0x12345678) -> #GP(0)",
    "ok: wrmsr IA32_DEBUGCTL (0x1d9) 0x1 -> #GP(0)",
    "ok: wrmsr IA32_MTRR_DEF_TYPE (0x2ff) 0x806 -> #GP(0)",
    "ok: vmxon -> #UD",
    "checks: 35 passed, 0 failed",
];

/// guest-payloads/memtest/README.md, "Expected output" (2 MiB of RAM).
const MEMTEST_LINES: &[&str] = &[
    "memtest: RAM 0x200000 bytes, testing [0x0, 0x100000) and [0x180000, 0x1ea000)",
    "memtest: 1482752 bytes written and verified",
    "memtest: checksum 0x5078b6929ea91f25",
];

/// Boots one built-in payload alone.
fn boot_built_in(name: &str) -> common::Booted {
    boot_with(&format!("Bochs boot of {name}"), &["--guest", name])
}

#[test]
fn protected32_runs_in_protected_mode() {
    let run = boot_built_in("protected32");
    run.assert_hv_line_containing("protected32: 2 MiB RAM, entry 0x100000 in protected mode", "start report");
    assert_guest_lines(&run, "protected32", PROTECTED32_LINES);
    assert_verdicts(&run, &[("protected32", "exit:50")]);
}

#[test]
fn realmode16_climbs_from_real_to_long_mode() {
    let run = boot_built_in("realmode16");
    run.assert_hv_line_containing("realmode16: 2 MiB RAM, entry 0x7c00 in real mode", "start report");
    assert_guest_lines(&run, "realmode16", REALMODE16_LINES);
    assert_verdicts(&run, &[("realmode16", "exit:22")]);
}

#[test]
fn hypercall_checks_every_call() {
    let run = boot_built_in("hypercall");
    assert_guest_lines(&run, "hypercall", HYPERCALL_LINES);
    assert_verdicts(&run, &[("hypercall", "exit:66")]);
}

#[test]
fn cpuid_msr_sees_the_filtered_cpuid_and_msrs() {
    let run = boot_built_in("cpuid_msr");
    assert_guest_lines(&run, "cpuid_msr", CPUID_MSR_LINES);
    assert_verdicts(&run, &[("cpuid_msr", "exit:0")]);
}

/// guest-payloads/exceptions/README.md, "Expected output".
const EXCEPTIONS_LINES: &[&str] = &[
    "exceptions: #DE, #BP, #UD, #PF and #GP through this guest's own IDT",
    "ok: div ecx with ecx = 0 -> #DE",
    "ok: int3 -> #BP, RIP after the int3",
    "ok: ud2 -> #UD",
    "ok: load from 64 GiB (not mapped) -> #PF(0)",
    "ok: load from 64 GiB (not mapped): CR2 -> 0x1000000000",
    "ok: store to 64 GiB (not mapped) -> #PF(0x2)",
    "ok: store to 64 GiB (not mapped): CR2 -> 0x1000000000",
    "ok: load from non-canonical 0x8000000000000000 -> #GP(0)",
    "ok: int 0x80 (beyond the IDT limit) -> #GP(0x402)",
    "checks: 9 passed, 0 failed",
];

/// Issue 6's `exceptions`: #DE, #BP, #UD, #PF and #GP delivered through the
/// guest's own IDT with the right vector, error code, RIP and CR2.
#[test]
fn exceptions_arrive_at_the_guests_own_idt() {
    let run = boot_built_in("exceptions");
    assert_guest_lines(&run, "exceptions", EXCEPTIONS_LINES);
    assert_verdicts(&run, &[("exceptions", "exit:0")]);
}

#[test]
fn memtest_verifies_its_ram() {
    let run = boot_built_in("memtest");
    assert_guest_lines(&run, "memtest", MEMTEST_LINES);
    assert_verdicts(&run, &[("memtest", "exit:0")]);
}

// ---------------------------------------------------------------------------
// The default run

#[test]
fn the_default_run_boots_every_built_in() {
    let run = boot_with("Bochs boot of the default guests", &[]);
    let verdicts: Vec<(&str, String)> = boot::payloads::in_set(boot::payloads::PayloadSet::Default)
        .map(|payload| (payload.name, payload.expected.to_string()))
        .collect();
    let verdicts: Vec<(&str, &str)> = verdicts.iter().map(|(name, outcome)| (*name, outcome.as_str())).collect();
    assert_verdicts(&run, &verdicts);
}

// ---------------------------------------------------------------------------
// Refused inputs: nothing boots.

/// Runs `options` and expects a refusal; returns its message.
#[track_caller]
fn refused(options: &RunOptions) -> (GuestCheckError, String) {
    match boot::run(options) {
        Err(RunError::Guests(error)) => {
            let message = error.to_string();
            (error, message)
        }
        Err(other) => panic!("expected a refusal of the guests, got the error: {other}"),
        Ok(outcome) => panic!("expected a refusal, but the run booted: {}", outcome.summary()),
    }
}

/// The image error of a refusal.
#[track_caller]
fn image_error(error: &GuestCheckError) -> &ImageError {
    match error {
        GuestCheckError::Image(image) => &image.error,
        other => panic!("expected an image error, got {other}"),
    }
}

#[test]
fn refused_images() {
    let dir = scratch_dir("refused");
    let empty = write_file(&dir, "empty.bin", b"");
    let flat = write_file(&dir, "flat.bin", &serial_program(Bits::Sixteen, "x", 0));
    let too_big_for_real_mode = write_file(&dir, "big.bin", &vec![0x90; 0xA_0000 - 0x7C00 + 1]);
    let too_big_for_2m = write_file(&dir, "big32.bin", &vec![0x90; (1 << 20) + 1]);
    let hello64 = boot::payloads::find("hello64").expect("built in").image_path().to_string_lossy().into_owned();
    let missing = dir.join("missing.bin").to_string_lossy().into_owned();

    let (error, message) = refused(&options_from(&["--guest-file", &missing, "--mode", "real"]));
    assert!(matches!(image_error(&error), ImageError::Unreadable(_)), "{message}");
    assert!(
        message.starts_with("guest `missing` (real mode, image ") && message.contains("cannot read the image"),
        "{message}"
    );

    let (error, message) = refused(&options_from(&["--guest-file", &empty, "--mode", "protected"]));
    assert!(matches!(image_error(&error), ImageError::Empty), "{message}");

    let (error, message) =
        refused(&options_from(&["--guest-file", &too_big_for_real_mode, "--mode", "real", "--ram", "4M"]));
    assert!(matches!(image_error(&error), ImageError::DoesNotFit { limit: 0xA_0000, .. }), "{message}");
    assert!(message.ends_with("a real-mode image must end below the legacy video memory at 0xa0000"), "{message}");

    let (error, message) = refused(&options_from(&["--guest-file", &too_big_for_2m, "--mode", "protected"]));
    assert!(matches!(image_error(&error), ImageError::DoesNotFit { limit: 0x20_0000, .. }), "{message}");
    // With more RAM it fits: then it would boot, which this test does not do.

    let (error, message) = refused(&options_from(&["--guest-file", &flat, "--mode", "long"]));
    assert!(matches!(image_error(&error), ImageError::LongModeNeedsElf), "{message}");

    // hello64 is linked at 1 MiB: not where a real-mode image goes.
    let (error, message) = refused(&options_from(&["--guest-file", &hello64, "--mode", "real"]));
    assert!(
        matches!(image_error(&error), ImageError::WrongLoadAddress { linked: 0x10_0000, expected: 0x7C00 }),
        "{message}"
    );
}

#[test]
fn refused_memory() {
    let (error, message) =
        refused(&options_from(&["--guest", "hello64", "--ram", "200M", "--guest", "memtest", "--ram", "28M"]));
    assert!(matches!(error, GuestCheckError::Memory(_)), "{message}");
    assert!(message.contains("--machine-memory 258"), "{message}");
    // The bigger machine takes them (the image check comes next: a missing file shows it got there).
    let (error, message) = refused(&options_from(&[
        "--machine-memory",
        "258",
        "--guest",
        "hello64",
        "--ram",
        "200M",
        "--guest-file",
        "/nonexistent/image.bin",
        "--mode",
        "real",
        "--ram",
        "28M",
    ]));
    assert!(matches!(error, GuestCheckError::Image(_)), "{message}");
}

/// Runs the `boot` binary with `args`; returns its exit status and stderr.
fn run_binary(args: &[&str]) -> (Option<i32>, String) {
    let output = Process::new(env!("CARGO_BIN_EXE_boot"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run the boot binary: {e}"));
    (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn refused_inputs_exit_with_status_2() {
    let dir = scratch_dir("binary");
    let flat = write_file(&dir, "flat.bin", &serial_program(Bits::Sixteen, "x", 0));
    let config =
        write_file(&dir, "guests.toml", b"[[guest]]\nname = \"a\"\nbuiltin = \"hello64\"\nram_size = \"4M\"\n");
    let bad_name = write_file(&dir, "names.toml", b"[[guest]]\nname = \"a b\"\nbuiltin = \"hello64\"\n");
    let twice = write_file(
        &dir,
        "twice.toml",
        b"[[guest]]\nname = \"a\"\nbuiltin = \"hello64\"\n\n[[guest]]\nname = \"a\"\nbuiltin = \"memtest\"\n",
    );
    let max = hypervisor_core::blob::MAX_GUESTS;
    let too_many: Vec<String> =
        (0..=max).flat_map(|_| ["--guest-file".to_string(), flat.clone(), "--mode".into(), "real".into()]).collect();
    let too_many: Vec<&str> = too_many.iter().map(String::as_str).collect();
    let too_many_message = format!("too many guests: a run takes at most {max}");

    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--config", &config], ":4:1: unknown field `ram_size`, expected one of"),
        (vec!["--config", &bad_name], ":2:8: bad name `a b`: guest name has byte 0x20 at position 1"),
        (vec!["--config", &twice], ":6: guest `a`: guest `a` is given twice"),
        (vec!["--guest", "hello64", "--guest", "hello64"], "guest `hello64` is given twice"),
        (too_many, too_many_message.as_str()),
        (vec!["--guest-file", &flat], "needs `--mode real|protected|long`"),
        (vec!["--guest-file", &flat, "--mode", "long"], "long mode needs a static x86-64 ELF executable"),
        (vec!["--guest", "hello64", "--ram", "1G", "--guest", "memtest", "--ram", "1G"], "give the guests less RAM"),
        (vec!["--machine-memory", "4096"], "expected a whole number of MiB from 64 to 2048"),
    ];
    for (args, expected) in cases {
        let (status, stderr) = run_binary(&args);
        assert_eq!(status, Some(2), "`boot {}` should exit with 2; stderr:\n{stderr}", args.join(" "));
        assert!(stderr.contains(expected), "`boot {}`: stderr should contain {expected:?}:\n{stderr}", args.join(" "));
        assert!(
            !stderr.contains("runner: emulator"),
            "`boot {}` should refuse before choosing an emulator:\n{stderr}",
            args.join(" ")
        );
    }
}

/// The restart policy: a guest that crashes is rebuilt from its image in fresh
/// RAM up to `restarts` times; only the last crash counts.
#[test]
fn crashed_guests_are_restarted_by_their_policy() {
    let dir = scratch_dir("restarts");
    let config = write_file(
        &dir,
        "restarts.toml",
        b"[[guest]]\nname = \"faulty\"\nbuiltin = \"triple_fault\"\nrestarts = 2\nexpect = \"crash\"\n",
    );
    let run = boot_with("Bochs boot of a guest restarted twice", &["--config", &config]);
    let starts = run.lines().filter(|line| *line == "[faulty] about to triple-fault").count();
    if starts != 3 {
        run.fail(&format!("the guest should have started 3 times (1 run + 2 restarts), saw {starts}"));
    }
    run.assert_exact_line("[hv INFO ] faulty: crashed; restarting (1 of 2 restarts)");
    run.assert_exact_line("[hv INFO ] faulty: crashed; restarting (2 of 2 restarts)");
    assert_verdicts(&run, &[("faulty", "crash")]);
    run.assert_passed();
}

/// The CPU-time budget: `cli; jmp $` never exits by itself, but the
/// preemption timer takes the CPU back every time slice and the guest is
/// stopped once its budget is used. "Over budget" matches no expectation, so
/// the run fails — with that reason, not a hang.
#[test]
fn a_spinning_guest_is_stopped_at_its_budget() {
    let dir = scratch_dir("budget");
    // cli; jmp $ (FA EB FE), loaded at 0x7C00 in real mode.
    write_file(&dir, "spin.bin", &[0xFA, 0xEB, 0xFE]);
    let config = write_file(
        &dir,
        "budget.toml",
        b"[[guest]]\nname = \"spinner\"\nfile = \"spin.bin\"\nmode = \"real\"\ntime_slice = 100000\nbudget = 2000000\n",
    );
    let run = boot_with("Bochs boot of a guest that spins past its budget", &["--config", &config]);
    run.assert_line_starting_with(
        "[hv WARN ] spinner: stopped: used its CPU-time budget of 2000000 ticks (at guest RIP 0x7c01)",
        "budget report",
    );
    run.assert_exact_line("[hv INFO ] spinner: ended over budget: verdict FAIL (expected exit:0)");
    let timer_line = run.assert_hv_line_containing("VMX-preemption timer expired", "preemption-timer exits");
    if !timer_line.starts_with("[hv INFO ] spinner:") {
        run.fail(&format!("the spinner's preemption-timer exits should be counted: {timer_line:?}"));
    }
    run.assert_failed();
}

// ---------------------------------------------------------------------------
// control_regs

/// guest-payloads/control_regs/README.md, "Expected output".
const CONTROL_REGS_LINES: &[&str] = &[
    "control_regs: MOV to CR0 and CR4, XSETBV, INVD/WBINVD and the VMX instructions",
    "ok: mov from cr4: VMXE (bit 13) -> clear (the read shadow)",
    "ok: mov cr4, cr4 | VMXE (bit 13) -> #GP(0)",
    "ok: mov cr4, cr4 | reserved bit 15 -> #GP(0)",
    "ok: mov cr4, cr4 | bit 32 -> #GP(0)",
    "ok: mov from cr4 after the refused writes -> unchanged",
    "ok: mov from cr0: NE (bit 5) -> set",
    "ok: mov cr0, cr0 & !NE -> allowed, reads back NE=0",
    "ok: mov cr0, cr0 | NE -> allowed, reads back NE=1",
    "ok: mov cr0, cr0 | NW (bit 29), CD=0 -> #GP(0)",
    "ok: mov cr0, (cr0 & !NE) | NW (bit 29), CD=0 -> #GP(0)",
    "ok: mov cr0, cr0 | bit 32 -> #GP(0)",
    "ok: mov cr0, (cr0 & !NE) | bit 32 -> #GP(0)",
    "ok: mov from cr0 after the refused writes -> unchanged",
    "ok: cpuid(1).ecx[26] XSAVE -> offered",
    "ok: cpuid(1).ecx[27] OSXSAVE with CR4.OSXSAVE=0 -> clear",
    "ok: mov cr4, cr4 | OSXSAVE (bit 18) -> allowed, reads back set",
    "ok: cpuid(1).ecx[27] OSXSAVE with CR4.OSXSAVE=1 -> set",
    "ok: cpuid(0xd).edx:eax supported XCR0 bits -> x87 and SSE advertised, bit 62 not",
    "ok: xgetbv XCR0 before any xsetbv -> 0x1 (x87 only: the start value)",
    "ok: xsetbv XCR0 = 0x1 (x87) -> allowed, xgetbv reads 0x1",
    "ok: xsetbv XCR0 = 0x0 (x87 cleared) -> #GP(0)",
    "ok: xsetbv XCR0 = 0x5 (AVX without SSE) -> #GP(0)",
    "ok: xsetbv XCR0 = 0x4000000000000001 (bit 62, not advertised) -> #GP(0)",
    "ok: xsetbv XCR1 = 0x1 (no such register) -> #GP(0)",
    "ok: xgetbv XCR0 after the refused values -> 0x1 unchanged",
    "ok: xsetbv XCR0 = 0x3 (x87 | SSE) -> allowed, xgetbv reads 0x3",
    "ok: invd -> allowed, execution continues after it",
    "ok: wbinvd -> allowed, execution continues after it",
    "ok: vmxoff -> #UD",
    "ok: vmclear [mem] -> #UD",
    "ok: vmptrld [mem] -> #UD",
    "checks: 31 passed, 0 failed",
];

#[test]
fn control_regs_checks_cr0_cr4_xsetbv_and_vmx_instructions() {
    let run = boot_built_in("control_regs");
    assert_guest_lines(&run, "control_regs", CONTROL_REGS_LINES);
    assert_verdicts(&run, &[("control_regs", "exit:0")]);
}

/// String I/O: `rep outsb` of a message to the UART and `rep insb` of four
/// bytes from an unemulated port (which reads all ones), in a hand-assembled
/// real-mode image. The hypervisor emulates both element by element from the
/// guest-linear address the CPU reports.
///
/// ```text
/// 7C00  FC              cld
///       BE lo hi        mov si, message
///       B9 nn 00        mov cx, message length
///       BA F8 03        mov dx, 0x3f8
///       F3 6E           rep outsb
///       BF lo hi        mov di, buffer
///       B9 04 00        mov cx, 4
///       BA 80 00        mov dx, 0x80
///       F3 6C           rep insb
///       66 A1 lo hi     mov eax, [buffer]
///       66 83 F8 FF     cmp eax, -1
///       75 04           jne fail
///       B0 05           mov al, 5          ; all four bytes were 0xFF: status 5
///       E6 F4           out 0xf4, al
/// fail: B0 06           mov al, 6          ; otherwise status 6
///       E6 F4           out 0xf4, al
///       F4 EB FD        hlt; jmp $-1
/// message, then a 4-byte buffer of zeros
/// ```
#[test]
fn string_io_is_emulated_element_by_element() {
    const LOAD: u16 = 0x7C00;
    const MESSAGE: &[u8] = b"S: printed with rep outsb\n";
    let mut code: Vec<u8> = Vec::new();
    let code_len = 1 + 3 + 3 + 3 + 2 + 3 + 3 + 3 + 2 + 4 + 4 + 2 + 2 + 2 + 2 + 2 + 3;
    let message = LOAD + code_len as u16;
    let buffer = message + MESSAGE.len() as u16;
    let [message_low, message_high] = message.to_le_bytes();
    let [buffer_low, buffer_high] = buffer.to_le_bytes();
    code.push(0xFC);
    code.extend([0xBE, message_low, message_high]);
    code.extend([0xB9, MESSAGE.len() as u8, 0x00]);
    code.extend([0xBA, 0xF8, 0x03]);
    code.extend([0xF3, 0x6E]);
    code.extend([0xBF, buffer_low, buffer_high]);
    code.extend([0xB9, 0x04, 0x00]);
    code.extend([0xBA, 0x80, 0x00]);
    code.extend([0xF3, 0x6C]);
    code.extend([0x66, 0xA1, buffer_low, buffer_high]);
    code.extend([0x66, 0x83, 0xF8, 0xFF]);
    code.extend([0x75, 0x04]);
    code.extend([0xB0, 0x05, 0xE6, 0xF4]);
    code.extend([0xB0, 0x06, 0xE6, 0xF4]);
    code.extend([0xF4, 0xEB, 0xFD]);
    assert_eq!(code.len(), code_len, "the listing above and the bytes disagree");
    code.extend_from_slice(MESSAGE);
    code.extend([0, 0, 0, 0]);

    let dir = scratch_dir("string-io");
    let image = write_file(&dir, "strings.bin", &code);
    let run = boot_with(
        "Bochs boot of a real-mode image using rep outsb and rep insb",
        &["--guest-file", &image, "--mode", "real", "--expect", "exit:5"],
    );
    assert_guest_lines(&run, "strings", &["S: printed with rep outsb"]);
    assert_verdicts(&run, &[("strings", "exit:5")]);
    run.assert_hv_line_containing("strings:   unemulated port 0x0080: 4 accesses", "the four INSB reads counted");
}
