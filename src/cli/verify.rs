//! `dashvault verify`: checks stored segments; changes nothing. Exit status:
//! 0 when nothing is damaged (states a power cut leaves, which recovery
//! resolves at the next start, are listed as pending), 1 when damage was
//! found, 2 when the check could not run.

use std::path::{Path, PathBuf};

use argh::FromArgs;

use crate::store::Store;

#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "verify")]
/// check stored recordings (presence, sizes, names, order; --deep: every
/// CRC). Exit status: 0 no damage, 1 damage found, 2 could not run
pub struct VerifyArgs {
    /// check every record's CRCs and that each index matches its segment
    #[argh(switch)]
    pub deep: bool,
    /// print one JSON object instead of text
    #[argh(switch)]
    pub json: bool,
    /// data folder (default: the config's data_dir)
    #[argh(option)]
    pub data_dir: Option<PathBuf>,
}

pub fn run(config_path: &Path, args: VerifyArgs) -> anyhow::Result<i32> {
    let explicit = args.data_dir.is_some();
    let data_dir = super::service::data_dir(config_path, args.data_dir);
    if !data_dir.is_dir() {
        // Nothing to check is not "no damage": most likely the wrong folder.
        let whose = if explicit {
            "given with --data-dir".to_string()
        } else if config_path.exists() {
            format!("the data_dir of {}", config_path.display())
        } else {
            format!(
                "the default, as there is no config at {}",
                config_path.display()
            )
        };
        eprintln!(
            "no data folder at {} ({whose}); give the recordings' folder with --data-dir, or the recorder's config with -c",
            data_dir.display()
        );
        return Ok(2);
    }
    let report = Store::on_disk(&data_dir).verify(args.deep)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{} ({}): {}",
            data_dir.display(),
            if args.deep { "deep" } else { "quick" },
            if report.ok { "OK" } else { "PROBLEMS FOUND" }
        );
        for c in &report.cameras {
            let positions = if c.positions > 0 {
                format!(", {} GPS positions", c.positions)
            } else {
                String::new()
            };
            println!(
                "  {}: {} segments, {} frames{positions}, {} bytes, {} bad records, {} .. {}",
                c.camera,
                c.segments,
                c.frames,
                c.bytes,
                c.bad_records,
                c.first_time.as_deref().unwrap_or("-"),
                c.last_time.as_deref().unwrap_or("-"),
            );
            for p in &c.pending {
                println!("    {}: pending recovery: {}", p.segment, p.note);
            }
            for n in &c.recovered {
                println!("    {}: recovered: {}", n.segment, n.note);
            }
            for p in &c.problems {
                let kind = serde_json::to_value(p.kind)?;
                println!(
                    "    {}: DAMAGE ({}): {}",
                    p.segment,
                    kind.as_str().unwrap_or("?"),
                    p.problem
                );
            }
        }
        if report.cameras.is_empty() {
            println!("  no recordings");
        }
    }
    Ok(if report.ok { 0 } else { 1 })
}
