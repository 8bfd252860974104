//! `dashvault config check`: validate a config file without recording.

use std::path::Path;

use argh::FromArgs;

#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "config")]
/// configuration tools
pub struct ConfigArgs {
    #[argh(subcommand)]
    pub action: ConfigAction,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
pub enum ConfigAction {
    Check(CheckArgs),
}

#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "check")]
/// validate the config file and report every problem
pub struct CheckArgs {}

pub fn run(config_path: &Path, args: ConfigArgs) -> anyhow::Result<i32> {
    let ConfigAction::Check(CheckArgs {}) = args.action;
    match crate::config::check(config_path) {
        Ok(loaded) => {
            let enabled = loaded.config.cameras.iter().filter(|c| c.enabled).count();
            println!(
                "{}: OK ({} camera(s), {} enabled{})",
                config_path.display(),
                loaded.config.cameras.len(),
                enabled,
                if loaded.migrated_legacy {
                    "; legacy single-camera form, migrated when `run` starts"
                } else {
                    ""
                }
            );
            Ok(0)
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(1)
        }
    }
}
