//! `jinbao-tui`: the NOC dashboard. Connects to the controller's admin API with an operator
//! certificate and shows link health, alerts, conferences, the last audit and certificate
//! expiry, refreshed every second. `?` in the dashboard lists the keys.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;
use tui::config::{self, FASTEST, Settings};
use tui::feed::Names;
use tui::theme::Theme;

/// Jinbao WAN NOC dashboard (金保工程 secure WAN).
#[derive(Debug, Parser)]
#[command(name = "jinbao-tui", version, about, long_about = None)]
struct Cli {
    /// The controller's admin API (address:port).
    #[arg(long, env = "JINBAO_CONTROLLER", value_name = "ADDR")]
    controller: SocketAddr,
    /// The root CA certificate the controller's certificate chains to.
    #[arg(long, env = "JINBAO_CA", value_name = "PEM")]
    ca: PathBuf,
    /// Your operator certificate (chain), from `jinbao-controller cert issue`.
    #[arg(long, env = "JINBAO_CERT", value_name = "PEM")]
    cert: PathBuf,
    /// Your operator key, from `jinbao-controller cert request`.
    #[arg(long, env = "JINBAO_KEY", value_name = "PEM")]
    key: PathBuf,
    /// How often to refresh (at least 100ms); overrides the config file.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    refresh: Option<Duration>,
    /// The config file (keys, colours, refresh, hidden columns); default
    /// ~/.config/jinbao/tui.toml when it exists.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// No colour (as NO_COLOR does): states still read by glyph and word.
    #[arg(long)]
    no_color: bool,
}

fn settings(cli: &Cli) -> Result<Settings> {
    let default_file = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))
        .map(|dir| dir.join("jinbao/tui.toml"))
        .filter(|path| path.exists());
    let mut settings = match cli.config.as_ref().or(default_file.as_ref()) {
        Some(path) => config::load(path)?,
        None => Settings::defaults(),
    };
    if let Some(refresh) = cli.refresh {
        if refresh < FASTEST {
            bail!("--refresh {refresh:?} is faster than the fastest allowed ({FASTEST:?})");
        }
        settings.refresh = refresh;
    }
    if cli.no_color {
        settings.theme = Theme::new(false);
    }
    Ok(settings)
}

fn run(cli: &Cli) -> Result<()> {
    let settings = settings(cli)?;
    let session = tui::client::connect(cli.controller, &cli.ca, &cli.cert, &cli.key)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("tokio runtime")?;
    tui::dashboard::run(runtime.handle(), session, settings, Names::national())
        .context("the terminal")?;
    Ok(())
}

fn main() -> ExitCode {
    // Logs would tear the screen: only to a file, when asked (JINBAO_TUI_LOG=path).
    if let Some(path) = std::env::var_os("JINBAO_TUI_LOG")
        && let Ok(file) = std::fs::File::create(path)
    {
        tracing_subscriber::fmt()
            .with_writer(std::sync::Mutex::new(file))
            .with_ansi(false)
            .init();
    }
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
