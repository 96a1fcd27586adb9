//! What the operator configures for injection: shared by `serve` and `inject`.
//!
//! The command line checks every value with the parsers below when it
//! starts, so a typo is one clear error instead of an init container that
//! fails the API server's validation in every mutated pod. The checked
//! values have types of their own ([`Image`], [`PullPolicy`],
//! [`Quantity`]), so an [`InjectConfig`] holds only valid ones; the
//! defaults are the `DEFAULT_*` constants here, which the command line
//! uses too.

/// The default backlog for pods opted in by their namespace label
/// (`--default-backlog`).
pub const DEFAULT_BACKLOG: u16 = 4096;

/// The image this build injects when none is configured (`--image`).
pub const DEFAULT_IMAGE: &str = concat!(
    "ghcr.io/forcebacklog/forcebacklog:",
    env!("CARGO_PKG_VERSION")
);

/// The init container's CPU request and limit (`--init-cpu`).
pub const DEFAULT_INIT_CPU: &str = "10m";

/// The init container's memory request and limit (`--init-memory`).
pub const DEFAULT_INIT_MEMORY: &str = "16Mi";

/// The `sizeLimit` of the emptyDir that holds the shim.
pub const DEFAULT_VOLUME_SIZE_LIMIT: &str = "1Mi";

/// Whether the cluster runs native sidecars (`--native-sidecars`).
pub const DEFAULT_NATIVE_SIDECARS: bool = true;

/// Containers left alone unless `forcebacklog/containers` names them: the
/// Istio and Linkerd proxies (their listeners belong to the mesh).
pub const DEFAULT_EXCLUDED_CONTAINERS: [&str; 2] = ["istio-proxy", "linkerd-proxy"];

/// A container image reference: non-empty, without whitespace (the
/// registry resolves the rest when the pod starts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image(String);

impl Image {
    /// The reference as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for Image {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, ConfigError> {
        parse_image(s)
    }
}

impl std::fmt::Display for Image {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The `imagePullPolicy` of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    /// Pull the image every time a container starts.
    Always,
    /// Pull the image only when the node does not have it.
    IfNotPresent,
    /// Never pull: the image must be on the node.
    Never,
}

impl PullPolicy {
    /// Every policy, in the order Kubernetes documents them.
    pub const ALL: [PullPolicy; 3] = [Self::Always, Self::IfNotPresent, Self::Never];

    /// The name Kubernetes uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Always => "Always",
            Self::IfNotPresent => "IfNotPresent",
            Self::Never => "Never",
        }
    }
}

impl std::str::FromStr for PullPolicy {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, ConfigError> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or(ConfigError::PullPolicy)
    }
}

/// A non-negative Kubernetes resource quantity (`10m`, `16Mi`, `1e6`),
/// kept as written. Made by [`parse_quantity`], or by [`parse_memory`]
/// for a memory quantity (a whole number of bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quantity(String);

impl Quantity {
    /// A quantity this module knows to be valid (a default; the tests
    /// check each with the parser).
    fn known(s: &str) -> Self {
        Quantity(s.to_owned())
    }

    /// The quantity as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Quantity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The init container's resource requests and limits (quota-safe, tiny),
/// given to it in every pod that sets any resources; a pod that sets none
/// (QoS class BestEffort) gets an init container without resources, so it
/// stays BestEffort.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitResources {
    /// `resources.requests.cpu` and `resources.limits.cpu`.
    pub cpu: Quantity,
    /// `resources.requests.memory` and `resources.limits.memory` (whole
    /// bytes: made by [`parse_memory`]).
    pub memory: Quantity,
}

impl Default for InitResources {
    fn default() -> Self {
        Self {
            cpu: Quantity::known(DEFAULT_INIT_CPU),
            memory: Quantity::known(DEFAULT_INIT_MEMORY),
        }
    }
}

/// Everything the mutation core needs besides the pod itself. Each field
/// is valid by its type (the image, the pull policy and the quantities are
/// checked when they are parsed); the defaults are the constants above.
/// [`crate::patch::Injector::new`] prepares it for use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InjectConfig {
    /// The backlog for pods opted in by their namespace label (and for
    /// `inject --backlog`).
    pub default_backlog: u16,
    /// The image of the `install-shim` init container (this binary's image).
    pub image: Image,
    /// `imagePullPolicy` of the init container, when set.
    pub image_pull_policy: Option<PullPolicy>,
    /// Requests and limits of the init container.
    pub init_resources: InitResources,
    /// `sizeLimit` of the emptyDir that holds the shim (whole bytes).
    pub volume_size_limit: Quantity,
    /// Secrets added to a mutated pod's `imagePullSecrets` when missing,
    /// so the init container's image can be pulled from a private registry.
    pub image_pull_secrets: Vec<String>,
    /// The cluster runs native sidecars (init containers with
    /// `restartPolicy: Always`, Kubernetes ≥ 1.29): the metrics sidecar
    /// of `forcebacklog/metrics` is added only then.
    pub native_sidecars: bool,
    /// Containers never injected unless `forcebacklog/containers` names
    /// them (service-mesh proxies).
    pub exclude_containers: Vec<String>,
}

impl Default for InjectConfig {
    fn default() -> Self {
        Self {
            default_backlog: DEFAULT_BACKLOG,
            image: Image(DEFAULT_IMAGE.to_owned()),
            image_pull_policy: None,
            init_resources: InitResources::default(),
            volume_size_limit: Quantity::known(DEFAULT_VOLUME_SIZE_LIMIT),
            image_pull_secrets: Vec::new(),
            native_sidecars: DEFAULT_NATIVE_SIDECARS,
            exclude_containers: DEFAULT_EXCLUDED_CONTAINERS.map(str::to_owned).to_vec(),
        }
    }
}

/// An injection setting the API server would refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Not a Kubernetes resource quantity.
    #[error(
        "not a Kubernetes quantity: expected a number with an optional suffix \
         (n, u, m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei) or exponent, e.g. 10m, 0.5, 16Mi, 1e6"
    )]
    Quantity,
    /// A memory quantity that is not a whole number of bytes (`10m` is
    /// 0.01 bytes).
    #[error(
        "a memory quantity must be a whole number of bytes (10m is 0.01 bytes): \
         e.g. 16Mi, 64M, 1.5Gi, 1e6"
    )]
    FractionalBytes,
    /// Not a Kubernetes object name (a DNS-1123 subdomain or label).
    #[error(
        "not a Kubernetes name: expected lowercase letters, digits and '-' \
         (and '.' for a Secret), starting and ending with a letter or digit, at most {max} characters"
    )]
    Name {
        /// The longest name allowed.
        max: usize,
    },
    /// A negative quantity (requests and limits are at least 0).
    #[error("a resource request and limit cannot be negative")]
    NegativeQuantity,
    /// An empty image reference, or one with whitespace.
    #[error("an image reference must be non-empty and without whitespace")]
    Image,
    /// Not one of Kubernetes' image pull policies.
    #[error("not an image pull policy: expected Always, IfNotPresent or Never")]
    PullPolicy,
    /// Not a duration of the form `5s`, `500ms` or `1m`.
    #[error("not a duration: expected a whole number and a unit (ms, s or m), e.g. 5s, 500ms, 1m")]
    Duration,
}

/// Checks a resource quantity for the init container's requests and
/// limits, in the grammar of Kubernetes' `resource.Quantity`: a decimal
/// number (`5`, `0.5`, `5.`, `.5`) and a suffix, one of `m`, `k`, `M`,
/// `G`, `T`, `P`, `E` (decimal), `Ki` … `Ei` (binary) or an exponent
/// `e`/`E` with an optional sign and digits (`1e3`, `5E-1`). Negative
/// values are refused.
pub fn parse_quantity(s: &str) -> Result<Quantity, ConfigError> {
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
    Ok(Quantity(s.to_owned()))
}

fn is_quantity_suffix(suffix: &str) -> bool {
    suffix_scale(suffix).is_some()
}

/// The scale of a quantity suffix: (power of ten, power of two), e.g.
/// `m` → (-3, 0), `Ki` → (0, 10), `e-2` → (-2, 0). `None` for an unknown
/// suffix or an exponent that is not an integer.
fn suffix_scale(suffix: &str) -> Option<(i64, u32)> {
    let scale = match suffix {
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "" => (0, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 10),
        "Mi" => (0, 20),
        "Gi" => (0, 30),
        "Ti" => (0, 40),
        "Pi" => (0, 50),
        "Ei" => (0, 60),
        _ => {
            let exponent = suffix.strip_prefix(['e', 'E'])?;
            let digits = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            // Kubernetes reads the exponent as a 32-bit integer.
            (i64::from(exponent.parse::<i32>().ok()?), 0)
        }
    };
    Some(scale)
}

/// Checks a memory quantity: a Kubernetes quantity ([`parse_quantity`])
/// that is a whole number of bytes, as the API server expects of memory
/// (it warns about `fractional byte value` otherwise). `10m` (0.01 bytes)
/// and `0.5` are refused; `1.5Gi`, `1.5k`, `1e3` and `2000m` are whole.
pub fn parse_memory(s: &str) -> Result<Quantity, ConfigError> {
    let s = parse_quantity(s)?;
    if !is_whole_bytes(s.as_str()) {
        return Err(ConfigError::FractionalBytes);
    }
    Ok(s)
}

/// True when a valid, non-negative quantity is a whole number: its
/// value is M × 10^e × 2^b with M the digits of the number (the decimal
/// point removed, which lowers e by the count of fraction digits).
fn is_whole_bytes(quantity: &str) -> bool {
    let unsigned = quantity.strip_prefix('+').unwrap_or(quantity);
    let end = unsigned
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(unsigned.len());
    let (number, suffix) = unsigned.split_at(end);
    let Some((mut e, b)) = suffix_scale(suffix) else {
        return false;
    };
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    // M with its trailing zeros moved into the exponent.
    let digits = format!("{int}{frac}");
    let significant = digits.trim_end_matches('0');
    e += (digits.len() - significant.len()) as i64 - frac.len() as i64;
    let significant = significant.trim_start_matches('0');
    if significant.is_empty() || e >= 0 {
        return true;
    }
    // M × 2^b must be divisible by 10^k = 2^k × 5^k. M ends in a non-zero
    // digit, so 5 | M makes M odd: the 2^k must all come from 2^b.
    let k = e.unsigned_abs();
    if k > u64::from(b) {
        return false;
    }
    // Here k ≤ 60, and 5^k does not fit 64 bits beyond k = 27; compare
    // M mod 5^k digit by digit in 128 bits (5^27 × 10 < 2^128).
    if k > 27 {
        return false;
    }
    let modulus = 5u128.pow(k as u32);
    let rest = significant
        .bytes()
        .fold(0u128, |r, d| (r * 10 + u128::from(d - b'0')) % modulus);
    rest == 0
}

/// Checks the name of a Secret (a DNS-1123 subdomain: at most 253
/// characters of `a-z`, `0-9`, `-` and `.`, starting and ending with a
/// letter or digit).
pub fn parse_secret_name(s: &str) -> Result<String, ConfigError> {
    let ok = s.len() <= 253 && s.split('.').all(|label| is_dns_label(label, 253));
    if !ok {
        return Err(ConfigError::Name { max: 253 });
    }
    Ok(s.to_owned())
}

/// Checks a container name (a DNS-1123 label: at most 63 characters of
/// `a-z`, `0-9` and `-`, starting and ending with a letter or digit). The
/// empty string is accepted for `--exclude-container ''`: exclude nothing.
pub fn parse_container_name(s: &str) -> Result<String, ConfigError> {
    if !s.is_empty() && !is_dns_label(s, 63) {
        return Err(ConfigError::Name { max: 63 });
    }
    Ok(s.to_owned())
}

fn is_dns_label(s: &str, max: usize) -> bool {
    let bytes = s.as_bytes();
    let edge = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    !bytes.is_empty()
        && bytes.len() <= max
        && bytes.first().is_some_and(edge)
        && bytes.last().is_some_and(edge)
        && bytes.iter().all(|b| edge(b) || *b == b'-')
}

/// Checks the init container's image reference: non-empty, no whitespace
/// (the registry resolves the rest when the pod starts).
pub fn parse_image(s: &str) -> Result<Image, ConfigError> {
    if s.is_empty() || s.contains(char::is_whitespace) {
        return Err(ConfigError::Image);
    }
    Ok(Image(s.to_owned()))
}

/// Reads a `serve` duration flag: a whole number and a unit, `ms`, `s` or
/// `m` (`0s`, `500ms`, `5s`, `1m`), at most one hour.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, ConfigError> {
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(digits);
    let number: u64 = number.parse().map_err(|_| ConfigError::Duration)?;
    let millis = match unit {
        "ms" => Some(number),
        "s" => number.checked_mul(1_000),
        "m" => number.checked_mul(60_000),
        _ => None,
    }
    .filter(|&ms| ms <= 3_600_000)
    .ok_or(ConfigError::Duration)?;
    Ok(std::time::Duration::from_millis(millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_quantities_are_accepted() {
        for q in [
            "10m", "0", "1", "0.5", "5.", ".5", "+1", "100k", "16Mi", "1Gi", "2G", "1.5Gi", "64Ki",
            "1Ti", "1Pi", "1Ei", "1T", "1P", "1E", "1M", "1e3", "1E3", "5e-1", "2e+2", "0.25e1",
            "100n", "250u",
        ] {
            assert_eq!(
                parse_quantity(q).map(|q| q.to_string()),
                Ok(q.to_owned()),
                "{q}"
            );
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
        let resources = &config.init_resources;
        assert_eq!(
            parse_quantity(DEFAULT_INIT_CPU).as_ref(),
            Ok(&resources.cpu)
        );
        assert_eq!(
            parse_memory(DEFAULT_INIT_MEMORY).as_ref(),
            Ok(&resources.memory)
        );
        assert_eq!(
            parse_memory(DEFAULT_VOLUME_SIZE_LIMIT).as_ref(),
            Ok(&config.volume_size_limit)
        );
        for name in &config.exclude_containers {
            assert_eq!(parse_container_name(name).as_ref(), Ok(name));
        }
        assert_eq!(parse_image(DEFAULT_IMAGE).as_ref(), Ok(&config.image));
    }

    #[test]
    fn memory_is_a_whole_number_of_bytes() {
        for q in [
            "16Mi",
            "1Ti",
            "1",
            "0",
            "0.0",
            "1.",
            "1.5Gi",
            "0.5Ki",
            "1.5k",
            "1.500k",
            "1.001k",
            "2000m",
            "1e3",
            "1.5e3",
            "1E6",
            "64M",
            "0.125Ki",
            "1.0009765625Ki",
            "3000000000n",
            "1000000u",
            "0.1e1",
            "123456789012345678901234567890",
            "0.000000000000000001E",
            "+1Gi",
        ] {
            assert_eq!(
                parse_memory(q).map(|q| q.to_string()),
                Ok(q.to_owned()),
                "{q}"
            );
        }
        for q in [
            "10m",
            "0.5",
            "1.5",
            "1500m",
            "1n",
            "1u",
            "1.0001k",
            "1.1Ki",
            "1e-1",
            "5e-1",
            "0.1Ki",
            "1.00048828125Ki",
            "1.0000000000000000001E",
            "0.3",
        ] {
            assert_eq!(parse_memory(q), Err(ConfigError::FractionalBytes), "{q}");
        }
        assert_eq!(parse_memory("16MB"), Err(ConfigError::Quantity));
        assert_eq!(parse_memory("-1Gi"), Err(ConfigError::NegativeQuantity));
        // CPU has no such rule: 10m is a hundredth of a core.
        assert_eq!(
            parse_quantity("10m").map(|q| q.to_string()),
            Ok("10m".to_owned())
        );
    }

    #[test]
    fn names_follow_the_kubernetes_rules() {
        for ok in ["regcred", "my-registry.example", "a", "0-x"] {
            assert_eq!(parse_secret_name(ok), Ok(ok.to_owned()), "{ok}");
        }
        for bad in [
            "",
            "RegCred",
            "-x",
            "x-",
            "a..b",
            "a_b",
            "a b",
            &"a".repeat(254),
        ] {
            assert_eq!(
                parse_secret_name(bad),
                Err(ConfigError::Name { max: 253 }),
                "{bad:?}"
            );
        }
        for ok in ["istio-proxy", "", "web1"] {
            assert_eq!(parse_container_name(ok), Ok(ok.to_owned()), "{ok}");
        }
        for bad in ["Istio", "a.b", "-a", &"a".repeat(64)] {
            assert_eq!(
                parse_container_name(bad),
                Err(ConfigError::Name { max: 63 }),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn durations_have_a_unit() {
        use std::time::Duration;
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("60m"), Ok(Duration::from_secs(3600)));
        for bad in [
            "",
            "5",
            "s",
            "-1s",
            "1.5s",
            "5 s",
            " 5s",
            "5S",
            "5sec",
            "1h",
            "61m",
            "99999999999999999999s",
        ] {
            assert_eq!(parse_duration(bad), Err(ConfigError::Duration), "{bad:?}");
        }
        assert!(ConfigError::Duration.to_string().contains("500ms"));
    }

    #[test]
    fn pull_policies_are_the_kubernetes_names() {
        for policy in PullPolicy::ALL {
            assert_eq!(policy.as_str().parse(), Ok(policy));
        }
        for bad in ["always", "", "IfNotPresent ", "Sometimes"] {
            assert_eq!(
                bad.parse::<PullPolicy>(),
                Err(ConfigError::PullPolicy),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn images_must_be_non_empty_without_whitespace() {
        assert_eq!(
            parse_image("registry.local/fb:1").map(|i| i.to_string()),
            Ok("registry.local/fb:1".to_owned())
        );
        for bad in ["", " ", "fb :1", "fb:1\n"] {
            assert_eq!(parse_image(bad), Err(ConfigError::Image), "{bad:?}");
        }
    }
}
