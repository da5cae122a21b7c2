//! Every code reference in the documentation must point at something real.
//!
//! The docs under `docs/` name code as backticked references of the form
//! `` `path/to/file.rs::item` `` or `` `path/to/file.rs::Type::method` ``.
//!
//! The rule:
//!
//! - The path is tried relative to the repository root first, then relative
//!   to `hypervisor/src/`, `hypervisor/core/src/` and `boot/src/` (short
//!   forms). The docs use full paths from the repository root; the short
//!   forms are accepted so that a reference is never judged by its style.
//! - The file must exist.
//! - The last segment must be defined in that file as one of `fn name`,
//!   `struct name`, `enum name`, `const name`, `static name`, `mod name`,
//!   `macro_rules! name` or `trait name` (the name followed by a character
//!   that cannot continue an identifier).
//! - A middle segment (the `Type` of `Type::method`) must appear in the file
//!   as `struct`, `enum`, `trait` or `mod` of that name, or in an `impl` line.
//!
//! Only inline code spans are scanned; fenced code blocks are skipped.

use std::fs;
use std::path::{Path, PathBuf};

/// Directories a short-form path may be relative to, after the repository root.
const SHORT_FORM_ROOTS: [&str; 3] = ["hypervisor/src", "hypervisor/core/src", "boot/src"];

/// Keywords that define an item a reference may name.
const DEFINING_KEYWORDS: [&str; 8] = ["fn", "struct", "enum", "const", "static", "mod", "macro_rules!", "trait"];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("boot/ has a parent").to_path_buf()
}

/// A reference found in a document: the file path and the `::` segments after it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reference {
    text: String,
    path: String,
    segments: Vec<String>,
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if is_ident_start(c)) && chars.all(is_ident_char)
}

/// Parses one code span; `None` unless it is `path.rs::a(::b)*`.
fn parse_reference(span: &str) -> Option<Reference> {
    let span = span.trim();
    let split = span.find(".rs::")?;
    let path = &span[..split + 3];
    if path.is_empty()
        || !path.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
        || path.starts_with('/')
    {
        return None;
    }
    let segments: Vec<String> = span[split + 5..].split("::").map(str::to_owned).collect();
    if segments.iter().all(|s| is_identifier(s)) {
        Some(Reference { text: span.to_owned(), path: path.to_owned(), segments })
    } else {
        None
    }
}

/// Every reference in a Markdown text, with its line number (1-based).
fn references_in(markdown: &str) -> Vec<(usize, Reference)> {
    let mut found = Vec::new();
    let mut in_fence = false;
    for (index, line) in markdown.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        // Inline code spans: text between pairs of backticks.
        let mut parts = line.split('`');
        parts.next();
        while let Some(span) = parts.next() {
            if let Some(reference) = parse_reference(span) {
                found.push((index + 1, reference));
            }
            // Skip the text between this span and the next one.
            parts.next();
        }
    }
    found
}

/// Whether `source` has `keyword name` followed by a non-identifier character.
fn defines(source: &str, keyword: &str, name: &str) -> bool {
    let needle = format!("{keyword} {name}");
    source.match_indices(&needle).any(|(at, _)| {
        let before_ok = source[..at].chars().next_back().is_none_or(|c| !is_ident_char(c));
        let after_ok = source[at + needle.len()..].chars().next().is_none_or(|c| !is_ident_char(c));
        before_ok && after_ok
    })
}

/// Whether `name` appears in an `impl` line of `source` as a whole word.
fn implemented(source: &str, name: &str) -> bool {
    source.lines().map(str::trim_start).filter(|line| line.starts_with("impl")).any(|line| {
        line.match_indices(name).any(|(at, _)| {
            let before_ok = line[..at].chars().next_back().is_none_or(|c| !is_ident_char(c));
            let after_ok = line[at + name.len()..].chars().next().is_none_or(|c| !is_ident_char(c));
            before_ok && after_ok
        })
    })
}

/// Finds the file a reference's path names, by the rule above.
fn resolve_path(root: &Path, path: &str) -> Option<PathBuf> {
    std::iter::once(root.join(path))
        .chain(SHORT_FORM_ROOTS.iter().map(|base| root.join(base).join(path)))
        .find(|candidate| candidate.is_file())
}

/// Checks one reference against the tree at `root`.
fn check_reference(root: &Path, reference: &Reference) -> Result<(), String> {
    let Some(file) = resolve_path(root, &reference.path) else {
        return Err(format!("no file `{}` (tried the repository root and {:?})", reference.path, SHORT_FORM_ROOTS));
    };
    let source = fs::read_to_string(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let (last, middle) = reference.segments.split_last().expect("a reference has at least one segment");
    for name in middle {
        let found =
            ["struct", "enum", "trait", "mod"].iter().any(|k| defines(&source, k, name)) || implemented(&source, name);
        if !found {
            return Err(format!("`{name}` is not a struct, enum, trait, mod or impl in {}", file.display()));
        }
    }
    if DEFINING_KEYWORDS.iter().any(|k| defines(&source, k, last)) {
        Ok(())
    } else {
        Err(format!("no `fn/struct/enum/const/static/mod/macro_rules!/trait {last}` in {}", file.display()))
    }
}

fn markdown_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            markdown_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "md") {
            out.push(path);
        }
    }
}

#[test]
fn every_code_reference_in_docs_resolves() {
    let root = repo_root();
    let mut files = Vec::new();
    markdown_files(&root.join("docs"), &mut files);
    files.sort();
    assert!(!files.is_empty(), "no Markdown files under docs/");

    let mut checked = 0;
    let mut broken = Vec::new();
    for file in &files {
        let text = fs::read_to_string(file).expect("readable Markdown");
        for (line, reference) in references_in(&text) {
            checked += 1;
            if let Err(why) = check_reference(&root, &reference) {
                let shown = file.strip_prefix(&root).unwrap_or(file);
                broken.push(format!("{}:{line}: `{}`: {why}", shown.display(), reference.text));
            }
        }
    }
    // The walkthrough alone names dozens of functions: a handful means the
    // scanner stopped finding them.
    assert!(checked >= 40, "only {checked} references found under docs/: is the scanner broken?");
    assert!(broken.is_empty(), "{} broken reference(s) in docs/:\n{}", broken.len(), broken.join("\n"));
    println!("{checked} references in {} files resolve", files.len());
}

#[test]
fn scanner_finds_references_and_ignores_other_code() {
    let markdown = "\
See `hypervisor/src/vmx/on.rs::enable` and `vmx/vcpu.rs::Vcpu::run`.
Not references: `hypervisor_core::caps`, `cargo run`, `on.rs`, `a.rs::b c`.
```
`hypervisor/src/in/a/fence.rs::ignored`
```
";
    let found: Vec<String> = references_in(markdown).into_iter().map(|(_, r)| r.text).collect();
    assert_eq!(found, ["hypervisor/src/vmx/on.rs::enable", "vmx/vcpu.rs::Vcpu::run"]);
}

#[test]
fn good_references_pass() {
    let root = repo_root();
    for text in [
        "hypervisor/src/vmx/on.rs::enable",
        "hypervisor/src/vmx/on.rs::VmxOperation::disable",
        "hypervisor/src/vmx/vcpu.rs::Vcpu::run",
        "vmx/vcpu.rs::VmExit",                  // short form, relative to hypervisor/src/
        "caps.rs::IA32_FEATURE_CONTROL",        // short form, relative to hypervisor/core/src/
        "hypervisor/src/vmx/run.rs::vmx_enter", // `unsafe extern "C" fn`
    ] {
        let reference = parse_reference(text).expect("parses");
        check_reference(&root, &reference).unwrap_or_else(|why| panic!("`{text}` should resolve: {why}"));
    }
}

#[test]
fn broken_references_fail() {
    let root = repo_root();
    for text in [
        "hypervisor/src/vmx/no_such_file.rs::enable",    // no such file
        "hypervisor/src/vmx/on.rs::no_such_function",    // no such item
        "hypervisor/src/vmx/on.rs::enabl",               // a prefix of `enable` is not `enable`
        "hypervisor/src/vmx/on.rs::NoSuchType::disable", // no such type
        "hypervisor/src/vmx/vcpu.rs::Vcpu::VmExitt",     // a typo
    ] {
        let reference = parse_reference(text).expect("parses");
        assert!(check_reference(&root, &reference).is_err(), "`{text}` should be reported as broken");
    }
}
