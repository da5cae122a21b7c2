//! The guest configuration file: `--config guests.toml`.
//!
//! A TOML file with one `[[guest]]` table per guest, run in file order:
//!
//! ```toml
//! [[guest]]
//! name = "hello"          # required: 1-32 printable ASCII bytes, no spaces or brackets
//! builtin = "hello64"     # a built-in payload (`--list-guests`) ...
//! # file = "images/boot.bin"  # ... or an image file (relative to this file's directory)
//! mode = "long"           # real | protected | long; required with `file`,
//!                         #   a built-in's own mode by default
//! ram = "2M"              # bytes, or a number with K, M or G; rounded up to 2 MiB;
//!                         #   default 2M
//! time_slice = 1000000    # scheduler ticks (TSC ticks) per slice; default 1000000
//! budget = 0              # total ticks before the guest is stopped; 0 = unlimited
//!                         #   (default 0, a built-in's own for `builtin`)
//! restarts = 0            # restarts after a crash before the crash counts
//!                         #   (default 0, a built-in's own for `builtin`)
//! expect = "exit:0"       # exit:N (decimal or 0x hex), crash or over-budget;
//!                         #   default exit:0, a built-in's own for `builtin`
//! ```
//!
//! Every field but `name` and one of `builtin` / `file` is optional. A field
//! the format does not know, a value of the wrong type or out of range, is an
//! error that names the file, line and column; so are the semantic errors
//! found after parsing (neither or both of `builtin` and `file`, an unknown
//! built-in, `file` without `mode`, a name given twice). The images are
//! checked later, with every other guest's, before the run
//! ([`crate::guest_images`]).
//!
//! The parsing itself is the `toml` crate's, into the `serde`-derived
//! structures below; `deny_unknown_fields` gives the unknown-field errors.

use std::fmt;
use std::path::{Path, PathBuf};

use hypervisor_core::config::{ExpectedOutcome, GuestConfig, GuestName, StartMode};
use hypervisor_core::guest_memory::MAX_RAM_BYTES;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use toml::Spanned;

use crate::options::{GuestListError, GuestSpec};
use crate::payloads;
use crate::size::{format_size, parse_size};

/// One guest of a configuration file, with the line of its `name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigGuest {
    /// The guest.
    pub spec: GuestSpec,
    /// The line (from 1) of its `name` field, for messages.
    pub line: usize,
}

/// What is wrong with one `[[guest]]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryProblem {
    /// Neither `builtin` nor `file`.
    NoImage,
    /// Both `builtin` and `file`.
    TwoImages,
    /// `builtin` names no built-in payload.
    UnknownBuiltIn(String),
    /// `file` without `mode`: a flat image does not say its mode.
    FileNeedsMode,
    /// The guest cannot join the run's list (duplicate name, too many guests).
    List(GuestListError),
}

impl fmt::Display for EntryProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntryProblem::NoImage => f.write_str("give the guest an image: `builtin = \"NAME\"` or `file = \"PATH\"`"),
            EntryProblem::TwoImages => f.write_str("`builtin` and `file` both given: a guest has one image"),
            EntryProblem::UnknownBuiltIn(name) => {
                write!(f, "unknown built-in `{name}`: the built-in guests are {}", payloads::names_for_message())
            }
            EntryProblem::FileNeedsMode => {
                f.write_str("`file` needs `mode` (real, protected or long): an image does not say how it starts")
            }
            EntryProblem::List(error) => write!(f, "{error}"),
        }
    }
}

/// Why a configuration file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigFileError {
    /// The file cannot be read.
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error's message.
        reason: String,
    },
    /// Not valid TOML, a field the format does not know, or a bad value.
    Parse {
        /// The file.
        path: PathBuf,
        /// Where (from 1), when known.
        position: Option<(usize, usize)>,
        /// The parser's message.
        message: String,
    },
    /// A `[[guest]]` table that parses but does not describe a runnable guest.
    Guest {
        /// The file.
        path: PathBuf,
        /// The line of the guest's `name`.
        line: usize,
        /// The guest's name.
        name: GuestName,
        /// What is wrong.
        problem: EntryProblem,
    },
    /// The file has no `[[guest]]` table.
    NoGuests {
        /// The file.
        path: PathBuf,
    },
}

impl fmt::Display for ConfigFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigFileError::Read { path, reason } => {
                write!(f, "cannot read the configuration file {}: {reason}", path.display())
            }
            ConfigFileError::Parse { path, position: Some((line, column)), message } => {
                write!(f, "{}:{line}:{column}: {message}", path.display())
            }
            ConfigFileError::Parse { path, position: None, message } => write!(f, "{}: {message}", path.display()),
            ConfigFileError::Guest { path, line, name, problem } => {
                write!(f, "{}:{line}: guest `{name}`: {problem}", path.display())
            }
            ConfigFileError::NoGuests { path } => {
                write!(f, "{}: no guests: add a `[[guest]]` table for each guest", path.display())
            }
        }
    }
}

impl std::error::Error for ConfigFileError {}

/// Reads and parses the configuration file at `path`.
pub fn read_config(path: &Path) -> Result<Vec<ConfigGuest>, ConfigFileError> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| ConfigFileError::Read { path: path.to_path_buf(), reason: error.to_string() })?;
    parse_config(&text, path)
}

/// Parses a configuration file's text; `path` names it in messages, and
/// relative `file` paths are taken from its directory.
pub fn parse_config(text: &str, path: &Path) -> Result<Vec<ConfigGuest>, ConfigFileError> {
    let contents: FileContents = toml::from_str(text).map_err(|error| ConfigFileError::Parse {
        path: path.to_path_buf(),
        position: error.span().map(|span| position(text, span.start)),
        message: error.message().trim_end().to_string(),
    })?;
    if contents.guest.is_empty() {
        return Err(ConfigFileError::NoGuests { path: path.to_path_buf() });
    }
    let base = path.parent().unwrap_or(Path::new(""));
    contents
        .guest
        .into_iter()
        .map(|entry| {
            let line = position(text, entry.name.span().start).0;
            let name = entry.name.get_ref().0;
            let problem = |problem| ConfigFileError::Guest { path: path.to_path_buf(), line, name, problem };
            let spec = entry.into_spec(base).map_err(problem)?;
            Ok(ConfigGuest { spec, line })
        })
        .collect()
}

/// The line and column (both from 1) of byte `offset` in `text`.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |last| last.chars().count()) + 1;
    (line, column)
}

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileContents {
    /// The `[[guest]]` tables, in order.
    #[serde(default)]
    guest: Vec<Entry>,
}

/// One `[[guest]]` table, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: Spanned<NameField>,
    builtin: Option<String>,
    file: Option<PathBuf>,
    mode: Option<ModeField>,
    ram: Option<RamField>,
    time_slice: Option<TimeSliceField>,
    budget: Option<u64>,
    restarts: Option<u32>,
    expect: Option<ExpectField>,
}

impl Entry {
    /// The guest this table describes; relative files are taken from `base`.
    fn into_spec(self, base: &Path) -> Result<GuestSpec, EntryProblem> {
        let name = self.name.into_inner().0;
        let (mut config, image) = match (self.builtin, self.file) {
            (None, None) => return Err(EntryProblem::NoImage),
            (Some(_), Some(_)) => return Err(EntryProblem::TwoImages),
            (Some(builtin), None) => {
                let payload = payloads::find(&builtin).ok_or(EntryProblem::UnknownBuiltIn(builtin))?;
                let mut config = payload.default_config(name);
                if let Some(ModeField(mode)) = self.mode {
                    config.start_mode = mode;
                }
                (config, payload.image_path().to_path_buf())
            }
            (None, Some(file)) => {
                let ModeField(mode) = self.mode.ok_or(EntryProblem::FileNeedsMode)?;
                let mut config = GuestConfig::new(name);
                config.start_mode = mode;
                (config, base.join(file))
            }
        };
        if let Some(RamField(bytes)) = self.ram {
            config.set_ram_bytes(bytes);
        }
        // Unset fields keep the defaults: GuestConfig::new's for a file, the
        // registry's for a built-in (e.g. hostile_memory's restarts).
        if let Some(TimeSliceField(ticks)) = self.time_slice {
            config.time_slice_ticks = ticks;
        }
        if let Some(budget) = self.budget {
            config.budget_ticks = budget;
        }
        if let Some(restarts) = self.restarts {
            config.restart_limit = restarts;
        }
        if let Some(ExpectField(expected)) = self.expect {
            config.expected = expected;
        }
        Ok(GuestSpec { config, image })
    }
}

/// Deserializes a string and converts it with `convert`, whose error becomes
/// the parser's (so it gets the value's line and column).
fn from_text<'de, D, T>(deserializer: D, convert: impl FnOnce(&str) -> Result<T, String>) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    let text = String::deserialize(deserializer)?;
    convert(&text).map_err(de::Error::custom)
}

/// `name`: a valid [`GuestName`].
#[derive(Debug)]
struct NameField(GuestName);

impl<'de> Deserialize<'de> for NameField {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        from_text(deserializer, |text| {
            GuestName::new(text).map(NameField).map_err(|error| format!("bad name `{text}`: {error}"))
        })
    }
}

/// `mode`: `real`, `protected` or `long`.
#[derive(Debug)]
struct ModeField(StartMode);

impl<'de> Deserialize<'de> for ModeField {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        from_text(deserializer, |text| {
            text.parse().map(ModeField).map_err(|_| format!("bad mode `{text}`: expected real, protected or long"))
        })
    }
}

/// `expect`: `exit:N`, `crash` or `over-budget`.
#[derive(Debug)]
struct ExpectField(ExpectedOutcome);

impl<'de> Deserialize<'de> for ExpectField {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        from_text(deserializer, |text| {
            text.parse().map(ExpectField).map_err(|error| format!("bad expect `{text}`: {error}"))
        })
    }
}

/// `time_slice`: a positive number of ticks.
#[derive(Debug)]
struct TimeSliceField(u64);

impl<'de> Deserialize<'de> for TimeSliceField {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match u64::deserialize(deserializer)? {
            0 => Err(de::Error::custom("bad time_slice 0: a time slice is at least 1 tick")),
            ticks => Ok(TimeSliceField(ticks)),
        }
    }
}

/// `ram`: a number of bytes, or a string with a size suffix ([`parse_size`]);
/// at most 1 GiB.
#[derive(Debug)]
struct RamField(u64);

impl RamField {
    fn check<E: de::Error>(bytes: u64, written: &str) -> Result<Self, E> {
        if bytes > MAX_RAM_BYTES {
            return Err(E::custom(format!(
                "bad ram {written}: a guest has at most {} of RAM",
                format_size(MAX_RAM_BYTES)
            )));
        }
        Ok(RamField(bytes))
    }
}

impl<'de> Deserialize<'de> for RamField {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RamVisitor;

        impl Visitor<'_> for RamVisitor {
            type Value = RamField;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size: a number of bytes, or a string such as \"2M\"")
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<RamField, E> {
                match u64::try_from(value) {
                    Ok(0) | Err(_) => Err(E::custom(format!("bad ram {value}: give at least 1 byte"))),
                    Ok(bytes) => RamField::check(bytes, &value.to_string()),
                }
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<RamField, E> {
                match value {
                    0 => Err(E::custom("bad ram 0: give at least 1 byte")),
                    bytes => RamField::check(bytes, &value.to_string()),
                }
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<RamField, E> {
                let bytes = parse_size(text).map_err(|error| E::custom(format!("bad ram: {error}")))?;
                RamField::check(bytes, &format!("\"{text}\""))
            }
        }

        deserializer.deserialize_any(RamVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::size::MIB;
    use hypervisor_core::config::ImageKind;
    use hypervisor_core::config::DEFAULT_TIME_SLICE_TICKS;

    fn parse(text: &str) -> Result<Vec<ConfigGuest>, ConfigFileError> {
        parse_config(text, Path::new("conf/guests.toml"))
    }

    fn error(text: &str) -> String {
        match parse(text) {
            Ok(guests) => panic!("{text:?} parsed: {guests:?}"),
            Err(error) => error.to_string(),
        }
    }

    const GOOD: &str = r#"
# Two guests.
[[guest]]
name = "hello"
builtin = "hello64"

[[guest]]
name = "boot-sector"
file = "images/boot.bin"
mode = "real"
ram = "4M"
time_slice = 500000
budget = 90000000
restarts = 2
expect = "exit:0x10"
"#;

    #[test]
    fn a_good_file() {
        let guests = parse(GOOD).expect("a good file");
        assert_eq!(guests.len(), 2);

        let hello = &guests[0];
        assert_eq!(hello.line, 4);
        assert_eq!(hello.spec.config.name.as_str(), "hello");
        let built_in = payloads::find("hello64").expect("hello64 is built in");
        assert_eq!(hello.spec.image, built_in.image_path());
        assert_eq!(hello.spec.config.start_mode, built_in.start_mode);
        assert_eq!(hello.spec.config.expected, built_in.expected);
        assert_eq!(hello.spec.config.ram_bytes, 2 * MIB);
        assert_eq!(hello.spec.config.time_slice_ticks, DEFAULT_TIME_SLICE_TICKS);
        assert_eq!(hello.spec.config.budget_ticks, 0);
        assert_eq!(hello.spec.config.restart_limit, 0);

        let boot = &guests[1];
        assert_eq!(boot.line, 8);
        assert_eq!(boot.spec.image, Path::new("conf/images/boot.bin"));
        let config = &boot.spec.config;
        assert_eq!(config.name.as_str(), "boot-sector");
        assert_eq!(config.start_mode, StartMode::Real);
        assert_eq!(config.ram_bytes, 4 * MIB);
        assert_eq!(config.time_slice_ticks, 500_000);
        assert_eq!(config.budget_ticks, 90_000_000);
        assert_eq!(config.restart_limit, 2);
        assert_eq!(config.expected, ExpectedOutcome::Exit(0x10));
        // The kind is the image check's business; until then the default.
        assert_eq!(config.image, ImageKind::Elf64);
    }

    #[test]
    fn built_ins_keep_their_own_restarts_and_budget_unless_the_file_sets_them() {
        let text = "[[guest]]\nname = \"probe\"\nbuiltin = \"hostile_memory\"\n\
                    [[guest]]\nname = \"once\"\nbuiltin = \"hostile_memory\"\nrestarts = 0\n\
                    [[guest]]\nname = \"spin\"\nbuiltin = \"hostile_cpu\"\n\
                    [[guest]]\nname = \"spin-long\"\nbuiltin = \"hostile_cpu\"\nbudget = 7\nexpect = \"over-budget\"\n";
        let guests = parse(text).expect("good");
        let config = |index: usize| guests[index].spec.config;
        assert_eq!(config(0).restart_limit, 8);
        assert_eq!(config(1).restart_limit, 0);
        assert_eq!(config(2).budget_ticks, payloads::HOSTILE_CPU_BUDGET_TICKS);
        assert_eq!(config(2).expected, ExpectedOutcome::OverBudget);
        assert_eq!(config(3).budget_ticks, 7);
        assert_eq!(config(3).expected, ExpectedOutcome::OverBudget);
        assert_eq!(config(3).time_slice_ticks, DEFAULT_TIME_SLICE_TICKS);
    }

    #[test]
    fn ram_sizes_round_up_and_take_integers() {
        let text = "[[guest]]\nname = \"a\"\nbuiltin = \"hello64\"\nram = 3145728\n\
                    [[guest]]\nname = \"b\"\nbuiltin = \"hello64\"\nram = \"1K\"\n";
        let guests = parse(text).expect("good sizes");
        assert_eq!(guests[0].spec.config.ram_bytes, 4 * MIB);
        assert_eq!(guests[1].spec.config.ram_bytes, 2 * MIB);
    }

    #[test]
    fn absolute_files_stay_absolute_and_builtins_can_change_mode() {
        let text = "[[guest]]\nname = \"a\"\nfile = \"/images/a.elf\"\nmode = \"long\"\n\
                    [[guest]]\nname = \"b\"\nbuiltin = \"hello64\"\nmode = \"protected\"\nexpect = \"crash\"\n";
        let guests = parse(text).expect("good");
        assert_eq!(guests[0].spec.image, Path::new("/images/a.elf"));
        assert_eq!(guests[0].spec.config.expected, ExpectedOutcome::Exit(0));
        assert_eq!(guests[1].spec.config.start_mode, StartMode::Protected);
        assert_eq!(guests[1].spec.config.expected, ExpectedOutcome::Crash);
        let guests = parse_config(text, Path::new("guests.toml")).expect("good");
        assert_eq!(guests[0].spec.image, Path::new("/images/a.elf"));
    }

    #[test]
    fn unknown_fields_are_named_with_their_line() {
        let message = error("[[guest]]\nname = \"a\"\nbuiltin = \"hello64\"\nmemory = \"4M\"\n");
        assert!(message.starts_with("conf/guests.toml:4:1: unknown field `memory`, expected one of"), "{message}");
        assert!(message.contains("`ram`"), "{message}");
        let message = error("[[guests]]\nname = \"a\"\n");
        assert!(message.starts_with("conf/guests.toml:1:"), "{message}");
        assert!(message.contains("unknown field `guests`"), "{message}");
    }

    #[test]
    fn bad_values_are_named_with_their_line() {
        let base = "[[guest]]\nname = \"a\"\nbuiltin = \"hello64\"\n";
        let cases: &[(&str, &str)] = &[
            ("mode = \"virtual\"", "bad mode `virtual`: expected real, protected or long"),
            ("mode = 64", "invalid type: integer `64`, expected a string"),
            ("ram = \"2MB\"", "bad ram: `2MB` is not a size"),
            ("ram = \"\"", "bad ram: `` is not a size"),
            ("ram = 0", "bad ram 0: give at least 1 byte"),
            ("ram = -2", "bad ram -2: give at least 1 byte"),
            ("ram = \"2G\"", "bad ram \"2G\": a guest has at most 1 GiB of RAM"),
            ("ram = 1.5", "invalid type: floating point `1.5`, expected a size"),
            ("time_slice = 0", "bad time_slice 0: a time slice is at least 1 tick"),
            ("budget = -1", "invalid value: integer `-1`, expected u64"),
            ("restarts = 5000000000", "invalid value: integer `5000000000`, expected u32"),
            ("expect = \"exit\"", "bad expect `exit`: unknown expected outcome"),
            ("expect = \"exit:x\"", "bad expect `exit:x`: bad exit status"),
        ];
        for (line, expected) in cases {
            let message = error(&format!("{base}{line}\n"));
            assert!(message.starts_with("conf/guests.toml:4:"), "{line}: {message}");
            assert!(message.contains(expected), "{line}: {message}");
        }
    }

    #[test]
    fn bad_names_are_refused() {
        let message = error("[[guest]]\nname = \"two words\"\nbuiltin = \"hello64\"\n");
        assert!(
            message.starts_with("conf/guests.toml:2:8: bad name `two words`: guest name has byte 0x20"),
            "{message}"
        );
        assert!(error("[[guest]]\nname = \"\"\nbuiltin = \"hello64\"\n").contains("guest name is empty"));
        assert!(
            error(&format!("[[guest]]\nname = \"{}\"\nbuiltin = \"hello64\"\n", "x".repeat(33))).contains("at most 32")
        );
        assert!(error("[[guest]]\nname = \"[x]\"\nbuiltin = \"hello64\"\n").contains("without spaces and brackets"));
        let message = error("[[guest]]\nbuiltin = \"hello64\"\n");
        assert!(message.contains("missing field `name`"), "{message}");
    }

    #[test]
    fn entries_that_describe_no_runnable_guest() {
        let message = error("[[guest]]\nname = \"a\"\n");
        assert_eq!(
            message,
            "conf/guests.toml:2: guest `a`: give the guest an image: `builtin = \"NAME\"` or `file = \"PATH\"`"
        );
        let message = error("[[guest]]\nname = \"a\"\nbuiltin = \"hello64\"\nfile = \"x\"\nmode = \"long\"\n");
        assert!(message.ends_with("`builtin` and `file` both given: a guest has one image"), "{message}");
        let message = error("\n[[guest]]\nname = \"a\"\nbuiltin = \"hello\"\n");
        assert!(
            message.starts_with(
                "conf/guests.toml:3: guest `a`: unknown built-in `hello`: the built-in guests are `hello64`"
            ),
            "{message}"
        );
        let message = error("[[guest]]\nname = \"a\"\nfile = \"a.bin\"\n");
        assert!(message.ends_with("`file` needs `mode` (real, protected or long): an image does not say how it starts"));
    }

    #[test]
    fn empty_files_and_syntax_errors() {
        assert_eq!(error(""), "conf/guests.toml: no guests: add a `[[guest]]` table for each guest");
        assert_eq!(error("# nothing\n"), "conf/guests.toml: no guests: add a `[[guest]]` table for each guest");
        let message = error("[[guest]]\nname = \"a\"\nbuiltin = hello64\n");
        assert!(message.starts_with("conf/guests.toml:3:"), "{message}");
        let message = error("[[guest]]\nname = \"a\"\nname = \"b\"\n");
        assert!(message.starts_with("conf/guests.toml:3:"), "{message}");
    }

    #[test]
    fn a_missing_file_is_an_error() {
        let error = read_config(Path::new("/nonexistent/guests.toml")).unwrap_err();
        assert!(matches!(error, ConfigFileError::Read { .. }));
        assert!(error.to_string().starts_with("cannot read the configuration file /nonexistent/guests.toml: "));
    }

    #[test]
    fn positions_count_from_one() {
        assert_eq!(position("abc", 0), (1, 1));
        assert_eq!(position("abc\ndef", 5), (2, 2));
        assert_eq!(position("a\n\nb", 3), (3, 1));
        assert_eq!(position("ab", 99), (1, 3));
    }

    /// The example file at the root of the workspace parses, and names only
    /// built-in payloads.
    #[test]
    fn the_example_file_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guests.example.toml");
        let guests = read_config(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(!guests.is_empty());
        for guest in &guests {
            assert!(
                payloads::BUILT_IN.iter().any(|payload| payload.image_path() == guest.spec.image),
                "{}: not a built-in image",
                guest.spec.config.name
            );
        }
    }
}
