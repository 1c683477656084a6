//! The simulated host's BIOS booting from the IDE-R drives, sans-IO.
//!
//! Once a console enabled the redirected drives, the simulated AMT behaves as a BIOS that was
//! told to boot from them: it asks the CD-ROM whether it is ready (retrying the "medium
//! changed" report a drive gives first), reads the capacity, the El Torito boot record (block
//! 17) and boot catalog, then the boot image and a sample of blocks spread over the disc; with
//! no CD it boots the floppy's first sector. Every byte read is hashed per region (SHA-256),
//! so tests compare what the device read with the image file.
//!
//! Each step is one drive command (`0x50`); the console's completions and read data come back
//! through [`Bios::handle`], which answers with the next command or the finished
//! [`BootReport`]. A console that sends more data than was asked for, data for no command, or
//! a short read ends the boot with a [`BiosError`].

use oobkit_redir::codec::IderCommand;
use oobkit_redir::el_torito::{BOOT_RECORD_LBA, BootEntry, BootRecord};
use oobkit_redir::storage::{
    CommandWritten, Drive, Sense, command_end_sense, data_to_host_payload,
};
use sha2::{Digest, Sha256};

/// How much the BIOS reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadScope {
    /// What booting takes, then `samples` single blocks spread from the first to the last.
    Boot {
        /// Sample blocks after the boot image.
        samples: u32,
    },
    /// What booting takes, then every block of the medium in order (as an installer copying
    /// the whole disc would).
    Everything,
}

/// Bytes per read command: 64 KiB, what BIOSes and most drivers ask for at most.
const READ_BYTES: u64 = 64 * 1024;

/// Attempts of TEST UNIT READY while the drive reports the medium change.
const READY_TRIES: u32 = 3;

/// What part of the medium a read was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Part {
    /// The El Torito boot record (block 17).
    BootRecord,
    /// The first block of the boot catalog.
    Catalog,
    /// The boot image the catalog names.
    BootImage,
    /// The floppy's boot sector (block 0).
    BootSector,
    /// A sample block.
    Sample,
    /// The whole medium, in order.
    Whole,
}

/// A region the BIOS read, and the SHA-256 of its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    /// What it was for.
    pub part: Part,
    /// First block.
    pub lba: u64,
    /// Blocks read.
    pub blocks: u64,
    /// SHA-256 of the bytes, as read.
    pub sha256: [u8; 32],
}

/// What the BIOS found to boot.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Boot {
    /// A CD with an El Torito default entry.
    ElTorito(BootEntry),
    /// A floppy whose first sector ends with the 55 AA signature.
    BootSector,
    /// A medium that is there but not bootable, and why.
    NotBootable(String),
    /// Neither drive had a medium.
    NoMedium,
}

/// Everything the BIOS did, for the log and for tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootReport {
    /// The drive booted from (`None` when neither had a medium).
    pub drive: Option<Drive>,
    /// The medium's blocks.
    pub blocks: u64,
    /// Its block size.
    pub block_size: u32,
    /// The outcome.
    pub boot: Boot,
    /// The regions read, in order.
    pub regions: Vec<Region>,
    /// Drive commands sent.
    pub commands: u32,
    /// Bytes of read data received.
    pub bytes: u64,
}

impl std::fmt::Display for BootReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Some(drive) = self.drive else {
            return write!(
                f,
                "nothing to boot: no medium in the CD-ROM or floppy drive"
            );
        };
        write!(
            f,
            "{} of {} blocks of {} bytes: ",
            drive.name(),
            self.blocks,
            self.block_size
        )?;
        match &self.boot {
            Boot::ElTorito(entry) => write!(
                f,
                "booted El Torito {:?} image of {} sectors at block {}",
                entry.emulation, entry.sectors, entry.load_rba
            )?,
            Boot::BootSector => write!(f, "booted the boot sector")?,
            Boot::NotBootable(why) => write!(f, "not bootable ({why})")?,
            Boot::NoMedium => write!(f, "no medium")?,
        }
        write!(f, "; {} commands, {} bytes read", self.commands, self.bytes)?;
        for region in &self.regions {
            write!(
                f,
                "; {:?} {}+{} sha256 {}",
                region.part,
                region.lba,
                region.blocks,
                hex(&region.sha256)
            )?;
        }
        Ok(())
    }
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why the boot could not go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BiosError {
    /// The console sent read data while no read was outstanding, or more than was asked for.
    #[error("the console sent {got} bytes of data for a command that asked for {asked}")]
    TooMuchData {
        /// Bytes received for the command.
        got: u64,
        /// Bytes asked for.
        asked: u64,
    },
    /// The console completed a read with fewer bytes than asked for.
    #[error("the console completed a read of {asked} bytes after {got}")]
    ShortRead {
        /// Bytes received.
        got: u64,
        /// Bytes asked for.
        asked: u64,
    },
    /// A command failed where a drive must succeed.
    #[error("{what} failed with sense {sense}")]
    CommandFailed {
        /// The step.
        what: &'static str,
        /// The sense the console reported.
        sense: Sense,
    },
    /// The drive answered something unusable.
    #[error("{0}")]
    BadReply(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Ready { drive: Drive, tries: u32 },
    Capacity,
    Read { part: Part, next: u64, end: u64 },
    Done,
}

/// The BIOS: one drive command at a time.
#[derive(Debug)]
pub struct Bios {
    scope: ReadScope,
    stage: Stage,
    drive: Drive,
    /// Bytes the outstanding command asked for, and received so far.
    asked: u64,
    got: u64,
    /// The data of a structure being read (boot record, catalog, boot sector: one block).
    structure: Vec<u8>,
    hasher: Sha256,
    region_start: u64,
    report: BootReport,
    /// Sample blocks still to read.
    samples: std::vec::IntoIter<u64>,
}

/// What the BIOS does next.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BiosStep {
    /// Send this command (0x50).
    Send(CommandWritten),
    /// Nothing to send until the console's next message.
    Wait,
    /// The boot is over.
    Done(BootReport),
}

fn read_command(drive: Drive, lba: u64, blocks: u64) -> CommandWritten {
    let lba = u32::try_from(lba).unwrap_or(u32::MAX).to_be_bytes();
    let count = u16::try_from(blocks).unwrap_or(u16::MAX).to_be_bytes();
    CommandWritten::packet(
        drive,
        [
            0x28, 0, lba[0], lba[1], lba[2], lba[3], 0, count[0], count[1], 0, 0, 0,
        ],
    )
}

impl Bios {
    /// A BIOS about to boot; send the returned command first.
    pub fn start(scope: ReadScope) -> (Self, CommandWritten) {
        let bios = Self {
            scope,
            stage: Stage::Ready {
                drive: Drive::Cdrom,
                tries: 0,
            },
            drive: Drive::Cdrom,
            asked: 0,
            got: 0,
            structure: Vec::new(),
            hasher: Sha256::new(),
            region_start: 0,
            report: BootReport {
                drive: None,
                blocks: 0,
                block_size: 0,
                boot: Boot::NoMedium,
                regions: Vec::new(),
                commands: 1,
                bytes: 0,
            },
            samples: Vec::new().into_iter(),
        };
        let first = CommandWritten::packet(Drive::Cdrom, [0; 12]);
        (bios, first)
    }

    /// A message from the console; the next step.
    pub fn handle(
        &mut self,
        command: IderCommand,
        attributes: u8,
        body: &[u8],
    ) -> Result<BiosStep, BiosError> {
        let bad = |e: oobkit_redir::storage::StorageError| BiosError::BadReply(e.to_string());
        match command {
            IderCommand::DataToHost => {
                let data = data_to_host_payload(body).map_err(bad)?;
                self.got += data.len() as u64;
                if self.got > self.asked {
                    return Err(BiosError::TooMuchData {
                        got: self.got,
                        asked: self.asked,
                    });
                }
                self.take(data);
                if attributes & 2 == 0 {
                    return Ok(BiosStep::Wait);
                }
                if self.got < self.asked {
                    return Err(BiosError::ShortRead {
                        got: self.got,
                        asked: self.asked,
                    });
                }
                self.completed(None)
            }
            IderCommand::CommandEndResponse => {
                let sense = command_end_sense(body).map_err(bad)?;
                if sense.is_none() && self.got < self.asked {
                    return Err(BiosError::ShortRead {
                        got: self.got,
                        asked: self.asked,
                    });
                }
                self.completed(sense)
            }
            _ => Ok(BiosStep::Wait),
        }
    }

    /// Read data of the outstanding command.
    fn take(&mut self, data: &[u8]) {
        self.report.bytes += data.len() as u64;
        match self.stage {
            Stage::Capacity => self.structure.extend_from_slice(data),
            Stage::Read { part, .. } => {
                self.hasher.update(data);
                if matches!(part, Part::BootRecord | Part::Catalog | Part::BootSector) {
                    self.structure.extend_from_slice(data);
                }
            }
            Stage::Ready { .. } | Stage::Done => {}
        }
    }

    fn send(&mut self, command: CommandWritten, asked: u64) -> Result<BiosStep, BiosError> {
        self.asked = asked;
        self.got = 0;
        self.report.commands += 1;
        Ok(BiosStep::Send(command))
    }

    fn completed(&mut self, sense: Option<Sense>) -> Result<BiosStep, BiosError> {
        match self.stage {
            Stage::Ready { drive, tries } => match sense {
                None => {
                    self.drive = drive;
                    self.report.drive = Some(drive);
                    self.stage = Stage::Capacity;
                    self.structure.clear();
                    self.send(
                        CommandWritten::packet(drive, [0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
                        8,
                    )
                }
                Some(Sense::MEDIUM_CHANGED) if tries + 1 < READY_TRIES => {
                    self.stage = Stage::Ready {
                        drive,
                        tries: tries + 1,
                    };
                    self.send(CommandWritten::packet(drive, [0; 12]), 0)
                }
                Some(Sense::NO_MEDIUM) if drive == Drive::Cdrom => {
                    self.stage = Stage::Ready {
                        drive: Drive::Floppy,
                        tries: 0,
                    };
                    self.send(CommandWritten::packet(Drive::Floppy, [0; 12]), 0)
                }
                Some(Sense::NO_MEDIUM) => self.finish(),
                Some(sense) => Err(BiosError::CommandFailed {
                    what: "TEST UNIT READY",
                    sense,
                }),
            },
            Stage::Capacity => {
                if let Some(sense) = sense {
                    return Err(BiosError::CommandFailed {
                        what: "READ CAPACITY",
                        sense,
                    });
                }
                let b = &self.structure;
                if b.len() != 8 {
                    return Err(BiosError::BadReply(format!(
                        "READ CAPACITY returned {} bytes, not 8",
                        b.len()
                    )));
                }
                let last = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                let block = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
                if block != self.drive.block_size() {
                    return Err(BiosError::BadReply(format!(
                        "the {} reports {block}-byte blocks, not {}",
                        self.drive.name(),
                        self.drive.block_size()
                    )));
                }
                self.report.blocks = u64::from(last) + 1;
                self.report.block_size = block;
                match self.drive {
                    Drive::Cdrom if self.report.blocks > u64::from(BOOT_RECORD_LBA) => {
                        let lba = u64::from(BOOT_RECORD_LBA);
                        self.read(Part::BootRecord, lba, lba + 1)
                    }
                    Drive::Cdrom => {
                        self.report.boot =
                            Boot::NotBootable("the disc ends before block 17".into());
                        self.after_boot()
                    }
                    Drive::Floppy => self.read(Part::BootSector, 0, 1),
                }
            }
            Stage::Read { part, next, end } => {
                if let Some(sense) = sense {
                    return Err(BiosError::CommandFailed {
                        what: "READ(10)",
                        sense,
                    });
                }
                if next < end {
                    return self.read_more(part, next, end);
                }
                let sha256: [u8; 32] = std::mem::take(&mut self.hasher).finalize().into();
                self.report.regions.push(Region {
                    part,
                    lba: self.region_start,
                    blocks: end - self.region_start,
                    sha256,
                });
                self.region_done(part)
            }
            Stage::Done => Ok(BiosStep::Wait),
        }
    }

    /// Starts reading a region of blocks `[lba, end)`.
    fn read(&mut self, part: Part, lba: u64, end: u64) -> Result<BiosStep, BiosError> {
        self.structure.clear();
        self.hasher = Sha256::new();
        self.region_start = lba;
        self.read_more(part, lba, end)
    }

    fn read_more(&mut self, part: Part, lba: u64, end: u64) -> Result<BiosStep, BiosError> {
        let block = u64::from(self.drive.block_size());
        let blocks = (end - lba).min(READ_BYTES / block);
        self.stage = Stage::Read {
            part,
            next: lba + blocks,
            end,
        };
        self.send(read_command(self.drive, lba, blocks), blocks * block)
    }

    fn region_done(&mut self, part: Part) -> Result<BiosStep, BiosError> {
        match part {
            Part::BootRecord => match BootRecord::parse(&self.structure) {
                Ok(record) if u64::from(record.catalog) < self.report.blocks => {
                    let lba = u64::from(record.catalog);
                    self.read(Part::Catalog, lba, lba + 1)
                }
                Ok(record) => {
                    self.report.boot = Boot::NotBootable(format!(
                        "the boot catalog at block {} is past the end",
                        record.catalog
                    ));
                    self.after_boot()
                }
                Err(e) => {
                    self.report.boot = Boot::NotBootable(e.to_string());
                    self.after_boot()
                }
            },
            Part::Catalog => match BootEntry::parse(&self.structure) {
                Ok(entry) => {
                    let start = u64::from(entry.load_rba);
                    let end = start + entry.blocks();
                    if end > self.report.blocks {
                        self.report.boot = Boot::NotBootable(format!(
                            "the boot image (blocks {start}..{end}) runs past the end"
                        ));
                        return self.after_boot();
                    }
                    self.report.boot = Boot::ElTorito(entry);
                    self.read(Part::BootImage, start, end)
                }
                Err(e) => {
                    self.report.boot = Boot::NotBootable(e.to_string());
                    self.after_boot()
                }
            },
            Part::BootSector => {
                self.report.boot = if self.structure.get(510..512) == Some(&[0x55, 0xAA]) {
                    Boot::BootSector
                } else {
                    Boot::NotBootable("the first sector has no 55 AA boot signature".into())
                };
                self.after_boot()
            }
            Part::BootImage => self.after_boot(),
            Part::Sample => self.next_sample(),
            Part::Whole => self.finish(),
        }
    }

    /// After the boot structures: the samples or the whole medium.
    fn after_boot(&mut self) -> Result<BiosStep, BiosError> {
        let blocks = self.report.blocks;
        match self.scope {
            ReadScope::Everything => self.read(Part::Whole, 0, blocks),
            ReadScope::Boot { samples } => {
                let n = u64::from(samples).min(blocks);
                let spread: Vec<u64> = (0..n)
                    .map(|i| if n > 1 { i * (blocks - 1) / (n - 1) } else { 0 })
                    .collect();
                self.samples = spread.into_iter();
                self.next_sample()
            }
        }
    }

    fn next_sample(&mut self) -> Result<BiosStep, BiosError> {
        match self.samples.next() {
            Some(lba) => self.read(Part::Sample, lba, lba + 1),
            None => self.finish(),
        }
    }

    fn finish(&mut self) -> Result<BiosStep, BiosError> {
        self.stage = Stage::Done;
        Ok(BiosStep::Done(self.report.clone()))
    }
}

/// Entry point of the `sim_bios` fuzz target and its corpus-replay test. Not a stable API.
///
/// Arbitrary console messages (`[command][attributes][len][body...]`) fed to a booting BIOS:
/// it must end in an error or a report, never panic, and never take more data than it asked.
#[doc(hidden)]
pub fn fuzz_bios(data: &[u8]) {
    let scope = match data.first() {
        Some(b) if b & 1 == 1 => ReadScope::Everything,
        _ => ReadScope::Boot { samples: 3 },
    };
    let (mut bios, _) = Bios::start(scope);
    let mut rest = data.get(1..).unwrap_or_default();
    while let [command, attributes, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (body, next) = tail.split_at(n);
        rest = next;
        let Some(command) = IderCommand::from_byte(*command | 0x40) else {
            continue;
        };
        match bios.handle(command, *attributes, body) {
            Ok(BiosStep::Send(_) | BiosStep::Wait) => {}
            Ok(BiosStep::Done(report)) => {
                let _ = report.to_string();
                return;
            }
            Err(e) => {
                let _ = e.to_string();
                return;
            }
        }
        assert!(bios.got <= bios.asked);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oobkit_redir::el_torito::{Emulation, catalog_bytes};
    use oobkit_redir::storage::{
        Answer, MediaServer, command_end_body, data_attributes, data_to_host_header,
    };

    /// A 40-block bootable CD: boot record at 17, catalog at 19, a 4-sector image at 20.
    fn iso() -> Vec<u8> {
        let mut image: Vec<u8> = (0..40 * 2048).map(|i| (i % 251) as u8).collect();
        let record = &mut image[17 * 2048..18 * 2048];
        record.fill(0);
        record[1..6].copy_from_slice(b"CD001");
        record[6] = 1;
        record[7..30].copy_from_slice(b"EL TORITO SPECIFICATION");
        record[0x47..0x4B].copy_from_slice(&19u32.to_le_bytes());
        let entry = BootEntry {
            platform: 0,
            emulation: Emulation::NoEmulation,
            load_segment: 0,
            sectors: 4,
            load_rba: 20,
        };
        image[19 * 2048..19 * 2048 + 64].copy_from_slice(&catalog_bytes(&entry));
        image
    }

    /// Runs the BIOS against a MediaServer serving `image` in chunks of `chunk` bytes, with
    /// `tamper` applied to every DATA_TO_HOST payload.
    fn boot(image: &[u8], scope: ReadScope, extra: usize) -> Result<BootReport, BiosError> {
        let mut server = MediaServer::new(Some(image.len() as u64), None).unwrap();
        let (mut bios, mut command) = Bios::start(scope);
        loop {
            let mut messages: Vec<(IderCommand, u8, Vec<u8>)> = Vec::new();
            match server.answer(&command) {
                Answer::Status(sense) => messages.push((
                    IderCommand::CommandEndResponse,
                    2,
                    command_end_body(command.drive, sense).to_vec(),
                )),
                Answer::Data(data) => {
                    let mut body = data_to_host_header(&command, data.len() as u16, true).to_vec();
                    body.extend_from_slice(&data);
                    messages.push((
                        IderCommand::DataToHost,
                        data_attributes(&command, true),
                        body,
                    ));
                }
                Answer::Read(plan) => {
                    for (at, n, last) in plan.chunks(8192) {
                        let at = at as usize;
                        let n = n + if last { extra } else { 0 };
                        let data = &image[at..(at + n).min(image.len())];
                        let mut body =
                            data_to_host_header(&command, data.len() as u16, last).to_vec();
                        body.extend_from_slice(data);
                        messages.push((
                            IderCommand::DataToHost,
                            data_attributes(&command, last),
                            body,
                        ));
                    }
                }
            }
            let mut next = None;
            for (cmd, attributes, body) in messages {
                match bios.handle(cmd, attributes, &body)? {
                    BiosStep::Send(c) => next = Some(c),
                    BiosStep::Wait => {}
                    BiosStep::Done(report) => return Ok(report),
                }
            }
            command = next.expect("the BIOS asked for something");
        }
    }

    fn sha(bytes: &[u8]) -> [u8; 32] {
        Sha256::digest(bytes).into()
    }

    #[test]
    fn boots_el_torito_and_reads_what_the_image_holds() {
        let image = iso();
        let report = boot(&image, ReadScope::Boot { samples: 4 }, 0).unwrap();
        assert_eq!(report.drive, Some(Drive::Cdrom));
        assert_eq!(report.blocks, 40);
        assert!(matches!(report.boot, Boot::ElTorito(e) if e.load_rba == 20));
        let parts: Vec<Part> = report.regions.iter().map(|r| r.part).collect();
        assert_eq!(
            parts,
            [
                Part::BootRecord,
                Part::Catalog,
                Part::BootImage,
                Part::Sample,
                Part::Sample,
                Part::Sample,
                Part::Sample
            ]
        );
        for region in &report.regions {
            let start = region.lba as usize * 2048;
            let end = start + region.blocks as usize * 2048;
            assert_eq!(region.sha256, sha(&image[start..end]), "{region:?}");
        }
        assert_eq!(report.regions.last().unwrap().lba, 39);
        assert!(report.to_string().contains("booted El Torito"), "{report}");
    }

    #[test]
    fn reads_everything_and_refuses_extra_data() {
        let image = iso();
        let report = boot(&image, ReadScope::Everything, 0).unwrap();
        let whole = report.regions.last().unwrap();
        assert_eq!((whole.part, whole.blocks), (Part::Whole, 40));
        assert_eq!(whole.sha256, sha(&image));
        assert!(matches!(
            boot(&image, ReadScope::Everything, 1),
            Err(BiosError::TooMuchData { .. })
        ));
    }

    #[test]
    fn a_plain_disc_is_not_bootable_and_no_medium_is_reported() {
        let report = boot(&vec![0u8; 40 * 2048], ReadScope::Boot { samples: 1 }, 0).unwrap();
        assert!(matches!(report.boot, Boot::NotBootable(_)), "{report}");
        let (mut bios, command) = Bios::start(ReadScope::Boot { samples: 1 });
        let mut server = MediaServer::new(None, None).unwrap();
        let Answer::Status(sense) = server.answer(&command) else {
            panic!()
        };
        let body = command_end_body(Drive::Cdrom, sense);
        let BiosStep::Send(floppy) = bios
            .handle(IderCommand::CommandEndResponse, 2, &body)
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(floppy.drive, Drive::Floppy);
        let Answer::Status(sense) = server.answer(&floppy) else {
            panic!()
        };
        let body = command_end_body(Drive::Floppy, sense);
        let BiosStep::Done(report) = bios
            .handle(IderCommand::CommandEndResponse, 2, &body)
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(report.boot, Boot::NoMedium);
    }
}
