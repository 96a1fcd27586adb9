//! annotations (to be written).

/// Typed settings read from a pod's annotations.
#[derive(Debug, Clone, Default)]
pub struct Settings;
