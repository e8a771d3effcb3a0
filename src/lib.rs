//! tidings facade (filled in below).
