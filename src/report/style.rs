//! How the human readers look: the styles of each kind of line, applied through
//! `anstyle` only when colour is on. Not a writer: callers print the strings.

use anstyle::{AnsiColor, Style};

/// A passing test, an `ok` line.
pub const PASS: Style = AnsiColor::Green.on_default();
/// A failing or erroring test, an invalid one, an error message.
pub const FAIL: Style = AnsiColor::Red.on_default();
/// A warning, a test that would run (`--dry-run`).
pub const WARN: Style = AnsiColor::Yellow.on_default();
/// A summary line.
pub const BOLD: Style = Style::new().bold();
/// The summary line of a run where everything passed.
pub const SUMMARY_OK: Style = AnsiColor::Green.on_default().bold();
/// The summary line of a run where something failed.
pub const SUMMARY_FAILED: Style = AnsiColor::Red.on_default().bold();

/// Clears the terminal and moves the cursor home (`clnrm dev --clear`): a cursor
/// command, not a style, so `anstyle` has no name for it.
pub const CLEAR_SCREEN: &str = "\x1b[2J\x1b[H";

/// Whether to colour, and the one way text gets coloured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Palette {
    color: bool,
}

impl Palette {
    pub fn new(color: bool) -> Palette {
        Palette { color }
    }

    pub fn color(&self) -> bool {
        self.color
    }

    /// `text` in `style`, or as it is when colour is off.
    pub fn paint(&self, text: &str, style: Style) -> String {
        if self.color {
            format!("{}{text}{}", style.render(), style.render_reset())
        } else {
            text.to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_off_leaves_text_alone_and_on_wraps_it_in_escapes() {
        assert_eq!(Palette::new(false).paint("PASS", PASS), "PASS");
        let painted = Palette::new(true).paint("FAIL", FAIL);
        assert!(painted.starts_with("\x1b[") && painted.contains("FAIL"));
        assert!(painted.ends_with("\x1b[0m"), "{painted:?}");
    }
}
