//! The `forcebacklog` command line: parse arguments, call the library,
//! print an error once, exit non-zero. Nothing else lives here.
#![forbid(unsafe_code)]

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::error::ErrorKind;
use clap::{CommandFactory, Parser, Subcommand};
use std::error::Error;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use forcebacklog::config::{self, InjectConfig};
use forcebacklog::patch::Injector;

// mimalloc instead of the libc allocator: a review allocates a lot of small
// short-lived objects. Measured CPU per review (bench/README.md, "Webhook"):
// the image's static musl build 56 -> 30 us (musl's allocator is slow),
// the glibc build 24 -> 22 us. `no_thp`: no transparent huge pages, which
// otherwise raise the peak RSS under load from 15 to 24 MiB.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Raise the TCP listen backlog of programs you cannot change.
#[derive(Debug, Parser)]
#[command(name = "forcebacklog", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTPS admission webhook (POST /mutate, /mutate/namespace, /validate).
    Serve(ServeArgs),
    /// Print Kubernetes YAML mutated exactly as the webhook would mutate its pods.
    Inject(InjectArgs),
    /// Run one local command with the shim preloaded.
    Run(RunArgs),
    /// Internal: the supervised side of `run --method supervise`.
    #[command(name = "__supervised-exec", hide = true)]
    SupervisedExec {
        /// The command and its arguments.
        #[arg(required = true, last = true)]
        command: Vec<OsString>,
    },
    /// Copy the embedded shim into DIR atomically, mode 0555 (the init container's job).
    InstallShim {
        /// The directory to write libforcebacklog.so into.
        dir: PathBuf,
        /// Also copy this binary to DIR/forcebacklog, mode 0555 (for
        /// `run --method supervise` in app containers).
        #[arg(long)]
        with_binary: bool,
    },
    /// Listening TCP sockets of this network namespace: backlog, accept queue, overflow counters.
    Sockets(SocketsArgs),
    /// Pods that asked for forcebacklog: injected, skipped or missed (exit 1), with the fix.
    Audit(AuditArgs),
}

#[derive(Debug, clap::Args)]
struct AuditArgs {
    /// Audit this namespace (default: the context's namespace).
    #[arg(long, short = 'n', conflicts_with = "all_namespaces")]
    namespace: Option<String>,
    /// Audit every namespace.
    #[arg(long, short = 'A')]
    all_namespaces: bool,
    /// The kubeconfig context to use (default: its current context).
    #[arg(long)]
    context: Option<String>,
    /// The kubeconfig file (default: KUBECONFIG, ~/.kube/config, then in-cluster).
    #[arg(long, value_name = "PATH")]
    kubeconfig: Option<PathBuf>,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value = "table")]
    output: AuditOutput,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum AuditOutput {
    Table,
    Json,
}

#[derive(Debug, clap::Args)]
struct SocketsArgs {
    /// Read the network namespace of this process instead of ours.
    #[arg(long)]
    pid: Option<u32>,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    output: SocketsOutput,
    /// Print again every SECS seconds until interrupted.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=86400))]
    watch: Option<u64>,
    /// Serve Prometheus metrics on ADDR (e.g. 0.0.0.0:9464) at /metrics instead of printing.
    #[arg(long, value_name = "ADDR", conflicts_with = "watch")]
    serve: Option<SocketAddr>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum SocketsOutput {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// PEM certificate chain (reloaded when the file changes).
    #[arg(long, env = "FORCEBACKLOG_TLS_CERT")]
    tls_cert: PathBuf,
    /// PEM private key (reloaded when the file changes).
    #[arg(long, env = "FORCEBACKLOG_TLS_KEY")]
    tls_key: PathBuf,
    /// HTTPS address of the webhook.
    #[arg(long, env = "FORCEBACKLOG_ADDR", default_value = "0.0.0.0:8443")]
    addr: SocketAddr,
    /// Plain-HTTP admin address: /healthz, /readyz, /metrics.
    #[arg(long, env = "FORCEBACKLOG_ADMIN_ADDR", default_value = "0.0.0.0:8080")]
    admin_addr: SocketAddr,
    #[command(flatten)]
    inject: InjectOptions,
    /// Log format.
    #[arg(
        long,
        env = "FORCEBACKLOG_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    log_format: LogFormat,
    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `forcebacklog=debug`.
    #[arg(long, env = "FORCEBACKLOG_LOG_LEVEL", default_value = "info")]
    log_level: String,
    /// Webhook connections served at once; past it new ones are closed at
    /// accept. Lowered to fit the open-files limit.
    #[arg(long, env = "FORCEBACKLOG_MAX_CONNECTIONS",
          default_value_t = forcebacklog::server::DEFAULT_MAX_CONNECTIONS,
          value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: u32,
    /// On SIGTERM: report not ready at once, keep serving this long
    /// (e.g. 5s, 500ms), then drain in-flight requests and exit.
    #[arg(long, env = "FORCEBACKLOG_SHUTDOWN_DELAY", default_value = "0s",
          value_parser = config::parse_duration)]
    shutdown_delay: std::time::Duration,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Options shared by `serve` and `inject`: what gets injected. The
/// defaults are `forcebacklog::config`'s.
#[derive(Debug, clap::Args)]
struct InjectOptions {
    /// Image of the install-shim init container.
    #[arg(long, env = "FORCEBACKLOG_IMAGE", default_value = config::DEFAULT_IMAGE,
          value_parser = config::parse_image)]
    image: config::Image,
    /// imagePullPolicy of the init container.
    #[arg(long, env = "FORCEBACKLOG_IMAGE_PULL_POLICY",
          value_parser = PossibleValuesParser::new(config::PullPolicy::ALL.map(config::PullPolicy::as_str))
              .try_map(|s| s.parse::<config::PullPolicy>()))]
    image_pull_policy: Option<config::PullPolicy>,
    /// Backlog for pods opted in by their namespace label.
    #[arg(long, env = "FORCEBACKLOG_DEFAULT_BACKLOG", default_value_t = config::DEFAULT_BACKLOG,
          value_parser = clap::value_parser!(u16).range(1..))]
    default_backlog: u16,
    /// CPU request and limit of the init container (a Kubernetes quantity).
    #[arg(long, env = "FORCEBACKLOG_INIT_CPU", default_value = config::DEFAULT_INIT_CPU,
          value_parser = config::parse_quantity)]
    init_cpu: config::Quantity,
    /// Memory request and limit of the init container (a Kubernetes quantity, whole bytes).
    #[arg(long, env = "FORCEBACKLOG_INIT_MEMORY", default_value = config::DEFAULT_INIT_MEMORY,
          value_parser = config::parse_memory)]
    init_memory: config::Quantity,
    /// The cluster runs native sidecars (Kubernetes >= 1.29): `forcebacklog/metrics` adds one.
    #[arg(long, env = "FORCEBACKLOG_NATIVE_SIDECARS",
          default_value_t = config::DEFAULT_NATIVE_SIDECARS,
          action = clap::ArgAction::Set, value_name = "BOOL")]
    native_sidecars: bool,
    /// Secret added to mutated pods' imagePullSecrets when missing (repeatable).
    #[arg(long = "image-pull-secret", value_name = "NAME", env = "FORCEBACKLOG_IMAGE_PULL_SECRETS",
          value_delimiter = ',', value_parser = config::parse_secret_name)]
    image_pull_secrets: Vec<String>,
    /// Container left alone unless forcebacklog/containers names it (repeatable;
    /// `--exclude-container ''` excludes none).
    #[arg(long = "exclude-container", value_name = "NAME", env = "FORCEBACKLOG_EXCLUDE_CONTAINERS",
          value_delimiter = ',', default_values = config::DEFAULT_EXCLUDED_CONTAINERS,
          value_parser = config::parse_container_name)]
    exclude_containers: Vec<String>,
}

impl InjectOptions {
    fn into_config(self) -> InjectConfig {
        InjectConfig {
            default_backlog: self.default_backlog,
            image: self.image,
            image_pull_policy: self.image_pull_policy,
            init_resources: config::InitResources {
                cpu: self.init_cpu,
                memory: self.init_memory,
            },
            image_pull_secrets: self.image_pull_secrets,
            native_sidecars: self.native_sidecars,
            exclude_containers: self
                .exclude_containers
                .into_iter()
                .filter(|name| !name.is_empty())
                .collect(),
            ..InjectConfig::default()
        }
    }
}

#[derive(Debug, clap::Args)]
struct InjectArgs {
    /// YAML file to read (`-` for stdin).
    #[arg(short = 'f', long = "filename")]
    file: PathBuf,
    /// Treat pod templates without the annotation as annotated with this backlog.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    backlog: Option<u16>,
    /// Write every document normalised (comments dropped, anchors expanded)
    /// instead of splicing the additions into the original text.
    #[arg(long)]
    reformat: bool,
    #[command(flatten)]
    inject: InjectOptions,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// The backlog every listen() gets (1..=65535).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    backlog: u16,
    /// `raise` (never lower the app's value) or `set` (exactly BACKLOG).
    #[arg(long)]
    mode: Option<String>,
    /// Only listeners bound to these local ports, e.g. `8080,9090` or `8080, 9090`.
    #[arg(long)]
    ports: Option<String>,
    /// Print one line per changed listen() to stderr.
    #[arg(long)]
    debug: bool,
    /// `shim` (LD_PRELOAD, dynamically linked programs) or `supervise`
    /// (seccomp + ptrace: static programs and raw system calls too).
    #[arg(long, value_enum, default_value_t = RunMethod::Shim)]
    method: RunMethod,
    /// The command and its arguments.
    #[arg(required = true, last = true)]
    command: Vec<OsString>,
}

/// How `run` reaches the command's listen() calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum RunMethod {
    /// Preload the shim.
    Shim,
    /// A seccomp filter and a ptrace supervisor.
    Supervise,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return usage_error(&err),
    };
    let result: Result<ExitCode, Box<dyn Error>> = match cli.command {
        Command::Serve(args) => serve(args),
        Command::Inject(args) => forcebacklog::manifest::inject_file(
            &args.file,
            args.backlog,
            &Injector::new(args.inject.into_config()),
            if args.reformat {
                forcebacklog::manifest::Output::Reformat
            } else {
                forcebacklog::manifest::Output::Splice
            },
        )
        .map(|()| ExitCode::SUCCESS)
        .map_err(Into::into),
        Command::Run(args) => {
            let options = forcebacklog::shim::RunOptions {
                backlog: args.backlog,
                mode: args.mode,
                ports: args.ports,
                debug: args.debug,
            };
            match args.method {
                RunMethod::Shim => {
                    forcebacklog::shim::run(&options, &args.command).map_err(Into::into)
                }
                RunMethod::Supervise => {
                    forcebacklog::supervise::run(&options, &args.command).map_err(Into::into)
                }
            }
        }
        Command::SupervisedExec { command } => {
            Err(forcebacklog::supervise::exec_helper(&command).into())
        }
        Command::Sockets(args) => sockets(&args),
        Command::Audit(args) => return audit(args),
        Command::InstallShim { dir, with_binary } => forcebacklog::shim::install(&dir)
            .and_then(|_| match with_binary {
                true => forcebacklog::shim::install_binary(&dir).map(drop),
                false => Ok(()),
            })
            .map(|()| ExitCode::SUCCESS)
            .map_err(Into::into),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("{}", error_line(err.as_ref()));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes as one line.
fn error_line(err: &(dyn Error + 'static)) -> String {
    format!("forcebacklog: {}", forcebacklog::error_chain(err))
}

/// Exit 0 when nothing was missed, 1 when a pod was, 2 when the audit failed.
fn audit(args: AuditArgs) -> ExitCode {
    use forcebacklog::audit::{Options, Output, Scope};
    let scope = match (args.namespace, args.all_namespaces) {
        (_, true) => Scope::All,
        (Some(ns), false) => Scope::Namespace(ns),
        (None, false) => Scope::ContextNamespace,
    };
    let options = Options {
        scope,
        kubeconfig: args.kubeconfig,
        context: args.context,
        output: match args.output {
            AuditOutput::Table => Output::Table,
            AuditOutput::Json => Output::Json,
        },
    };
    match forcebacklog::audit::run(&options) {
        Ok(false) => ExitCode::SUCCESS,
        Ok(true) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("{}", error_line(&err));
            ExitCode::from(2)
        }
    }
}

/// A command-line error as one line on stderr and exit status 2;
/// `--help` and `--version` print as usual and succeed.
fn usage_error(err: &clap::Error) -> ExitCode {
    if !err.use_stderr() {
        // Help or version on stdout: if even that fails (a closed pipe),
        // there is nowhere left to report it.
        let _ = err.print();
        return ExitCode::SUCCESS;
    }
    let message = if err.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        let names: Vec<String> = Cli::command()
            .get_subcommands()
            .filter(|c| !c.is_hide_set())
            .map(|c| c.get_name().to_owned())
            .collect();
        format!("no command given: expected one of {}", names.join(", "))
    } else {
        first_paragraph(&err.to_string())
    };
    eprintln!("forcebacklog: {message} (see --help)");
    ExitCode::from(2)
}

/// The first paragraph of clap's message on one line, without `error:`
/// (it names the argument and the bad value; usage and tips follow). The
/// indented lines under it (missing arguments) become a comma list.
fn first_paragraph(text: &str) -> String {
    let text = text.trim_start();
    let text = text.strip_prefix("error:").unwrap_or(text);
    let mut lines = text
        .lines()
        .map(str::trim)
        .skip_while(|line| line.is_empty())
        .take_while(|line| !line.is_empty());
    let first = lines.next().unwrap_or_default();
    let rest: Vec<&str> = lines.collect();
    if rest.is_empty() {
        first.to_owned()
    } else {
        format!("{first} {}", rest.join(", "))
    }
}

fn serve(args: ServeArgs) -> Result<ExitCode, Box<dyn Error>> {
    forcebacklog::server::init_logging(
        &args.log_level,
        matches!(args.log_format, LogFormat::Json),
    )?;
    let config = forcebacklog::server::ServeConfig {
        addr: args.addr,
        admin_addr: args.admin_addr,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        inject: args.inject.into_config(),
        tuning: forcebacklog::server::Tuning {
            max_connections: usize::try_from(args.max_connections)?,
            shutdown_delay: args.shutdown_delay,
            ..forcebacklog::server::Tuning::default()
        },
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(forcebacklog::server::serve(config))?;
    Ok(ExitCode::SUCCESS)
}

fn sockets(args: &SocketsArgs) -> Result<ExitCode, Box<dyn Error>> {
    use forcebacklog::sockets::{Output, Target};
    let target = args.pid.map_or(Target::Current, Target::Pid);
    if let Some(addr) = args.serve {
        forcebacklog::sockets::serve(target, addr)?;
    } else {
        let output = match args.output {
            SocketsOutput::Text => Output::Text,
            SocketsOutput::Json => Output::Json,
        };
        let watch = args.watch.map(std::time::Duration::from_secs);
        forcebacklog::sockets::print(target, output, watch)?;
    }
    Ok(ExitCode::SUCCESS)
}
