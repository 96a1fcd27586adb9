//! Build script (to be written): builds and embeds the shim.
fn main() {}
