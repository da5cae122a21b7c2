//! The built-in guest payloads: the guests built together with the runner,
//! which `--guest NAME` picks by name.
//!
//! Each payload is a crate of `guest-payloads/`, built for
//! `x86_64-unknown-none` as an artifact dependency of the runner (see
//! `boot/Cargo.toml`); Cargo hands the path of its ELF to the runner at compile
//! time as `CARGO_BIN_FILE_<CRATE>_<bin>`. The registry ([`BUILT_IN`]) adds
//! what the command line needs to know about it: a one-line description, how
//! it is expected to end, the restart limit and CPU-time budget its test
//! needs, and the [`PayloadSet`] it belongs to.
//!
//! # Sets
//!
//! A run without guest options boots the [`PayloadSet::Default`] payloads,
//! kept short. The [`PayloadSet::Isolation`] payloads are the hostile guests
//! of the isolation tests and their well-behaved `neighbour`; `--demo
//! isolation` boots them ([`isolation_demo_specs`]), and any of them can be
//! named with `--guest`.
//!
//! To add a payload: add its crate to the workspace and as an artifact
//! dependency in `boot/Cargo.toml`, then add an entry to [`BUILT_IN`].
//!
//! Payloads for real and protected mode are ELF files too; the runner
//! flattens them before the run ([`crate::flatten`]).

use std::fmt::Write as _;
use std::path::Path;

use hypervisor_core::config::{
    ExpectedOutcome, GuestConfig, GuestName, ImageKind, NameError, StartMode, DEFAULT_TIME_SLICE_TICKS,
};

use crate::options::GuestSpec;

/// Which run boots a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadSet {
    /// A run without guest options (`cargo run`).
    Default,
    /// `--demo isolation`: a hostile guest, or the well-behaved neighbour.
    Isolation,
    /// `--bench`: the benchmark guests ([`crate::bench`]).
    Bench,
    /// Run only when named (`--guest NAME`): guests that make their point
    /// beside chosen others (e.g. `timer_pic_1khz` with `timer_pic`).
    Extra,
}

/// One guest payload built with the runner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuiltInPayload {
    /// Its name on the command line (`--guest NAME`), which is also the guest's
    /// name: the kernel prefixes its console lines with `[name]`.
    pub name: &'static str,
    /// One line for `--list-guests`.
    pub description: &'static str,
    /// Its ELF image on the host, built as an artifact of the runner.
    pub image: &'static str,
    /// The processor mode it is written for.
    pub start_mode: StartMode,
    /// How it ends when the hypervisor does its job.
    pub expected: ExpectedOutcome,
    /// How many times it is restarted after a crash: a payload that tries
    /// one thing per run needs one restart per further thing.
    pub restart_limit: u32,
    /// Its CPU-time budget in ticks; 0 = unlimited.
    pub budget_ticks: u64,
    /// The run that boots it.
    pub set: PayloadSet,
}

/// The neighbours' names in `--demo isolation` and in the isolation tests.
pub const NEIGHBOUR_NAMES: [&str; 2] = ["neighbour-1", "neighbour-2"];

/// Every built-in payload, in the order `--list-guests` shows them. The
/// default set first, in the order a run without guest options boots them:
/// the well-behaved guests first (64-bit, then the older modes, then the ones
/// that probe the hypervisor's emulation), then the ones that must be
/// stopped, then the timer guests (which measure their tick rate: the crash
/// reports, each tens of milliseconds of hypervisor work, happen in the first
/// round of time slices, before their measurements start). Then the
/// isolation set: the neighbour, then the hostile guests; the benchmark
/// guests; and the guests that run only when named.
pub const BUILT_IN: &[BuiltInPayload] = &[
    BuiltInPayload {
        name: "hello64",
        description: "prints through its UART, checks every hypercall, measures the cost of a VM exit",
        image: env!("CARGO_BIN_FILE_HELLO64_hello64"),
        start_mode: StartMode::Long,
        expected: ExpectedOutcome::Exit(0),
        restart_limit: 0,
        budget_ticks: 0,
        set: PayloadSet::Default,
    },
    BuiltInPayload {
        name: "hypercall",
        description: "checks every hypercall at the edges of its arguments; ends through the exit hypercall",
        image: env!("CARGO_BIN_FILE_HYPERCALL_hypercall"),
        start_mode: StartMode::Long,
        expected: ExpectedOutcome::Exit(0x42),
        restart_limit: 0,
        budget_ticks: 0,
        set: PayloadSet::Default,
    },
    BuiltInPayload {
        name: "protected32",
        description: "starts in 32-bit protected mode with paging off, proves it, exits through port 0xF4",
        image: env!("CARGO_BIN_FILE_PROTECTED32_protected32"),
        start_mode: StartMode::Protected,
        expected: ExpectedOutcome::Exit(0x32),
        restart_limit: 0,
        budget_ticks: 0,
        set: PayloadSet::Default,
    },
    BuiltInPayload {
        name: "realmode16",
        description: "starts like a boot sector in real mode at 0x7C00, climbs to protected and long mode itself",
        image: env!("CARGO_BIN_FILE_REALMODE16_realmode16"),
        start_mode: StartMode::Real,
        expected: ExpectedOutcome::Exit(0x16),
        restart_limit: 0,
        budget_ticks: 0,
        set: PayloadSet::Default,
    },
    BuiltInPayload {
        name: "cpuid_msr",
        description: "checks what CPUID shows a guest and which MSRs it may read and write",
        image: env!("CARGO_BIN_FILE_CPUID_MSR_cpuid_msr"),
        start_mode: StartMode::Long,
        expected: ExpectedOutcome::Exit(0),
        restart_limit: 0,
        budget_ticks: 0,
        set: PayloadSet::Default,
    },
    BuiltInPayload {
        name: "control_regs",
        description: "checks which CR0, CR4 and XCR0 writes a guest may make, and INVD, WBINVD and VMX instructions",
        image: env!("CARGO_BIN_FILE_CONTROL_REGS_control_regs"),
        start_mode: StartMode::Long,
        expected: ExpectedOutcome::Exit(0),
        restart_limit: 0,
        budget_ticks: 0,
        set: PayloadSet::Default,
    },
    BuiltInPayload {
        name: "exceptions",
        description: "raises #DE, #BP, #UD, #PF and #GP through its own IDT and checks vector, error code and CR2",
        image: env!("CARGO_BIN_FILE_EXCEPTIONS_exceptions"),
        start_mode: StartMode::Long,
        expected: ExpectedOutcome::Exit(0),
        restart_limit: 0,
        budget_ticks: 0,
        set: PayloadSet::Default,
    },
    BuiltInPayload {
        name: "memtest",
        description: "writes a pattern over all of its free RAM and reads it back",
        image: env!("CARGO_BIN_FILE_MEMTEST_memtest"),
        start_mode: StartMode::Long,
        expected: ExpectedOutcome::Exit(0),
        restart_limit: 0,
        budget_ticks: 0,
        set: PayloadSet::Default,
    },
    BuiltInPayload {
        name: "leftovers",
        description:
            "checks that x87/SSE/AVX, CR2, debug registers and pass-through MSRs start clean and survive guest switches",
        image: env!("CARGO_BIN_FILE_LEFTOVERS_leftovers"),
        start_mode: StartMode::Long,
        expected: ExpectedOutcome::Exit(0),
        restart_limit: 0,
        budget_ticks: 0,
        set: PayloadSet::Default,
    },
    BuiltInPayload {
        name: "escape_ram",
        description: "writes just past the end of its RAM; EPT must stop it (an EPT violation)",
        image: env!("CARGO_BIN_FILE_ESCAPE_RAM_escape_ram"),
        start_mode: StartMode::Long,
        expected: ExpectedOutcome::Crash,
        restart_limit: 0,
        budget_ticks: 0,
        set: PayloadSet::Default,
    },
    BuiltInPayload {
        name: "triple_fault",
        description: "triple-faults on purpose (ud2 with an empty IDT); the hypervisor must stop it",
        image: env!("CARGO_BIN_FILE_TRIPLE_FAULT_triple_fault"),
        start_mode: StartMode::Long,
        expected: ExpectedOutcome::Crash,
        restart_limit: 0,
        budget_ticks: 0,
        set: PayloadSet::Default,
    },
    BuiltInPayload {
        name: "timer_pic",
        description:
            "runs off a 100 Hz PIT tick through its 8259A PIC, sleeping in HLT; checks the rate and the CMOS date",
        image: env!("CARGO_BIN_FILE_TIMER_PIC_timer_pic"),
        start_mode: StartMode::Long,
        expected: ExpectedOutcome::Exit(0),
        restart_limit: 0,
        budget_ticks: 0,
        set: PayloadSet::Default,
    },
    BuiltInPayload {
        name: "timer_apic",
        description: "runs off its local APIC timer in periodic and TSC-deadline modes (MMIO trapped through EPT)",
        image: env!("CARGO_BIN_FILE_TIMER_APIC_timer_apic"),
        start_mode: StartMode::Long,
        expected: ExpectedOutcome::Exit(0),
        restart_limit: 0,
        budget_ticks: 0,
        set: PayloadSet::Default,
    },
    BuiltInPayload {
        name: "neighbour",
        description: "fills its free RAM with a pattern of its guest id, works and yields, checks its checksum",
        image: env!("CARGO_BIN_FILE_NEIGHBOUR_neighbour"),
        start_mode: StartMode::Long,
        expected: ExpectedOutcome::Exit(0),
        restart_limit: 0,
        budget_ticks: 0,
        set: PayloadSet::Isolation,
    },
    BuiltInPayload {
        name: "hostile_memory",
        description: "one access outside its RAM per run (past its end, 6 MiB above, I/O APIC, 4 GiB, local APIC)",
        image: env!("CARGO_BIN_FILE_HOSTILE_MEMORY_hostile_memory"),
        start_mode: StartMode::Long,
        expected: ExpectedOutcome::Crash,
        // Nine probes, one per run.
        restart_limit: 8,
        budget_ticks: 0,
        set: PayloadSet::Isolation,
    },
    BuiltInPayload {
        name: "hostile_ports",
        description:
            "PIC, PIT, CMOS, PCI, IDE, keyboard controller, reset and shutdown ports, its UART's other registers",
        image: env!("CARGO_BIN_FILE_HOSTILE_PORTS_hostile_ports"),
        start_mode: StartMode::Long,
        expected: ExpectedOutcome::Exit(0),
        restart_limit: 0,
        budget_ticks: 0,
        set: PayloadSet::Isolation,
    },
    BuiltInPayload {
        name: "hostile_msrs",
        description: "reads and writes VMX, APIC, TSC, MTRR, PAT, speculation, microcode, perf and debug MSRs",
        image: env!("CARGO_BIN_FILE_HOSTILE_MSRS_hostile_msrs"),
        start_mode: StartMode::Long,
        expected: ExpectedOutcome::Exit(0),
        restart_limit: 0,
        budget_ticks: 0,
        set: PayloadSet::Isolation,
    },
    BuiltInPayload {
        name: "hostile_instructions",
        description: "VMX instructions, illegal XSETBV values, invalid CR0/CR4 writes: each must fault in the guest",
        image: env!("CARGO_BIN_FILE_HOSTILE_INSTRUCTIONS_hostile_instructions"),
        start_mode: StartMode::Long,
        expected: ExpectedOutcome::Exit(0),
        restart_limit: 0,
        budget_ticks: 0,
        set: PayloadSet::Isolation,
    },
    BuiltInPayload {
        name: "hostile_cpu",
        description: "cli; jmp $ forever: the preemption timer takes the CPU back, the budget stops it",
        image: env!("CARGO_BIN_FILE_HOSTILE_CPU_hostile_cpu"),
        start_mode: StartMode::Long,
        expected: ExpectedOutcome::OverBudget,
        restart_limit: 0,
        budget_ticks: HOSTILE_CPU_BUDGET_TICKS,
        set: PayloadSet::Isolation,
    },
    BuiltInPayload {
        name: "hostile_crash",
        description: "crashes a different way per run: no IDT, corrupted IDT, IDT or stack outside its RAM",
        image: env!("CARGO_BIN_FILE_HOSTILE_CRASH_hostile_crash"),
        start_mode: StartMode::Long,
        expected: ExpectedOutcome::Crash,
        // Four ways, one per run.
        restart_limit: 3,
        budget_ticks: 0,
        set: PayloadSet::Isolation,
    },
    BuiltInPayload {
        name: "hostile_hypercalls",
        description: "hypercalls with pointers outside its RAM, wrapping lengths, misleading numbers, 100,000 in a row",
        image: env!("CARGO_BIN_FILE_HOSTILE_HYPERCALLS_hostile_hypercalls"),
        start_mode: StartMode::Long,
        expected: ExpectedOutcome::Exit(0),
        restart_limit: 0,
        budget_ticks: 0,
        set: PayloadSet::Isolation,
    },
    BuiltInPayload {
        name: "fuzz",
        description: "a seeded random stream of port I/O, MSRs, CPUID and hypercalls; each run ends outside its RAM",
        image: env!("CARGO_BIN_FILE_FUZZ_fuzz"),
        start_mode: StartMode::Long,
        expected: ExpectedOutcome::Exit(0),
        // Ten runs: each but the last ends with a touch outside its RAM.
        restart_limit: 9,
        budget_ticks: 0,
        set: PayloadSet::Isolation,
    },
    BuiltInPayload {
        name: "bench",
        description: "times VM exits, interrupt delivery, guest switches and a 32 MiB workload (needs 64 MiB of RAM)",
        image: env!("CARGO_BIN_FILE_BENCH_bench"),
        start_mode: StartMode::Long,
        expected: ExpectedOutcome::Exit(0),
        restart_limit: 0,
        budget_ticks: 0,
        set: PayloadSet::Bench,
    },
    BuiltInPayload {
        name: "bench_yield",
        description: "bench's partner: yields to it as often as it yields back, then exits",
        image: env!("CARGO_BIN_FILE_BENCH_bench_yield"),
        start_mode: StartMode::Long,
        expected: ExpectedOutcome::Exit(0),
        restart_limit: 0,
        budget_ticks: 0,
        set: PayloadSet::Bench,
    },
    BuiltInPayload {
        name: "bench_idle",
        description: "exits at once: counted for start-up time and per-guest memory",
        image: env!("CARGO_BIN_FILE_BENCH_bench_idle"),
        start_mode: StartMode::Long,
        expected: ExpectedOutcome::Exit(0),
        restart_limit: 0,
        budget_ticks: 0,
        set: PayloadSet::Bench,
    },
    BuiltInPayload {
        name: "timer_pic_1khz",
        description:
            "timer_pic at 1 kHz: 1000 PIT ticks timed; with timer_pic it shows two guests' timers at their own rates",
        image: env!("CARGO_BIN_FILE_TIMER_PIC_timer_pic_1khz"),
        start_mode: StartMode::Long,
        expected: ExpectedOutcome::Exit(0),
        restart_limit: 0,
        budget_ticks: 0,
        set: PayloadSet::Extra,
    },
];

/// `hostile_cpu`'s CPU-time budget: 20 time slices of the default length.
pub const HOSTILE_CPU_BUDGET_TICKS: u64 = 20 * DEFAULT_TIME_SLICE_TICKS;

/// The payloads of `set`, in the order of [`BUILT_IN`].
pub fn in_set(set: PayloadSet) -> impl Iterator<Item = &'static BuiltInPayload> {
    BUILT_IN.iter().filter(move |payload| payload.set == set)
}

/// The guests a run boots when it is given none: the [`PayloadSet::Default`]
/// payloads, in the order of [`BUILT_IN`].
pub fn default_guest_names() -> Vec<&'static str> {
    in_set(PayloadSet::Default).map(|payload| payload.name).collect()
}

/// The built-in payload called `name`, if there is one.
pub fn find(name: &str) -> Option<&'static BuiltInPayload> {
    BUILT_IN.iter().find(|payload| payload.name == name)
}

/// The built-in names, for messages: `` `hello64`, `hypercall`, ... or `triple_fault` ``.
pub fn names_for_message() -> String {
    let names: Vec<String> = BUILT_IN.iter().map(|payload| format!("`{}`", payload.name)).collect();
    match names.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => "none".to_string(),
    }
}

/// What `--list-guests` prints: for each set a heading, then one line per
/// payload with its name, start mode, expected outcome and description.
pub fn listing() -> String {
    const NAME: &str = "NAME";
    const MODE: &str = "MODE";
    const EXPECTED: &str = "EXPECTED";
    let width = BUILT_IN.iter().map(|payload| payload.name.len()).chain([NAME.len()]).max().unwrap_or(0);
    let mut text = String::new();
    let sets = [
        (
            PayloadSet::Default,
            "Built-in guests (pick with --guest NAME, repeatable; without any guest option, these in this order):",
        ),
        (
            PayloadSet::Isolation,
            "Isolation guests (--demo isolation: the hostile ones between two neighbours, neighbour-1 and \
             neighbour-2):",
        ),
        (PayloadSet::Bench, "Benchmark guests (--bench):"),
        (PayloadSet::Extra, "More guests (run only when named with --guest):"),
    ];
    for (set, heading) in sets {
        let _ = writeln!(text, "{heading}\n  {NAME:<width$}  {MODE:<9}  {EXPECTED:<11}  WHAT IT DOES");
        for payload in in_set(set) {
            let _ = writeln!(
                text,
                "  {name:<width$}  {mode:<9}  {expected:<11}  {description}",
                name = payload.name,
                mode = payload.start_mode.name(),
                expected = payload.expected.to_string(),
                description = payload.description,
            );
        }
    }
    text.truncate(text.trim_end().len());
    text
}

impl BuiltInPayload {
    /// Its image's path on the host.
    pub fn image_path(&self) -> &'static Path {
        Path::new(self.image)
    }

    /// Its default configuration: the defaults of [`GuestConfig::new`] (2 MiB
    /// of RAM, the default time slice) with its name, an ELF image, its start
    /// mode, its expected outcome, its restart limit and its budget.
    ///
    /// Fails only if [`Self::name`] is not a valid guest name, which the unit
    /// tests rule out for every entry of [`BUILT_IN`].
    pub fn config(&self) -> Result<GuestConfig, NameError> {
        Ok(self.default_config(GuestName::new(self.name)?))
    }

    /// [`Self::config`] for a guest called `name` (a configuration file may
    /// run a built-in payload under another name).
    pub fn default_config(&self, name: GuestName) -> GuestConfig {
        let mut config = GuestConfig::new(name);
        config.image = ImageKind::Elf64;
        config.start_mode = self.start_mode;
        config.expected = self.expected;
        config.restart_limit = self.restart_limit;
        config.budget_ticks = self.budget_ticks;
        config
    }

    /// The guest to put into the boot blob: [`Self::config`] and the image path.
    pub fn spec(&self) -> Result<GuestSpec, NameError> {
        Ok(GuestSpec { config: self.config()?, image: self.image_path().to_path_buf() })
    }
}

/// The guests a run boots when it is given none ([`default_guest_names`]).
pub fn default_specs() -> Vec<GuestSpec> {
    in_set(PayloadSet::Default).filter_map(|payload| payload.spec().ok()).collect()
}

/// The two well-behaved neighbours of the isolation tests: the `neighbour`
/// payload twice, named [`NEIGHBOUR_NAMES`].
pub fn neighbour_specs() -> Vec<GuestSpec> {
    let Some(neighbour) = find("neighbour") else { return Vec::new() };
    NEIGHBOUR_NAMES
        .iter()
        .filter_map(|name| GuestName::new(name).ok())
        .map(|name| GuestSpec { config: neighbour.default_config(name), image: neighbour.image_path().to_path_buf() })
        .collect()
}

/// How many guests `--demo scale` starts.
pub const SCALE_DEMO_GUESTS: usize = 64;

/// The guests of `--demo scale`: [`SCALE_DEMO_GUESTS`] neighbours of 2 MiB
/// (`scale-1` …), each filling its RAM with a pattern of its own and checking
/// it while all the others run.
pub fn scale_demo_specs() -> Vec<GuestSpec> {
    let Some(neighbour) = find("neighbour") else { return Vec::new() };
    (1..=SCALE_DEMO_GUESTS)
        .filter_map(|n| GuestName::new(&format!("scale-{n}")).ok())
        .map(|name| GuestSpec { config: neighbour.default_config(name), image: neighbour.image_path().to_path_buf() })
        .collect()
}

/// The guests of `--demo isolation`: the first neighbour, every hostile
/// payload of the isolation set, the second neighbour.
pub fn isolation_demo_specs() -> Vec<GuestSpec> {
    let mut neighbours = neighbour_specs().into_iter();
    let hostile = in_set(PayloadSet::Isolation).filter(|payload| payload.name != "neighbour");
    neighbours.next().into_iter().chain(hostile.filter_map(|payload| payload.spec().ok())).chain(neighbours).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_entry_is_a_valid_guest_with_an_elf_image() {
        let mut names = HashSet::new();
        for payload in BUILT_IN {
            assert!(names.insert(payload.name), "{}: listed twice", payload.name);
            let spec = payload.spec().unwrap_or_else(|e| panic!("{}: {e}", payload.name));
            assert_eq!(spec.config.name.as_str(), payload.name);
            assert_eq!(spec.config.validate(), Ok(()), "{}", payload.name);
            assert_eq!(spec.config.restart_limit, payload.restart_limit, "{}", payload.name);
            assert_eq!(spec.config.budget_ticks, payload.budget_ticks, "{}", payload.name);
            let image = std::fs::read(&spec.image).unwrap_or_else(|e| panic!("{}: {e}", spec.image.display()));
            assert_eq!(ImageKind::detect(&image), ImageKind::Elf64, "{}", payload.name);
            assert!(!payload.description.is_empty() && !payload.description.contains('\n'));
        }
    }

    #[test]
    fn expected_outcomes_and_modes() {
        let expected = |name: &str| find(name).map(|payload| (payload.start_mode, payload.expected));
        assert_eq!(expected("hello64"), Some((StartMode::Long, ExpectedOutcome::Exit(0))));
        assert_eq!(expected("hypercall"), Some((StartMode::Long, ExpectedOutcome::Exit(0x42))));
        assert_eq!(expected("protected32"), Some((StartMode::Protected, ExpectedOutcome::Exit(0x32))));
        assert_eq!(expected("realmode16"), Some((StartMode::Real, ExpectedOutcome::Exit(0x16))));
        assert_eq!(expected("cpuid_msr"), Some((StartMode::Long, ExpectedOutcome::Exit(0))));
        assert_eq!(expected("control_regs"), Some((StartMode::Long, ExpectedOutcome::Exit(0))));
        assert_eq!(expected("exceptions"), Some((StartMode::Long, ExpectedOutcome::Exit(0))));
        assert_eq!(expected("memtest"), Some((StartMode::Long, ExpectedOutcome::Exit(0))));
        assert_eq!(expected("escape_ram"), Some((StartMode::Long, ExpectedOutcome::Crash)));
        assert_eq!(expected("triple_fault"), Some((StartMode::Long, ExpectedOutcome::Crash)));
        assert_eq!(expected("neighbour"), Some((StartMode::Long, ExpectedOutcome::Exit(0))));
        assert_eq!(expected("hostile_memory"), Some((StartMode::Long, ExpectedOutcome::Crash)));
        assert_eq!(expected("hostile_cpu"), Some((StartMode::Long, ExpectedOutcome::OverBudget)));
        assert_eq!(expected("hostile_crash"), Some((StartMode::Long, ExpectedOutcome::Crash)));
        for name in ["hostile_ports", "hostile_msrs", "hostile_instructions", "hostile_hypercalls"] {
            assert_eq!(expected(name), Some((StartMode::Long, ExpectedOutcome::Exit(0))), "{name}");
        }
        assert_eq!(find("hello64").and_then(|p| p.config().ok()).map(|c| c.expected), Some(ExpectedOutcome::Exit(0)));
        assert_eq!(find("escape_ram").and_then(|p| p.config().ok()).map(|c| c.expected), Some(ExpectedOutcome::Crash));
    }

    #[test]
    fn payloads_that_try_one_thing_per_run_get_their_restarts_and_the_spinner_a_budget() {
        let config = |name: &str| find(name).and_then(|p| p.config().ok()).map(|c| (c.restart_limit, c.budget_ticks));
        assert_eq!(config("hostile_memory"), Some((8, 0)));
        assert_eq!(config("hostile_crash"), Some((3, 0)));
        assert_eq!(config("hostile_cpu"), Some((0, HOSTILE_CPU_BUDGET_TICKS)));
        const { assert!(HOSTILE_CPU_BUDGET_TICKS > DEFAULT_TIME_SLICE_TICKS, "the budget spans several time slices") };
        // A guest that is expected to be stopped by its budget must have one.
        for payload in BUILT_IN {
            assert_eq!(
                payload.expected == ExpectedOutcome::OverBudget,
                payload.budget_ticks != 0,
                "{}: budget and expectation disagree",
                payload.name
            );
        }
        assert_eq!(config("hello64"), Some((0, 0)));
    }

    #[test]
    fn lookup_is_exact() {
        assert_eq!(find("triple_fault").map(|p| p.name), Some("triple_fault"));
        assert_eq!(find("Hello64"), None);
        assert_eq!(find("hello"), None);
        assert_eq!(find(""), None);
    }

    #[test]
    fn the_default_is_the_default_set_in_order() {
        let names: Vec<_> = default_specs().iter().map(|spec| spec.config.name.as_str().to_string()).collect();
        assert_eq!(names, default_guest_names());
        // These, in this order (other payloads may sit between them).
        let known = [
            "hello64",
            "hypercall",
            "protected32",
            "realmode16",
            "cpuid_msr",
            "control_regs",
            "exceptions",
            "memtest",
            "escape_ram",
            "triple_fault",
        ];
        let mut rest = names.iter();
        for name in known {
            assert!(rest.any(|n| n == name), "{name} missing or out of order in {names:?}");
        }
        assert_eq!(names.first().map(String::as_str), Some("hello64"));
        // The guests that must be stopped come after the well-behaved ones and
        // before the timer guests, which come last: a crash report takes the
        // hypervisor tens of milliseconds of guest time, so the crashes happen
        // in the first round of time slices, before the timers are measured.
        let defaults: Vec<&BuiltInPayload> = in_set(PayloadSet::Default).collect();
        let first_crash = defaults.iter().position(|p| p.expected == ExpectedOutcome::Crash).unwrap_or(defaults.len());
        let first_timer = defaults.iter().position(|p| p.name.starts_with("timer_")).unwrap_or(defaults.len());
        assert!(defaults[first_crash..first_timer].iter().all(|p| p.expected == ExpectedOutcome::Crash));
        assert!(defaults[first_timer..].iter().all(|p| p.name.starts_with("timer_")));
        assert!(first_crash < first_timer);
        // No hostile guest or neighbour slows the default run down.
        assert!(names.iter().all(|name| !name.starts_with("hostile_") && name != "neighbour"));
        // The default set comes first in the registry.
        let first_other = BUILT_IN.iter().position(|p| p.set != PayloadSet::Default).unwrap_or(BUILT_IN.len());
        assert!(BUILT_IN[first_other..].iter().all(|p| p.set != PayloadSet::Default));
    }

    #[test]
    fn the_isolation_demo_is_every_hostile_guest_between_two_neighbours() {
        let specs = isolation_demo_specs();
        let names: Vec<&str> = specs.iter().map(|spec| spec.config.name.as_str()).collect();
        assert_eq!(names.first(), Some(&"neighbour-1"));
        assert_eq!(names.last(), Some(&"neighbour-2"));
        let hostile: Vec<&str> = in_set(PayloadSet::Isolation).map(|p| p.name).filter(|n| *n != "neighbour").collect();
        assert_eq!(names[1..names.len() - 1], hostile[..]);
        for name in [
            "hostile_memory",
            "hostile_ports",
            "hostile_msrs",
            "hostile_instructions",
            "hostile_cpu",
            "hostile_crash",
            "hostile_hypercalls",
        ] {
            assert!(names.contains(&name), "{name} is missing from the demo");
        }
        // The demo fits one boot blob, and its settings come from the registry.
        assert!(specs.len() <= hypervisor_core::blob::MAX_GUESTS);
        let memory = specs.iter().find(|spec| spec.config.name.as_str() == "hostile_memory");
        assert_eq!(memory.map(|spec| spec.config.restart_limit), Some(8));
        let neighbours = neighbour_specs();
        assert_eq!(neighbours.len(), 2);
        assert!(neighbours
            .iter()
            .all(|spec| spec.image == find("neighbour").map(|p| p.image_path()).unwrap_or_else(|| Path::new(""))));
    }

    #[test]
    fn the_listing_shows_every_payload_under_its_set() {
        let listing = listing();
        assert_eq!(listing.lines().count(), BUILT_IN.len() + 8, "{listing}");
        let isolation_heading = listing.lines().position(|line| line.starts_with("Isolation guests"));
        let isolation_heading = isolation_heading.unwrap_or_else(|| panic!("no isolation heading:\n{listing}"));
        for payload in BUILT_IN {
            let found =
                listing.lines().enumerate().find(|(_, line)| line.split_whitespace().next() == Some(payload.name));
            let (index, line) = found.unwrap_or_else(|| panic!("no line for {}:\n{listing}", payload.name));
            let words: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(words.get(1).copied(), Some(payload.start_mode.name()), "{line}");
            assert_eq!(words.get(2).copied(), Some(payload.expected.to_string().as_str()), "{line}");
            assert!(line.ends_with(payload.description), "{line}");
            assert_eq!(index > isolation_heading, payload.set != PayloadSet::Default, "{line}");
        }
        assert!(names_for_message().starts_with("`hello64`, "));
    }
}
