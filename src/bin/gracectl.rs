//! Placeholder until the D-Bus work lands.
fn main() {}
