//! `amt_ider`: boot an Intel AMT from a CD or floppy image over IDE-R.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use oobkit_io::ider::{Image, Images, Notice, ServeEnd, ServeOptions, serve};
use oobkit_io::redirection::open_session_with;
use oobkit_launch::{AmtArgs, resolve, say};
use oobkit_redir::IderStart;
use oobkit_redir::codec::SessionKind;
use oobkit_redir::el_torito::DiscPart;
use oobkit_redir::storage::{Answer, Drive};

/// Boot an Intel AMT from a CD or floppy image: the images are served over IDE-R (storage
/// redirection) and appear to the managed host as a CD-ROM and a floppy drive.
///
/// The images are read lazily as the host asks (a 4 GiB ISO is never loaded) and read-only
/// (the host's writes are refused as write protected). On a terminal a progress line shows the
/// bytes served, the rate and what the host is reading (boot catalog, boot image, data);
/// otherwise plain log lines. Many BIOSes boot from the redirected CD only when told to: set
/// the boot device first (`amt boot cd`), or start with --start on-reboot and power cycle.
///
/// Without --host, a simulated AMT runs in this process and its BIOS boots the image: it reads
/// the El Torito boot record, catalog and boot image, then samples of the disc, and prints what
/// it booted.
#[derive(Parser)]
#[command(
    version,
    after_help = "Examples:\n  amt_ider --cd debian.iso                      # try it on the simulated AMT\n  AMT_PASSWORD=... amt_ider -H 10.0.0.5 --cd debian.iso --floppy empty.img\n\nExit status: 0 when the session ended or the host went idle (--idle-exit), 1 on any failure."
)]
#[command(group(clap::ArgGroup::new("image").required(true).multiple(true).args(["cd", "floppy"])))]
struct Cli {
    #[command(flatten)]
    amt: AmtArgs,
    /// CD-ROM image (ISO 9660, 2048-byte blocks).
    #[arg(long, value_name = "IMAGE.iso")]
    cd: Option<PathBuf>,
    /// Floppy (or removable disk) image, 512-byte blocks.
    #[arg(long, value_name = "IMAGE.img")]
    floppy: Option<PathBuf>,
    /// When the host sees the drives: now, at its next reset, or once it is idle.
    #[arg(long, value_enum, default_value = "now")]
    start: StartArg,
    /// End once the host sent no drive command for SECS after its first (with the simulated
    /// AMT: default 3, once its BIOS has booted).
    #[arg(long, value_name = "SECS")]
    idle_exit: Option<u64>,
}

#[derive(Clone, Copy, ValueEnum)]
enum StartArg {
    Now,
    OnReboot,
    Graceful,
}

impl From<StartArg> for IderStart {
    fn from(start: StartArg) -> Self {
        match start {
            StartArg::Now => Self::Now,
            StartArg::OnReboot => Self::OnReboot,
            StartArg::Graceful => Self::Graceful,
        }
    }
}

/// Progress for a person (a live line on a terminal) or for a log (a line per change of what
/// the host reads, and one every few seconds during long reads).
struct Progress {
    bar: Option<ProgressBar>,
    served: u64,
    /// From the first byte served to the last: the rate leaves out the idle time around.
    serving: Option<(Instant, Instant)>,
    part: Option<(Drive, DiscPart)>,
    last_line: Instant,
}

/// How often a plain progress line is written during a long read.
const LOG_EVERY: Duration = Duration::from_secs(5);

impl Progress {
    fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} {bytes} served, {binary_bytes_per_sec}, {elapsed}: {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar.set_message("waiting for the host");
            bar
        });
        Self {
            bar,
            served: 0,
            serving: None,
            part: None,
            last_line: Instant::now(),
        }
    }

    fn rate(&self) -> String {
        let secs = self
            .serving
            .map_or(0.0, |(first, last)| (last - first).as_secs_f64())
            .max(1e-3);
        format!("{:.1} MiB/s", self.served as f64 / secs / 1_048_576.0)
    }

    fn notice(&mut self, notice: Notice<'_>) {
        match notice {
            Notice::Enabled => self.line("the device enabled the drives".into()),
            Notice::Device(what) => self.line(what.into()),
            Notice::Command(command, answer) => {
                let outcome = match answer {
                    Answer::Status(None) => "good".to_owned(),
                    Answer::Status(Some(sense)) => format!("CHECK CONDITION {sense}"),
                    Answer::Data(data) => format!("{} bytes", data.len()),
                    Answer::Read(plan) => format!("read {} bytes at {}", plan.len, plan.offset),
                };
                tracing::debug!(
                    "{}: {} -> {outcome}",
                    command.drive.name(),
                    command.describe()
                );
            }
            Notice::Served { drive, part, bytes } => {
                self.served += bytes as u64;
                let now_at = Instant::now();
                self.serving = Some((self.serving.map_or(now_at, |(first, _)| first), now_at));
                let now = (drive, part);
                let changed = self.part != Some(now);
                self.part = Some(now);
                let what = format!("the host reads the {}'s {}", drive.name(), part.describe());
                match &self.bar {
                    Some(bar) => {
                        bar.set_position(self.served);
                        if changed {
                            bar.set_message(what);
                        }
                    }
                    None if changed || self.last_line.elapsed() >= LOG_EVERY => {
                        self.last_line = Instant::now();
                        tracing::info!("{what}: {} bytes served, {}", self.served, self.rate());
                    }
                    None => {}
                }
            }
            _ => {}
        }
    }

    fn line(&self, line: String) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => tracing::info!("{line}"),
        }
    }

    fn finish(&self) -> String {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        format!("{} bytes served ({})", self.served, self.rate())
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    // Images first: a missing or useless image is refused before anything connects.
    let images = Images {
        cd: cli
            .cd
            .as_deref()
            .map(|p| Image::open(p, Drive::Cdrom))
            .transpose()
            .map_err(|e| e.to_string())?,
        floppy: cli
            .floppy
            .as_deref()
            .map(|p| Image::open(p, Drive::Floppy))
            .transpose()
            .map_err(|e| e.to_string())?,
    };
    if let Some(cd) = &images.cd {
        let layout = cd.layout();
        match layout.image {
            Some((start, end)) => say(&format!(
                "CD image: {} bytes, El Torito boot image in blocks {start}..{end}",
                cd.len()
            )),
            None => say(&format!(
                "CD image: {} bytes, not bootable (no El Torito boot record); served anyway",
                cd.len()
            )),
        }
    }
    #[cfg(feature = "simulator")]
    let (target, simulator) = resolve(&cli.amt, async |transport| {
        amt_sim::Simulator::start_for_launcher(transport, |_| {}).await
    })
    .await?;
    #[cfg(not(feature = "simulator"))]
    let (target, simulator) = resolve(&cli.amt, async |_| {
        Err::<(_, ()), _>("built without the simulator: name an AMT with --host".to_owned())
    })
    .await?;
    let idle_exit = cli
        .idle_exit
        .or(simulator.is_some().then_some(3))
        .map(Duration::from_secs);
    let start = IderStart::from(cli.start);
    let mut session = open_session_with(&target, SessionKind::Ider, |c| c.ider_start = start)
        .await
        .map_err(|e| format!("cannot open the IDE-R session: {e}"))?;
    say(&format!(
        "IDE-R session open on {}; serving {}",
        target.endpoint.authority(),
        [("CD", &cli.cd), ("floppy", &cli.floppy)]
            .iter()
            .filter_map(|(what, path)| path.as_ref().map(|p| format!("{what} {}", p.display())))
            .collect::<Vec<_>>()
            .join(" and ")
    ));
    let mut progress = Progress::new();
    let options = ServeOptions { idle_exit };
    let served = serve(&mut session, &images, &options, |n| progress.notice(n)).await;
    let summary = progress.finish();
    match served {
        Ok(ServeEnd::Idle) => {
            say(&format!(
                "the host went idle; ending the session. {summary}"
            ));
            session.end().await;
        }
        Ok(ServeEnd::Closed(reason)) => say(&format!("IDE-R session ended: {reason}. {summary}")),
        Ok(end) => say(&format!("IDE-R session ended: {end:?}. {summary}")),
        Err(e) => {
            session.end().await;
            return Err(format!("{e}. {summary}"));
        }
    }
    #[cfg(feature = "simulator")]
    if let Some(simulator) = simulator {
        for report in simulator.ider_boots() {
            say(&format!("the simulated AMT's BIOS: {report}"));
        }
    }
    #[cfg(not(feature = "simulator"))]
    let _ = simulator;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    oobkit_io::init_logging("info");
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("amt_ider: {e}");
            ExitCode::FAILURE
        }
    }
}
