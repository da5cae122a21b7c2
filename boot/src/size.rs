//! Memory sizes as people write them: `2097152`, `512K`, `2M`, `1G`.
//!
//! Used for a guest's RAM by `--ram` and by the configuration file's `ram`.
//! The suffixes are binary: `K` = 1024 bytes, `M` = 1024 K, `G` = 1024 M, and
//! may also be spelled `KiB`, `MiB`, `GiB` (upper or lower case).

use std::fmt;

/// Bytes in a KiB, MiB and GiB.
pub const KIB: u64 = 1 << 10;
/// Bytes in a MiB.
pub const MIB: u64 = 1 << 20;
/// Bytes in a GiB.
pub const GIB: u64 = 1 << 30;

/// Why a size could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SizeError {
    /// Not a whole number with an optional `K`, `M` or `G` suffix.
    Malformed(String),
    /// Zero bytes: a guest needs some RAM.
    Zero,
    /// More than a `u64` holds.
    Overflow(String),
}

impl fmt::Display for SizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SizeError::Malformed(text) => write!(
                f,
                "`{text}` is not a size: expected a number of bytes, or a number followed by K, M or G \
                 (e.g. 2097152, 512K, 2M, 1G)"
            ),
            SizeError::Zero => f.write_str("a size of 0 bytes: give at least 1 byte (it is rounded up to 2 MiB)"),
            SizeError::Overflow(text) => write!(f, "`{text}` is too large a size"),
        }
    }
}

impl std::error::Error for SizeError {}

/// Parses a size: decimal digits, optionally followed by `K`, `M` or `G`
/// (or `KiB`, `MiB`, `GiB`; any case). Zero is refused.
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    let malformed = || SizeError::Malformed(text.to_string());
    let digits_end = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, suffix) = text.split_at(digits_end);
    if digits.is_empty() {
        return Err(malformed());
    }
    let unit = match suffix.to_ascii_lowercase().as_str() {
        "" => 1,
        "k" | "kib" => KIB,
        "m" | "mib" => MIB,
        "g" | "gib" => GIB,
        _ => return Err(malformed()),
    };
    // Only digits remain, so the one way `parse` fails is a number past u64::MAX.
    let number: u64 = digits.parse().map_err(|_| SizeError::Overflow(text.to_string()))?;
    let bytes = number.checked_mul(unit).ok_or_else(|| SizeError::Overflow(text.to_string()))?;
    if bytes == 0 {
        return Err(SizeError::Zero);
    }
    Ok(bytes)
}

/// A size for people: `2 MiB`, `1 GiB`, `1536 KiB`, `100 bytes` (the largest
/// unit that divides it exactly).
pub fn format_size(bytes: u64) -> String {
    match bytes {
        0 => "0 bytes".to_string(),
        b if b % GIB == 0 => format!("{} GiB", b / GIB),
        b if b % MIB == 0 => format!("{} MiB", b / MIB),
        b if b % KIB == 0 => format!("{} KiB", b / KIB),
        b => format!("{b} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_with_and_without_suffixes() {
        assert_eq!(parse_size("2097152"), Ok(2 * MIB));
        assert_eq!(parse_size("1"), Ok(1));
        assert_eq!(parse_size("512K"), Ok(512 * KIB));
        assert_eq!(parse_size("2M"), Ok(2 * MIB));
        assert_eq!(parse_size("2m"), Ok(2 * MIB));
        assert_eq!(parse_size("2MiB"), Ok(2 * MIB));
        assert_eq!(parse_size("1G"), Ok(GIB));
        assert_eq!(parse_size("1gib"), Ok(GIB));
    }

    #[test]
    fn bad_sizes_are_refused() {
        for text in ["", "M", "2 M", "2MB", "2T", "-2M", "0x10", "1.5M", " 2M", "2M "] {
            assert_eq!(parse_size(text), Err(SizeError::Malformed(text.to_string())), "{text:?}");
        }
        assert_eq!(parse_size("0"), Err(SizeError::Zero));
        assert_eq!(parse_size("0M"), Err(SizeError::Zero));
        assert_eq!(parse_size("99999999999999999999"), Err(SizeError::Overflow("99999999999999999999".into())));
        assert_eq!(parse_size("17179869184G"), Err(SizeError::Overflow("17179869184G".into())));
        assert!(SizeError::Malformed("2T".into()).to_string().contains("K, M or G"));
    }

    #[test]
    fn sizes_print_in_the_largest_exact_unit() {
        assert_eq!(format_size(2 * MIB), "2 MiB");
        assert_eq!(format_size(GIB), "1 GiB");
        assert_eq!(format_size(1536 * KIB), "1536 KiB");
        assert_eq!(format_size(100), "100 bytes");
        assert_eq!(format_size(0), "0 bytes");
    }
}
