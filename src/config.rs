//! What the operator configures for injection: shared by `serve` and `inject`.
//!
//! The command line checks every value with the parsers below when it
//! starts, so a typo is one clear error instead of an init container that
//! fails the API server's validation in every mutated pod.

/// The init container's resource requests and limits (quota-safe, tiny).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitResources {
    /// `resources.requests.cpu` and `resources.limits.cpu`.
    pub cpu: String,
    /// `resources.requests.memory` and `resources.limits.memory`.
    pub memory: String,
}

impl Default for InitResources {
    fn default() -> Self {
        Self {
            cpu: "10m".to_owned(),
            memory: "16Mi".to_owned(),
        }
    }
}

/// Everything the mutation core needs besides the pod itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InjectConfig {
    /// The backlog for pods opted in by their namespace label (and for
    /// `inject --backlog`).
    pub default_backlog: u16,
    /// The image of the `install-shim` init container (this binary's image).
    pub image: String,
    /// `imagePullPolicy` of the init container, when set.
    pub image_pull_policy: Option<String>,
    /// Requests and limits of the init container.
    pub init_resources: InitResources,
    /// `sizeLimit` of the emptyDir that holds the shim.
    pub volume_size_limit: String,
}

/// The image this build injects when none is configured.
pub const DEFAULT_IMAGE: &str = concat!(
    "ghcr.io/forcebacklog/forcebacklog:",
    env!("CARGO_PKG_VERSION")
);

impl Default for InjectConfig {
    fn default() -> Self {
        Self {
            default_backlog: 4096,
            image: DEFAULT_IMAGE.to_owned(),
            image_pull_policy: None,
            init_resources: InitResources::default(),
            volume_size_limit: "1Mi".to_owned(),
        }
    }
}

/// The `imagePullPolicy` values Kubernetes accepts.
pub const PULL_POLICIES: [&str; 3] = ["Always", "IfNotPresent", "Never"];

/// An injection setting the API server would refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Not a Kubernetes resource quantity.
    #[error(
        "not a Kubernetes quantity: expected a number with an optional suffix \
         (m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei) or exponent, e.g. 10m, 0.5, 16Mi, 1e6"
    )]
    Quantity,
    /// A negative quantity (requests and limits are at least 0).
    #[error("a resource request and limit cannot be negative")]
    NegativeQuantity,
    /// An empty image reference, or one with whitespace.
    #[error("an image reference must be non-empty and without whitespace")]
    Image,
}

/// Checks a resource quantity for the init container's requests and
/// limits, in the grammar of Kubernetes' `resource.Quantity`: a decimal
/// number (`5`, `0.5`, `5.`, `.5`) and a suffix, one of `m`, `k`, `M`,
/// `G`, `T`, `P`, `E` (decimal), `Ki` … `Ei` (binary) or an exponent
/// `e`/`E` with an optional sign and digits (`1e3`, `5E-1`). Negative
/// values are refused.
pub fn parse_quantity(s: &str) -> Result<String, ConfigError> {
    let (negative, unsigned) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let number = unsigned
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(unsigned.len());
    let (digits, suffix) = unsigned.split_at(number);
    let valid_number = digits.bytes().filter(|&b| b == b'.').count() <= 1
        && digits.bytes().any(|b| b.is_ascii_digit());
    if !valid_number || !is_quantity_suffix(suffix) {
        return Err(ConfigError::Quantity);
    }
    if negative {
        return Err(ConfigError::NegativeQuantity);
    }
    Ok(s.to_owned())
}

fn is_quantity_suffix(suffix: &str) -> bool {
    const SUFFIXES: [&str; 14] = [
        "", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei",
    ];
    if SUFFIXES.contains(&suffix) {
        return true;
    }
    let Some(exponent) = suffix.strip_prefix(['e', 'E']) else {
        return false;
    };
    let exponent = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
    !exponent.is_empty() && exponent.bytes().all(|b| b.is_ascii_digit())
}

/// Checks the init container's image reference: non-empty, no whitespace
/// (the registry resolves the rest when the pod starts).
pub fn parse_image(s: &str) -> Result<String, ConfigError> {
    if s.is_empty() || s.contains(char::is_whitespace) {
        return Err(ConfigError::Image);
    }
    Ok(s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_quantities_are_accepted() {
        for q in [
            "10m", "0", "1", "0.5", "5.", ".5", "+1", "100k", "16Mi", "1Gi", "2G", "1.5Gi", "64Ki",
            "1Ti", "1Pi", "1Ei", "1T", "1P", "1E", "1M", "1e3", "1E3", "5e-1", "2e+2", "0.25e1",
        ] {
            assert_eq!(parse_quantity(q), Ok(q.to_owned()), "{q}");
        }
    }

    #[test]
    fn typos_are_refused() {
        for q in [
            "", " ", "10 m", " 10m", "10m ", "m", ".", "Mi", "1.2.3", "16mb", "16MB", "16mi",
            "1KI", "1Kib", "1K", "10mm", "1e", "1e+", "1e1.5", "1ee3", "e3", "0x10", "ten", "1,5",
            "1_000", "++1",
        ] {
            assert_eq!(parse_quantity(q), Err(ConfigError::Quantity), "{q:?}");
        }
        assert_eq!(parse_quantity("-1"), Err(ConfigError::NegativeQuantity));
        assert_eq!(parse_quantity("-10m"), Err(ConfigError::NegativeQuantity));
        assert!(ConfigError::Quantity.to_string().contains("16Mi"));
    }

    #[test]
    fn defaults_pass_their_own_checks() {
        let config = InjectConfig::default();
        assert!(parse_quantity(&config.init_resources.cpu).is_ok());
        assert!(parse_quantity(&config.init_resources.memory).is_ok());
        assert!(parse_quantity(&config.volume_size_limit).is_ok());
        assert!(parse_image(&config.image).is_ok());
    }

    #[test]
    fn images_must_be_non_empty_without_whitespace() {
        assert_eq!(
            parse_image("registry.local/fb:1"),
            Ok("registry.local/fb:1".into())
        );
        for bad in ["", " ", "fb :1", "fb:1\n"] {
            assert_eq!(parse_image(bad), Err(ConfigError::Image), "{bad:?}");
        }
    }
}
