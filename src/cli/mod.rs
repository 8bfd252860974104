//! Command-line interface: one module per subcommand. `main.rs` parses the
//! arguments into [`Command`] and calls [`dispatch`].

pub mod cameras;
pub mod config_check;
pub mod export;
pub mod gps;
pub mod lock;
pub mod run;
pub mod service;
pub mod status;
pub mod token;
pub mod verify;

use std::path::PathBuf;

use argh::FromArgs;

/// Default config file, relative to the working folder.
pub const DEFAULT_CONFIG_PATH: &str = "dashvault.json";

#[derive(FromArgs, Debug)]
/// dashvault: a dash cam recorder whose footage survives power cuts. Each
/// command's --help gives its exit statuses; 2 is always "could not run".
pub struct Cli {
    /// config file (default: $DASHVAULT_CONFIG or ./dashvault.json)
    #[argh(option, short = 'c')]
    pub config: Option<PathBuf>,
    /// print the version and exit
    #[argh(switch, short = 'V')]
    pub version: bool,
    #[argh(subcommand)]
    pub command: Option<Command>,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
pub enum Command {
    Run(run::RunArgs),
    Verify(verify::VerifyArgs),
    Status(status::StatusArgs),
    Export(export::ExportArgs),
    Config(config_check::ConfigArgs),
    Lock(lock::LockArgs),
    Cameras(cameras::CamerasArgs),
    Token(token::TokenArgs),
    Gps(gps::GpsArgs),
}

/// Runs a command; returns the process exit code.
pub fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    let config_path = cli
        .config
        .or_else(|| std::env::var_os("DASHVAULT_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH));
    let Some(command) = cli.command else {
        if cli.version {
            println!("dashvault {}", env!("CARGO_PKG_VERSION"));
            return Ok(0);
        }
        eprintln!("no command given; `dashvault --help` lists them");
        return Ok(2);
    };
    raise_open_file_limit();
    match command {
        Command::Run(args) => run::run(&config_path, args),
        Command::Verify(args) => verify::run(&config_path, args),
        Command::Status(args) => status::run(&config_path, args),
        Command::Export(args) => export::run(&config_path, args),
        Command::Config(args) => config_check::run(&config_path, args),
        Command::Lock(args) => lock::run(&config_path, args),
        Command::Cameras(args) => cameras::run(&config_path, args),
        Command::Token(args) => token::run(&config_path, args),
        Command::Gps(args) => gps::run(&config_path, args),
    }
}

/// Long exports and timelines keep one descriptor per segment open (so
/// retention cannot pull a file from under a download); the soft limit of
/// 1024 is too low for a day of one-minute segments, so take the hard limit.
fn raise_open_file_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write `lim`.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                log::debug!("cannot raise the open-file limit");
            }
        }
    }
}
