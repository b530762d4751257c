//! Cutting text that travels in headers and events to a size.

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

#[cfg(test)]
mod tests {
    #[test]
    fn long_text_is_cut_on_a_character_boundary() {
        let long = "é".repeat(100);
        let cut = super::truncate(&long, 11);
        assert_eq!(cut, format!("{}...", "é".repeat(5)));
        assert_eq!(super::truncate("short", 11), "short");
    }
}
