//! Cutting text that travels in headers and events to a size, and making
//! text from messages safe to print.

use std::borrow::Cow;
use std::fmt::Write as _;

/// `text` cut to at most `max_bytes` bytes on a character boundary, with
/// `...` after the cut; unchanged when it fits.
pub fn truncate(text: &str, max_bytes: usize) -> String {
    if text.len() <= max_bytes {
        return text.to_owned();
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

/// `text` with every control character written as an escape (`\r`, `\n`,
/// `\t`, `\u{1b}`, ...), for printing message ids and topics: a sender must
/// not forge a log line (CR, LF) or drive the terminal (ESC). Unchanged,
/// and not copied, when it has none.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A writer for text logs that escapes control characters inside each log
/// line. tracing's text format writes one event per `write`, ending in the
/// one newline that is its own; every other control character came from
/// the data (a message id with CR LF in it). `keep_esc` leaves ESC alone
/// for the colour codes of a terminal (tracing itself escapes ESC in
/// values there).
pub struct ControlEscaper<W> {
    inner: W,
    keep_esc: bool,
}

impl<W> ControlEscaper<W> {
    pub fn new(inner: W, keep_esc: bool) -> Self {
        ControlEscaper { inner, keep_esc }
    }
}

impl<W: std::io::Write> std::io::Write for ControlEscaper<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let (line, end) = match buf.strip_suffix(b"\n") {
            Some(line) => (line, &b"\n"[..]),
            None => (buf, &b""[..]),
        };
        let text = String::from_utf8_lossy(line);
        let has_controls = text.chars().any(|c| c.is_control() && !(self.keep_esc && c == '\u{1b}'));
        if !has_controls {
            self.inner.write_all(buf)?;
            return Ok(buf.len());
        }
        let mut out = String::with_capacity(buf.len() + 8);
        for (i, part) in text.split('\u{1b}').enumerate() {
            if i > 0 {
                out.push_str(if self.keep_esc { "\u{1b}" } else { "\\u{1b}" });
            }
            out.push_str(&escape_controls(part));
        }
        self.inner.write_all(out.as_bytes())?;
        self.inner.write_all(end)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(super::escape_controls("a\r\nb\u{1b}[2J\u{7}"), "a\\r\\nb\\u{1b}[2J\\u{7}");
        assert!(matches!(super::escape_controls("plain é"), std::borrow::Cow::Borrowed("plain é")));
    }

    #[test]
    fn a_log_line_keeps_only_its_own_newline() {
        let mut out = Vec::new();
        let mut w = super::ControlEscaper::new(&mut out, false);
        w.write_all(b"INFO id=x\r\nINFO forged \x1b[31m\n").unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "INFO id=x\\r\\nINFO forged \\u{1b}[31m\n");
        let mut out = Vec::new();
        let mut w = super::ControlEscaper::new(&mut out, true);
        w.write_all(b"\x1b[32mINFO\x1b[0m id=x\ny\n").unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "\x1b[32mINFO\x1b[0m id=x\\ny\n");
    }

    #[test]
    fn long_text_is_cut_on_a_character_boundary() {
        let long = "é".repeat(100);
        let cut = super::truncate(&long, 11);
        assert_eq!(cut, format!("{}...", "é".repeat(5)));
        assert_eq!(super::truncate("short", 11), "short");
    }
}
