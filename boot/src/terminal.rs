//! Making serial output safe to show on a terminal.
//!
//! Firmware writes terminal control sequences to the serial port (OVMF clears
//! the screen with `ESC [ 2 J` and moves the cursor), which would wipe the
//! user's terminal and clutter the captured text. [`ControlFilter`] drops
//! escape sequences and the control characters other than tab, line feed and
//! carriage return. The raw bytes stay in the run directory's `serial.txt`.

/// Where the filter is inside an escape sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    /// Ordinary text.
    #[default]
    Text,
    /// After `ESC`.
    Escape,
    /// Inside a control sequence (`ESC [` ... final byte).
    ControlSequence,
}

/// Removes terminal control sequences from a byte stream that arrives in
/// pieces: a sequence split across two pieces is still removed.
#[derive(Debug, Clone, Default)]
pub struct ControlFilter {
    state: State,
}

impl ControlFilter {
    /// A filter at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends the printable part of `input` to `out`.
    pub fn filter(&mut self, input: &[u8], out: &mut Vec<u8>) {
        const ESC: u8 = 0x1b;
        for &byte in input {
            self.state = match (self.state, byte) {
                (State::Text, ESC) => State::Escape,
                (State::Text, b'\t' | b'\n' | b'\r') => {
                    out.push(byte);
                    State::Text
                }
                (State::Text, 0x00..=0x1f | 0x7f) => State::Text,
                (State::Text, _) => {
                    out.push(byte);
                    State::Text
                }
                (State::Escape, b'[') => State::ControlSequence,
                // A two-byte sequence such as `ESC c` (reset): drop both bytes.
                (State::Escape, _) => State::Text,
                // Parameter and intermediate bytes are 0x20..=0x3f; a final byte
                // (0x40..=0x7e) ends the sequence.
                (State::ControlSequence, 0x40..=0x7e) => State::Text,
                (State::ControlSequence, _) => State::ControlSequence,
            };
        }
    }
}

/// The printable text of a complete byte string (invalid UTF-8 replaced).
pub fn printable_text(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len());
    ControlFilter::new().filter(bytes, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ovmf_screen_control_is_removed() {
        let raw = b"\x1b[2J\x1b[01;01H\x1b[=3h\x1b[2J\x1b[01;01HBdsDxe: loading Boot0002\r\n[hv INFO ] hi\n";
        assert_eq!(printable_text(raw), "BdsDxe: loading Boot0002\r\n[hv INFO ] hi\n");
    }

    #[test]
    fn sequences_split_across_pieces_are_removed() {
        let mut filter = ControlFilter::new();
        let mut out = Vec::new();
        filter.filter(b"a\x1b[0", &mut out);
        filter.filter(b"1;01Hb", &mut out);
        assert_eq!(out, b"ab");
    }

    #[test]
    fn other_controls_are_dropped_but_text_and_utf8_stay() {
        assert_eq!(printable_text(b"x\x07\x00y\tz \xc3\xa9\x1bc!"), "xy\tz \u{e9}!");
    }
}
