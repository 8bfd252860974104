//! `dashvault export`: writes stored footage of one camera as an `.mp4`,
//! the same bytes the HTTP export serves. Reads the store; changes nothing
//! in it. Exit status: 0 written whole (also when a reader of standard
//! output stops reading, as `| head` does), 1 no footage in the range, 2
//! error (an unknown camera included), 3 written, but damaged or unreadable
//! footage was left out (each span is named on stderr and in the text
//! track).
//!
//! With `--share` it writes a share clip instead: H.264 at a chosen size
//! and quality (`share::clip`), same range options and exit statuses; with
//! `--gpx`, the range's GPS track as GPX 1.1 (`export::gpx`).

use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use argh::FromArgs;

use crate::clock::{format_rfc3339, parse_rfc3339};
use crate::config::SpeedUnit;
use crate::export::gpx::GpxExport;
use crate::export::{range_file_name, ExportError, ExportOptions, Mp4Export};
use crate::share::clip::{
    best_encoder, write_clip, ClipProgress, Quality, ShareError, ShareOptions,
};
use crate::share::encoder::EncoderSettings;
use crate::share::picture::ShareSize;
use crate::store::sidecar::{self, Readers};
use crate::store::Store;

/// Output buffer: large writes keep the copy loop cheap.
const OUTPUT_BUFFER_BYTES: usize = 1 << 20;
/// Exit status when the export was written with footage left out.
pub const EXIT_LEFT_OUT: i32 = 3;
/// How often the progress line is redrawn.
const PROGRESS_INTERVAL_MS: u64 = 200;

#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "export")]
/// write stored footage of one camera as an .mp4 (nothing is re-encoded),
/// or its GPS track as GPX (--gpx). Exit status: 0 written whole, 1 no
/// footage (or no GPS position) in the range, 2 error (an unknown camera
/// included), 3 written with damaged footage left out (named on stderr)
pub struct ExportArgs {
    /// camera id (default: the first camera with recordings)
    #[argh(option)]
    pub camera: Option<String>,
    /// start of the range in UTC, ending in Z, e.g. 2026-11-20T10:00:00Z
    #[argh(option)]
    pub from: Option<String>,
    /// end of the range (excluded), in UTC like --from
    #[argh(option)]
    pub to: Option<String>,
    /// the last DURATION (e.g. 90s, 5m, 2h), ending at --to or else
    /// at the newest stored frame
    #[argh(option)]
    pub last: Option<String>,
    /// output file, or - for standard output (default:
    /// <camera>_<from>_<to>.mp4 in the working folder)
    #[argh(option, short = 'o')]
    pub output: Option<String>,
    /// leave out the text track that shows the capture time (and the GPS
    /// speed and position)
    #[argh(switch)]
    pub no_time_track: bool,
    /// data folder (default: the config's data_dir)
    #[argh(option)]
    pub data_dir: Option<PathBuf>,
    /// write a share clip: H.264 that phones, browsers and messengers
    /// play, instead of the lossless Motion JPEG
    #[argh(switch)]
    pub share: bool,
    /// share clip height in lines: 480, 720 (default) or 1080; never
    /// more than the footage has
    #[argh(option)]
    pub size: Option<String>,
    /// share clip quality: small, standard (default) or high
    #[argh(option)]
    pub quality: Option<String>,
    /// write the GPS track of the range as GPX 1.1 instead (exit status 1
    /// when the range has no positions)
    #[argh(switch)]
    pub gpx: bool,
}

pub fn run(config_path: &Path, args: ExportArgs) -> anyhow::Result<i32> {
    let data_dir = super::service::data_dir(config_path, args.data_dir.clone());
    let store = Store::on_disk(&data_dir);
    let camera = match &args.camera {
        Some(c) => {
            let known = store.cameras()?;
            if !known.contains(c) {
                bail!(
                    "no camera '{c}' in {}: it has {}",
                    data_dir.display(),
                    if known.is_empty() {
                        "no recordings".to_string()
                    } else {
                        known.join(", ")
                    }
                );
            }
            c.clone()
        }
        None => match store.first_camera_with_recordings()? {
            Some(c) => c,
            None => {
                eprintln!("no recordings in {}", data_dir.display());
                return Ok(1);
            }
        },
    };
    let Some((from_ns, to_ns)) = time_range(&store, &camera, &args)? else {
        eprintln!("no footage of camera '{camera}' in {}", data_dir.display());
        return Ok(1);
    };
    if args.gpx {
        if args.share || args.size.is_some() || args.quality.is_some() || args.no_time_track {
            bail!("--gpx writes the GPS track only: leave out --share, --size, --quality and --no-time-track");
        }
        return run_gpx(&store, &camera, from_ns, to_ns, args.output);
    }
    if args.share {
        let speed_unit = super::service::speed_unit(config_path);
        return run_share(&store, &camera, from_ns, to_ns, speed_unit, &args);
    }
    if args.size.is_some() || args.quality.is_some() {
        bail!("--size and --quality are for share clips: add --share");
    }
    let options = ExportOptions {
        time_track: !args.no_time_track,
        speed_unit: super::service::speed_unit(config_path),
    };
    let export = match Mp4Export::open(&store, &camera, from_ns, to_ns, options) {
        Ok(e) => e,
        Err(e @ ExportError::NoFootage { .. }) => {
            eprintln!("{e}");
            return Ok(1);
        }
        Err(e) => return Err(e.into()),
    };
    let output = args.output.unwrap_or_else(|| export.file_name());
    let shown = if output == "-" {
        "standard output".to_string()
    } else {
        output.clone()
    };
    if output == "-" {
        let stdout = std::io::stdout();
        if stdout.is_terminal() {
            bail!("standard output is a terminal; give a file with -o FILE or redirect it");
        }
        let mut w = Progress::new(
            BufWriter::with_capacity(OUTPUT_BUFFER_BYTES, stdout.lock()),
            export.len(),
        );
        let written = export
            .write_range(0, export.len(), &mut w)
            .map_err(anyhow::Error::from)
            .and_then(|()| w.finish().map(drop).map_err(anyhow::Error::from));
        match written {
            // The reader had what it wanted (ffprobe, `| head`): not an error.
            Err(e) if is_broken_pipe(&e) => return Ok(0),
            other => other?,
        }
    } else {
        write_file(&export, Path::new(&output))?;
    }
    eprintln!(
        "wrote {} frames of '{camera}', {:.1} s from {}, {:.1} MB, to {shown}",
        export.frame_count(),
        export.duration_ns() as f64 / 1e9,
        format_rfc3339(export.first_last_wall_ns().0),
        export.len() as f64 / 1e6,
    );
    Ok(report_left_out(&export))
}

/// `--gpx`: the range's GPS track as GPX 1.1.
fn run_gpx(
    store: &Store,
    camera: &str,
    from_ns: i64,
    to_ns: i64,
    output: Option<String>,
) -> anyhow::Result<i32> {
    let gpx = match GpxExport::open(store, camera, from_ns, to_ns) {
        Ok(g) => g,
        Err(e @ ExportError::NoPositions { .. }) => {
            eprintln!("{e}");
            return Ok(1);
        }
        Err(e) => return Err(e.into()),
    };
    for problem in gpx.problems() {
        eprintln!("left out: {problem}");
    }
    let output = output.unwrap_or_else(|| gpx.file_name());
    if output == "-" {
        let mut out = BufWriter::new(std::io::stdout().lock());
        let written = gpx
            .write(&mut out)
            .map_err(anyhow::Error::from)
            .and_then(|()| out.flush().map_err(anyhow::Error::from));
        match written {
            Err(e) if is_broken_pipe(&e) => return Ok(0),
            other => other?,
        }
    } else {
        let path = Path::new(&output);
        if path.file_name().is_none() {
            bail!("{} is not a file name", path.display());
        }
        sidecar::replace_file(path, Readers::Group, |out| {
            let mut w = BufWriter::new(out);
            gpx.write(&mut w).map_err(std::io::Error::other)?;
            w.into_inner().map_err(|e| e.into_error())?;
            Ok(())
        })
        .with_context(|| format!("writing {}", path.display()))?;
    }
    eprintln!(
        "wrote {} GPS positions of '{camera}', {:.1} kB, to {}",
        gpx.points(),
        gpx.len() as f64 / 1e3,
        if output == "-" {
            "standard output"
        } else {
            &output
        }
    );
    Ok(if gpx.problems().is_empty() {
        0
    } else {
        EXIT_LEFT_OUT
    })
}

/// `--share`: encodes the range as an H.264 share clip into a file.
fn run_share(
    store: &Store,
    camera: &str,
    from_ns: i64,
    to_ns: i64,
    speed_unit: SpeedUnit,
    args: &ExportArgs,
) -> anyhow::Result<i32> {
    let size = match &args.size {
        None => ShareOptions::default().size,
        Some(s) => ShareSize::parse(s).ok_or_else(|| {
            anyhow!(
                "--size: '{s}' is not a share clip size; use {}",
                ShareSize::ACCEPTED
            )
        })?,
    };
    let quality = match &args.quality {
        None => ShareOptions::default().quality,
        Some(q) => Quality::parse(q).ok_or_else(|| {
            anyhow!(
                "--quality: '{q}' is not a preset; use {}",
                Quality::ACCEPTED
            )
        })?,
    };
    if args.no_time_track {
        bail!("--no-time-track is for the lossless export; a share clip always has its time track");
    }
    let output = match &args.output {
        Some(o) if o == "-" => bail!("a share clip is written to a file: give -o FILE"),
        Some(o) => o.clone(),
        None => range_file_name(camera, from_ns, to_ns, &format!("_{}p.mp4", size.lines())),
    };
    let show = std::io::stderr().is_terminal();
    let mut encoding_since: Option<Instant> = None;
    let mut last_draw: Option<Instant> = None;
    let mut progress = |p: ClipProgress| {
        let (done, total) = (p.encoded, p.total);
        if done > 0 {
            encoding_since.get_or_insert_with(Instant::now);
        }
        if show
            && (done == total
                || last_draw
                    .is_none_or(|t| t.elapsed() >= Duration::from_millis(PROGRESS_INTERVAL_MS)))
        {
            if done == 0 {
                eprint!("\rchecking {} / {total} frames ", p.checked);
            } else {
                let secs = encoding_since
                    .map_or(0.0, |t| t.elapsed().as_secs_f64())
                    .max(1e-3);
                let rate = done as f64 / secs;
                let left = total.saturating_sub(done) as f64 / rate.max(1e-3);
                eprint!("\r{done} / {total} frames  {rate:.0} frames/s  {left:.0} s left    ");
            }
            last_draw = Some(Instant::now());
        }
        true
    };
    let make_encoder = |settings: EncoderSettings| {
        let encoder = best_encoder(settings)?;
        log::info!(
            "share clip of '{camera}': {}x{} at {} kbit/s with the {} encoder",
            settings.width,
            settings.height,
            settings.bitrate_bps / 1000,
            encoder.name()
        );
        Ok(encoder)
    };
    let result = write_clip(
        store,
        camera,
        from_ns,
        to_ns,
        ShareOptions {
            size,
            quality,
            speed_unit,
        },
        Path::new(&output),
        &make_encoder,
        &mut progress,
    );
    if show {
        eprintln!();
    }
    let report = match result {
        Ok(r) => r,
        Err(ShareError::Range(e @ ExportError::NoFootage { .. })) => {
            eprintln!("{e}");
            return Ok(1);
        }
        Err(e) => return Err(e.into()),
    };
    eprintln!(
        "wrote a {}x{} share clip ({} encoder) of {} frames of '{camera}', {:.1} s from {}, {:.1} MB, to {output}",
        report.width,
        report.height,
        report.encoder,
        report.frames,
        report.duration_ns as f64 / 1e9,
        format_rfc3339(report.start_wall_ns),
        report.bytes as f64 / 1e6,
    );
    for p in &report.problems {
        eprintln!("left out: unreadable segment: {p}");
    }
    for s in &report.skipped {
        eprintln!("left out: {s}, near {}", format_rfc3339(s.wall_ns));
    }
    for u in &report.undecodable {
        eprintln!("held the previous picture: {u}");
    }
    if report.problems.is_empty() && report.skipped.is_empty() && report.undecodable.is_empty() {
        Ok(0)
    } else {
        eprintln!("the share clip is incomplete: footage was left out (named above)");
        Ok(EXIT_LEFT_OUT)
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    let broken = |io: &std::io::Error| io.kind() == std::io::ErrorKind::BrokenPipe;
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(broken)
            || matches!(c.downcast_ref::<ExportError>(), Some(ExportError::Io(io)) if broken(io))
    })
}

/// Names on stderr what the export left out; the exit status says whether
/// anything was (3) or not (0).
fn report_left_out(export: &Mp4Export) -> i32 {
    for p in export.problems() {
        eprintln!("left out: unreadable segment: {p}");
    }
    for s in export.skipped() {
        eprintln!("left out: {s}, near {}", format_rfc3339(s.wall_ns));
    }
    if export.problems().is_empty() && export.skipped().is_empty() {
        0
    } else {
        let frames: u64 = export.skipped().iter().map(|s| s.frames).sum();
        eprintln!(
            "the export is incomplete: {frames} frame(s) and {} unreadable segment(s) left out",
            export.problems().len()
        );
        EXIT_LEFT_OUT
    }
}

/// Writes through the store's one way of replacing a file (temporary name,
/// sync, rename, sync the folder), so `path` never holds a partial file.
fn write_file(export: &Mp4Export, path: &Path) -> anyhow::Result<()> {
    if path.file_name().is_none() {
        bail!("{} is not a file name", path.display());
    }
    sidecar::replace_file(path, Readers::Group, |out| {
        let mut w = Progress::new(
            BufWriter::with_capacity(OUTPUT_BUFFER_BYTES, out),
            export.len(),
        );
        export
            .write_range(0, export.len(), &mut w)
            .map_err(std::io::Error::other)?;
        w.finish()?.into_inner().map_err(|e| e.into_error())?;
        Ok(())
    })
    .with_context(|| format!("writing {}", path.display()))
}

/// `[from, to)` in wall ns from the arguments; `None` when `--last` needs
/// the newest frame and the camera has none.
fn time_range(
    store: &Store,
    camera: &str,
    args: &ExportArgs,
) -> anyhow::Result<Option<(i64, i64)>> {
    let parse = |s: &str, what: &str| parse_rfc3339(s).map_err(|e| anyhow!("--{what}: {e}"));
    match (&args.from, &args.to, &args.last) {
        (Some(from), Some(to), None) => Ok(Some((parse(from, "from")?, parse(to, "to")?))),
        (None, to, Some(last)) => {
            let d = parse_last(last)?;
            let to_ns = match to {
                Some(to) => parse(to, "to")?,
                None => match store.newest_frame_wall_ns(camera)? {
                    Some(newest) => newest + 1,
                    None => return Ok(None),
                },
            };
            let span = i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
            Ok(Some((to_ns.saturating_sub(span), to_ns)))
        }
        _ => bail!("give --from and --to, or --last (optionally with --to)"),
    }
}

/// `--last`: a duration with its unit. humantime's own message for a bare
/// number suggests units ("5sec or 5ms") unlike the ones the help shows.
fn parse_last(last: &str) -> anyhow::Result<Duration> {
    let t = last.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        bail!("--last: '{last}' has no unit; write e.g. {t}s, {t}m or {t}h");
    }
    match humantime::parse_duration(t) {
        Ok(d) if d.is_zero() => bail!("--last: '{last}' is no time at all"),
        Ok(d) => Ok(d),
        Err(_) => bail!("--last: '{last}' is not a duration like 90s, 5m, 2h or 1h30m"),
    }
}

/// Counts bytes through to `inner` and, when stderr is a terminal, redraws
/// a one-line progress report there.
struct Progress<W: Write> {
    inner: W,
    total: u64,
    done: u64,
    started: Instant,
    last_draw: Option<Instant>,
    show: bool,
}

impl<W: Write> Progress<W> {
    fn new(inner: W, total: u64) -> Progress<W> {
        Progress {
            inner,
            total,
            done: 0,
            started: Instant::now(),
            last_draw: None,
            show: std::io::stderr().is_terminal(),
        }
    }

    fn draw(&mut self) {
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let pct = if self.total == 0 {
            100.0
        } else {
            self.done as f64 * 100.0 / self.total as f64
        };
        eprint!(
            "\r{pct:5.1}%  {:.1} / {:.1} MB  {:.1} MB/s ",
            self.done as f64 / 1e6,
            self.total as f64 / 1e6,
            self.done as f64 / 1e6 / secs
        );
        self.last_draw = Some(Instant::now());
    }

    fn finish(mut self) -> std::io::Result<W> {
        self.inner.flush()?;
        if self.show {
            self.draw();
            eprintln!();
        }
        Ok(self.inner)
    }
}

impl<W: Write> Write for Progress<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.done += n as u64;
        if self.show
            && self
                .last_draw
                .is_none_or(|t| t.elapsed() >= Duration::from_millis(PROGRESS_INTERVAL_MS))
        {
            self.draw();
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
