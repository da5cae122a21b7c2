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

/// Every built-in payload, in the order `--list-guests` shows them.
pub const BUILT_IN: [BuiltInPayload; 3] = [
    BuiltInPayload {
        name: "hello64",
        description: "prints through its UART, checks every hypercall, measures the cost of a VM exit",
        image: env!("CARGO_BIN_FILE_HELLO64_hello64"),
        start_mode: StartMode::Long,
        expected: ExpectedOutcome::Exit(0),
    },
    BuiltInPayload {
        name: "triple_fault",
        description: "triple-faults on purpose (ud2 with an empty IDT); the hypervisor must stop it",
        image: env!("CARGO_BIN_FILE_TRIPLE_FAULT_triple_fault"),
        start_mode: StartMode::Long,
        expected: ExpectedOutcome::Crash,
    },
    BuiltInPayload {
        name: "escape_ram",
        description: "writes just past the end of its RAM; EPT must stop it (an EPT violation)",
        image: env!("CARGO_BIN_FILE_ESCAPE_RAM_escape_ram"),
        start_mode: StartMode::Long,
        expected: ExpectedOutcome::Crash,
    },
];

/// The guests a run boots when it is given none: just `hello64`.
pub const DEFAULT_GUESTS: [&str; 1] = ["hello64"];

/// The built-in payload called `name`, if there is one.
pub fn find(name: &str) -> Option<&'static BuiltInPayload> {
    BUILT_IN.iter().find(|payload| payload.name == name)
}

/// The built-in names, for messages: `hello64, triple_fault or escape_ram`.
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
    const EXPECTED: &str = "EXPECTED";
    let width = BUILT_IN.iter().map(|payload| payload.name.len()).chain([NAME.len()]).max().unwrap_or(0);
    let mut text = format!(
        "Built-in guests (pick with --guest NAME, repeatable; without it: {}):\n  {NAME:<width$}  {EXPECTED:<8}  WHAT IT DOES\n",
        DEFAULT_GUESTS.join(", ")
    );
    for payload in &BUILT_IN {
        let _ = writeln!(
            text,
            "  {name:<width$}  {expected:<8}  {description}",
            name = payload.name,
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
        let mut config = GuestConfig::new(GuestName::new(self.name)?);
        config.image = ImageKind::Elf64;
        config.start_mode = self.start_mode;
        config.expected = self.expected;
        Ok(config)
    }

    /// The guest to put into the boot blob: [`Self::config`] and the image path.
    pub fn spec(&self) -> Result<GuestSpec, NameError> {
        Ok(GuestSpec { config: self.config()?, image: self.image_path().to_path_buf() })
    }
}

/// The guests of [`DEFAULT_GUESTS`].
pub fn default_specs() -> Vec<GuestSpec> {
    DEFAULT_GUESTS.iter().filter_map(|name| find(name)).filter_map(|payload| payload.spec().ok()).collect()
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
    fn expected_outcomes() {
        let expected = |name: &str| find(name).map(|payload| payload.expected);
        assert_eq!(expected("hello64"), Some(ExpectedOutcome::Exit(0)));
        assert_eq!(expected("triple_fault"), Some(ExpectedOutcome::Crash));
        assert_eq!(expected("escape_ram"), Some(ExpectedOutcome::Crash));
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
    fn the_default_is_hello64_alone() {
        let names: Vec<_> = default_specs().iter().map(|spec| spec.config.name.as_str().to_string()).collect();
        assert_eq!(names, ["hello64"]);
    }

    #[test]
    fn the_listing_shows_every_payload() {
        let listing = listing();
        assert_eq!(listing.lines().count(), BUILT_IN.len() + 2, "{listing}");
        for payload in &BUILT_IN {
            let line = listing.lines().find(|line| line.split_whitespace().next() == Some(payload.name));
            let line = line.unwrap_or_else(|| panic!("no line for {}:\n{listing}", payload.name));
            let words: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(words.get(1).copied(), Some(payload.expected.to_string().as_str()), "{line}");
            assert!(line.ends_with(payload.description), "{line}");
        }
        assert_eq!(names_for_message(), "`hello64`, `triple_fault` or `escape_ram`");
    }
}
