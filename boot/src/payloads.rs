//! The built-in guest payloads: the guests built together with the runner,
//! which `--guest NAME` picks by name.
//!
//! Each payload is a crate of `guest-payloads/`, built for
//! `x86_64-unknown-none` as an artifact dependency of the runner (see
//! `boot/Cargo.toml`); Cargo hands the path of its ELF to the runner at compile
//! time as `CARGO_BIN_FILE_<CRATE>_<bin>`. The registry ([`BUILT_IN`]) adds
//! what the command line needs to know about it: a one-line description and
//! how it is expected to end.
//!
//! To add a payload: add its crate to the workspace and as an artifact
//! dependency in `boot/Cargo.toml`, then add an entry to [`BUILT_IN`].
//!
//! Payloads for real and protected mode are ELF files too; the runner
//! flattens them before the run ([`crate::flatten`]).

use std::fmt::Write as _;
use std::path::Path;

use hypervisor_core::config::{ExpectedOutcome, GuestConfig, GuestName, ImageKind, NameError, StartMode};

use crate::options::GuestSpec;

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
}

/// Every built-in payload, in the order `--list-guests` shows them and a run
/// without guest options boots them: the well-behaved guests first (64-bit,
/// then the older modes, then the ones that probe the hypervisor's
/// emulation), the ones that must be stopped last.
pub const BUILT_IN: [BuiltInPayload; 9] = [
    BuiltInPayload {
        name: "hello64",
        description: "prints through its UART, checks every hypercall, measures the cost of a VM exit",
        image: env!("CARGO_BIN_FILE_HELLO64_hello64"),
        start_mode: StartMode::Long,
        expected: ExpectedOutcome::Exit(0),
    },
    BuiltInPayload {
        name: "hypercall",
        description: "checks every hypercall at the edges of its arguments; ends through the exit hypercall",
        image: env!("CARGO_BIN_FILE_HYPERCALL_hypercall"),
        start_mode: StartMode::Long,
        expected: ExpectedOutcome::Exit(0x42),
    },
    BuiltInPayload {
        name: "protected32",
        description: "starts in 32-bit protected mode with paging off, proves it, exits through port 0xF4",
        image: env!("CARGO_BIN_FILE_PROTECTED32_protected32"),
        start_mode: StartMode::Protected,
        expected: ExpectedOutcome::Exit(0x32),
    },
    BuiltInPayload {
        name: "realmode16",
        description: "starts like a boot sector in real mode at 0x7C00, climbs to protected and long mode itself",
        image: env!("CARGO_BIN_FILE_REALMODE16_realmode16"),
        start_mode: StartMode::Real,
        expected: ExpectedOutcome::Exit(0x16),
    },
    BuiltInPayload {
        name: "cpuid_msr",
        description: "checks what CPUID shows a guest and which MSRs it may read and write",
        image: env!("CARGO_BIN_FILE_CPUID_MSR_cpuid_msr"),
        start_mode: StartMode::Long,
        expected: ExpectedOutcome::Exit(0),
    },
    BuiltInPayload {
        name: "control_regs",
        description: "checks which CR0, CR4 and XCR0 writes a guest may make, and INVD, WBINVD and VMX instructions",
        image: env!("CARGO_BIN_FILE_CONTROL_REGS_control_regs"),
        start_mode: StartMode::Long,
        expected: ExpectedOutcome::Exit(0),
    },
    BuiltInPayload {
        name: "memtest",
        description: "writes a pattern over all of its free RAM and reads it back",
        image: env!("CARGO_BIN_FILE_MEMTEST_memtest"),
        start_mode: StartMode::Long,
        expected: ExpectedOutcome::Exit(0),
    },
    BuiltInPayload {
        name: "escape_ram",
        description: "writes just past the end of its RAM; EPT must stop it (an EPT violation)",
        image: env!("CARGO_BIN_FILE_ESCAPE_RAM_escape_ram"),
        start_mode: StartMode::Long,
        expected: ExpectedOutcome::Crash,
    },
    BuiltInPayload {
        name: "triple_fault",
        description: "triple-faults on purpose (ud2 with an empty IDT); the hypervisor must stop it",
        image: env!("CARGO_BIN_FILE_TRIPLE_FAULT_triple_fault"),
        start_mode: StartMode::Long,
        expected: ExpectedOutcome::Crash,
    },
];

/// The guests a run boots when it is given none: every built-in payload, in
/// the order of [`BUILT_IN`].
pub fn default_guest_names() -> Vec<&'static str> {
    BUILT_IN.iter().map(|payload| payload.name).collect()
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

/// What `--list-guests` prints: a heading, then one line per payload with its
/// name, expected outcome and description.
pub fn listing() -> String {
    const NAME: &str = "NAME";
    const MODE: &str = "MODE";
    const EXPECTED: &str = "EXPECTED";
    let width = BUILT_IN.iter().map(|payload| payload.name.len()).chain([NAME.len()]).max().unwrap_or(0);
    let mut text = format!(
        "Built-in guests (pick with --guest NAME, repeatable; without any guest option, all of them in \
         this order):\n  {NAME:<width$}  {MODE:<9}  {EXPECTED:<9}  WHAT IT DOES\n"
    );
    for payload in &BUILT_IN {
        let _ = writeln!(
            text,
            "  {name:<width$}  {mode:<9}  {expected:<9}  {description}",
            name = payload.name,
            mode = payload.start_mode.name(),
            expected = payload.expected.to_string(),
            description = payload.description,
        );
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
    /// of RAM, no budget, no restarts) with its name, an ELF image, its start
    /// mode and its expected outcome.
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
        config
    }

    /// The guest to put into the boot blob: [`Self::config`] and the image path.
    pub fn spec(&self) -> Result<GuestSpec, NameError> {
        Ok(GuestSpec { config: self.config()?, image: self.image_path().to_path_buf() })
    }
}

/// The guests a run boots when it is given none ([`default_guest_names`]).
pub fn default_specs() -> Vec<GuestSpec> {
    BUILT_IN.iter().filter_map(|payload| payload.spec().ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_entry_is_a_valid_guest_with_an_elf_image() {
        let mut names = HashSet::new();
        for payload in &BUILT_IN {
            assert!(names.insert(payload.name), "{}: listed twice", payload.name);
            let spec = payload.spec().unwrap_or_else(|e| panic!("{}: {e}", payload.name));
            assert_eq!(spec.config.name.as_str(), payload.name);
            assert_eq!(spec.config.validate(), Ok(()), "{}", payload.name);
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
        assert_eq!(expected("memtest"), Some((StartMode::Long, ExpectedOutcome::Exit(0))));
        assert_eq!(expected("escape_ram"), Some((StartMode::Long, ExpectedOutcome::Crash)));
        assert_eq!(expected("triple_fault"), Some((StartMode::Long, ExpectedOutcome::Crash)));
        assert_eq!(find("hello64").and_then(|p| p.config().ok()).map(|c| c.expected), Some(ExpectedOutcome::Exit(0)));
        assert_eq!(find("escape_ram").and_then(|p| p.config().ok()).map(|c| c.expected), Some(ExpectedOutcome::Crash));
    }

    #[test]
    fn lookup_is_exact() {
        assert_eq!(find("triple_fault").map(|p| p.name), Some("triple_fault"));
        assert_eq!(find("Hello64"), None);
        assert_eq!(find("hello"), None);
        assert_eq!(find(""), None);
    }

    #[test]
    fn the_default_is_every_built_in_in_order() {
        let names: Vec<_> = default_specs().iter().map(|spec| spec.config.name.as_str().to_string()).collect();
        assert_eq!(names, default_guest_names());
        assert_eq!(
            names,
            [
                "hello64",
                "hypercall",
                "protected32",
                "realmode16",
                "cpuid_msr",
                "control_regs",
                "memtest",
                "escape_ram",
                "triple_fault"
            ]
        );
        assert_eq!(names.len(), BUILT_IN.len());
        assert_eq!(names.first().map(String::as_str), Some("hello64"));
        // The guests that must be stopped come last.
        let first_crash = BUILT_IN.iter().position(|p| p.expected == ExpectedOutcome::Crash).unwrap_or(BUILT_IN.len());
        assert!(BUILT_IN[first_crash..].iter().all(|p| p.expected == ExpectedOutcome::Crash));
    }

    #[test]
    fn the_listing_shows_every_payload() {
        let listing = listing();
        assert_eq!(listing.lines().count(), BUILT_IN.len() + 2, "{listing}");
        for payload in &BUILT_IN {
            let line = listing.lines().find(|line| line.split_whitespace().next() == Some(payload.name));
            let line = line.unwrap_or_else(|| panic!("no line for {}:\n{listing}", payload.name));
            let words: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(words.get(1).copied(), Some(payload.start_mode.name()), "{line}");
            assert_eq!(words.get(2).copied(), Some(payload.expected.to_string().as_str()), "{line}");
            assert!(line.ends_with(payload.description), "{line}");
        }
        assert!(names_for_message().starts_with("`hello64`, "));
    }
}
