//! Terminal output: colour only on a terminal and only without `NO_COLOR`.

use std::io::IsTerminal;

/// True when colour may be written to stdout: it is a terminal and
/// `NO_COLOR` is unset or empty (the NO_COLOR convention).
pub fn stdout_colour() -> bool {
    std::io::stdout().is_terminal() && no_color_unset()
}

/// True when `NO_COLOR` is unset or empty.
pub fn no_color_unset() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// An ANSI style.
#[derive(Clone, Copy)]
pub enum Style {
    /// Bold red.
    Critical,
    /// Red.
    Red,
    /// Yellow.
    Yellow,
    /// Green.
    Green,
    /// Cyan.
    Cyan,
    /// Dim.
    Dim,
    /// Bold.
    Bold,
}

impl Style {
    fn code(self) -> &'static str {
        match self {
            Style::Critical => "1;31",
            Style::Red => "31",
            Style::Yellow => "33",
            Style::Green => "32",
            Style::Cyan => "36",
            Style::Dim => "2",
            Style::Bold => "1",
        }
    }
}

/// `text` in `style` when `colour`, else `text` as is.
pub fn paint(colour: bool, style: Style, text: &str) -> String {
    if colour {
        format!("\x1b[{}m{text}\x1b[0m", style.code())
    } else {
        text.to_owned()
    }
}
