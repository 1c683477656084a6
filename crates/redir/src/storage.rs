//! IDE-R storage: the drive commands a host sends through a redirected drive, and the console's
//! answers, sans-IO.
//!
//! Over IDE-R the managed host's BIOS (or operating system) talks to an emulated CD-ROM or
//! floppy drive as it would to an ATAPI drive on a cable: the device forwards each command the
//! host wrote (`0x50` COMMAND_WRITTEN, a [`CommandWritten`]) and the console answers with read
//! data (`0x54` DATA_TO_HOST, the last chunk completing the command) or a completion (`0x51`
//! COMMAND_END_RESPONSE, with [`Sense`] data for CHECK CONDITION).
//!
//! - [`MediaServer`] decides the answer to every command from the images' sizes alone: constant
//!   replies are built here, reads come back as a [`ReadPlan`] whose chunks the caller reads
//!   from the image file (lazily, so a 4 GiB ISO is never held in memory) and sends with
//!   [`crate::ClientSession::ider_data`].
//! - The encoders [`command_end_body`], [`data_to_host_header`] and [`CommandWritten::body`]
//!   serve both roles (the simulator's BIOS writes commands; the console answers them).
//!
//! ```
//! use oobkit_redir::storage::{Answer, CommandWritten, Drive, MediaServer, Sense};
//! let mut server = MediaServer::new(Some(2048 * 100), None).unwrap();
//! let ready = CommandWritten::packet(Drive::Cdrom, [0x00; 12]);
//! // The first TEST UNIT READY after the medium was inserted reports the change, as drives do.
//! assert_eq!(server.answer(&ready), Answer::Status(Some(Sense::MEDIUM_CHANGED)));
//! assert_eq!(server.answer(&ready), Answer::Status(None));
//! // READ(10) of 2 blocks at LBA 16: the caller reads 4096 bytes at offset 32768.
//! let read = CommandWritten::packet(Drive::Cdrom, [0x28, 0, 0, 0, 0, 16, 0, 0, 2, 0, 0, 0]);
//! let Answer::Read(plan) = server.answer(&read) else { panic!() };
//! assert_eq!((plan.offset, plan.len), (32768, 4096));
//! assert_eq!(plan.chunks(8192).collect::<Vec<_>>(), [(32768, 4096, true)]);
//! ```

/// Which emulated drive a command is for (the drive-select register: 0xA0 master, 0xB0 slave).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Drive {
    /// The floppy (or LS-120 style removable disk), 512-byte blocks, drive select 0xA0.
    Floppy,
    /// The CD-ROM, 2048-byte blocks, drive select 0xB0.
    Cdrom,
}

impl Drive {
    /// The drive a drive-select register names (bit 4: the second device on the cable).
    pub const fn from_select(select: u8) -> Self {
        if select & 0x10 != 0 {
            Self::Cdrom
        } else {
            Self::Floppy
        }
    }

    /// The drive-select register value.
    pub const fn select(self) -> u8 {
        match self {
            Self::Floppy => 0xA0,
            Self::Cdrom => 0xB0,
        }
    }

    /// Bytes per logical block.
    pub const fn block_size(self) -> u32 {
        match self {
            Self::Floppy => 512,
            Self::Cdrom => 2048,
        }
    }

    /// For logs.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Floppy => "floppy",
            Self::Cdrom => "CD-ROM",
        }
    }
}

/// The ATA commands the device forwards in [`CommandWritten::ata`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AtaCommand {
    /// 0xA0: an ATAPI packet; the SCSI command is in the CDB.
    Packet,
    /// 0x20: READ SECTORS (PIO, 28-bit LBA in the registers), as a BIOS reads a floppy.
    ReadSectors,
    /// 0xC8: READ DMA (28-bit LBA in the registers).
    ReadDma,
}

impl AtaCommand {
    /// The command for a register value, if it is one we know.
    pub const fn from_byte(byte: u8) -> Option<Self> {
        Some(match byte {
            0xA0 => Self::Packet,
            0x20 => Self::ReadSectors,
            0xC8 => Self::ReadDma,
            _ => return None,
        })
    }

    /// The register value.
    pub const fn to_byte(self) -> u8 {
        match self {
            Self::Packet => 0xA0,
            Self::ReadSectors => 0x20,
            Self::ReadDma => 0xC8,
        }
    }
}

/// The SCSI (MMC / SBC) operations answered inside ATAPI packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ScsiOp {
    /// 0x00.
    TestUnitReady,
    /// 0x03: the sense data of the last command.
    RequestSense,
    /// 0x12.
    Inquiry,
    /// 0x1A.
    ModeSense6,
    /// 0x1B: load / eject.
    StartStopUnit,
    /// 0x1E: lock / unlock the tray.
    PreventAllowMediumRemoval,
    /// 0x23: what removable-disk drivers ask first.
    ReadFormatCapacities,
    /// 0x25.
    ReadCapacity,
    /// 0x28.
    Read10,
    /// 0x2B.
    Seek10,
    /// 0x2A, 0x2E, 0xAA: refused, the media are read-only.
    Write,
    /// 0x43: the table of contents (CD only).
    ReadToc,
    /// 0x46 (CD only).
    GetConfiguration,
    /// 0x4A: media events, polled.
    GetEventStatusNotification,
    /// 0x51 (CD only).
    ReadDiscInformation,
    /// 0x5A.
    ModeSense10,
    /// 0xA8.
    Read12,
}

impl ScsiOp {
    /// The operation for an opcode, if it is one we answer.
    pub const fn from_byte(byte: u8) -> Option<Self> {
        Some(match byte {
            0x00 => Self::TestUnitReady,
            0x03 => Self::RequestSense,
            0x12 => Self::Inquiry,
            0x1A => Self::ModeSense6,
            0x1B => Self::StartStopUnit,
            0x1E => Self::PreventAllowMediumRemoval,
            0x23 => Self::ReadFormatCapacities,
            0x25 => Self::ReadCapacity,
            0x28 => Self::Read10,
            0x2B => Self::Seek10,
            0x2A | 0x2E | 0xAA => Self::Write,
            0x43 => Self::ReadToc,
            0x46 => Self::GetConfiguration,
            0x4A => Self::GetEventStatusNotification,
            0x51 => Self::ReadDiscInformation,
            0x5A => Self::ModeSense10,
            0xA8 => Self::Read12,
            _ => return None,
        })
    }
}

/// SCSI sense data: key, additional sense code and qualifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sense {
    /// Sense key (2 not ready, 5 illegal request, 6 unit attention, 7 data protect).
    pub key: u8,
    /// Additional sense code.
    pub asc: u8,
    /// Additional sense code qualifier.
    pub ascq: u8,
}

impl Sense {
    /// 02/3A/00: no medium in the drive.
    pub const NO_MEDIUM: Self = Self::new(0x02, 0x3A, 0x00);
    /// 06/28/00: the medium changed (reported once after an insert).
    pub const MEDIUM_CHANGED: Self = Self::new(0x06, 0x28, 0x00);
    /// 05/20/00: an operation code the drive does not know.
    pub const INVALID_COMMAND: Self = Self::new(0x05, 0x20, 0x00);
    /// 05/21/00: a block address past the end of the medium.
    pub const LBA_OUT_OF_RANGE: Self = Self::new(0x05, 0x21, 0x00);
    /// 05/24/00: a field of the command the drive does not support.
    pub const INVALID_FIELD: Self = Self::new(0x05, 0x24, 0x00);
    /// 07/27/00: the medium is write protected.
    pub const WRITE_PROTECTED: Self = Self::new(0x07, 0x27, 0x00);

    /// Sense data from its three bytes.
    pub const fn new(key: u8, asc: u8, ascq: u8) -> Self {
        Self { key, asc, ascq }
    }
}

impl std::fmt::Display for Sense {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:02X}/{:02X}/{:02X}", self.key, self.asc, self.ascq)
    }
}

/// Why an IDE-R storage message could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// A message body shorter than its layout.
    #[error("IDE-R {what} of {len} bytes is shorter than its {need}-byte layout")]
    Short {
        /// Which message.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The layout's length.
        need: usize,
    },
    /// An image smaller than one block of its drive.
    #[error("a {drive} image must hold at least one {block}-byte block")]
    EmptyImage {
        /// The drive's name.
        drive: &'static str,
        /// Its block size.
        block: u32,
    },
}

/// Register mask bits and status bits of the IDE-R register blocks.
mod reg {
    pub(super) const MASK_INTERRUPT: u8 = 0x01;
    pub(super) const MASK_ERROR: u8 = 0x02;
    pub(super) const MASK_SECTOR_COUNT: u8 = 0x04;
    pub(super) const MASK_BYTE_COUNT: u8 = 0x30;
    pub(super) const MASK_DRIVE_SELECT: u8 = 0x40;
    pub(super) const MASK_STATUS: u8 = 0x80;
    pub(super) const STATUS_DRDY: u8 = 0x40;
    pub(super) const STATUS_DSC: u8 = 0x10;
    pub(super) const STATUS_DRQ: u8 = 0x08;
    pub(super) const STATUS_ERR: u8 = 0x01;
    /// Interrupt reason (in the sector-count register): I/O toward the host, command/data.
    pub(super) const REASON_IO: u8 = 0x02;
    pub(super) const REASON_CD: u8 = 0x01;
    /// ATA error register: command aborted.
    pub(super) const ERROR_ABORT: u8 = 0x04;
}

/// The body (after the 8-byte header) of 0x50 COMMAND_WRITTEN: the registers the host wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandWritten {
    /// The drive addressed.
    pub drive: Drive,
    /// The feature register's DMA bit: the host reads by DMA.
    pub dma: bool,
    /// Sector count register (ATA reads: blocks, 0 meaning 256).
    pub sector_count: u8,
    /// Sector number register (ATA reads: LBA bits 0-7).
    pub sector_number: u8,
    /// Byte count (ATAPI) or cylinder (ATA reads: LBA bits 8-23) registers.
    pub byte_count: u16,
    /// The drive-select register (ATA reads: LBA bits 24-27 in the low nibble).
    pub drive_select: u8,
    /// The ATA command register, raw ([`AtaCommand::from_byte`] names the known ones).
    pub ata: u8,
    /// The SCSI command block of an ATAPI packet.
    pub cdb: [u8; 12],
}

impl CommandWritten {
    /// The length of the body.
    pub const BODY_LEN: usize = 20;

    /// An ATAPI packet command for `drive`.
    pub const fn packet(drive: Drive, cdb: [u8; 12]) -> Self {
        Self {
            drive,
            dma: false,
            sector_count: 0,
            sector_number: 0,
            byte_count: 0xFFFE,
            drive_select: drive.select(),
            ata: 0xA0,
            cdb,
        }
    }

    /// Parses the body of a 0x50 message.
    pub fn parse(body: &[u8]) -> Result<Self, StorageError> {
        let b: &[u8; Self::BODY_LEN] = body
            .get(..Self::BODY_LEN)
            .and_then(|b| b.try_into().ok())
            .ok_or(StorageError::Short {
            what: "COMMAND_WRITTEN",
            len: body.len(),
            need: Self::BODY_LEN,
        })?;
        let mut cdb = [0u8; 12];
        cdb.copy_from_slice(&b[8..20]);
        Ok(Self {
            drive: Drive::from_select(b[6]),
            dma: b[1] & 1 != 0,
            sector_count: b[2],
            sector_number: b[3],
            byte_count: u16::from_le_bytes([b[4], b[5]]),
            drive_select: b[6],
            ata: b[7],
            cdb,
        })
    }

    /// The body of a 0x50 message.
    pub fn body(&self) -> [u8; Self::BODY_LEN] {
        let mut b = [0u8; Self::BODY_LEN];
        b[1] = u8::from(self.dma);
        b[2] = self.sector_count;
        b[3] = self.sector_number;
        b[4..6].copy_from_slice(&self.byte_count.to_le_bytes());
        b[6] = self.drive_select;
        b[7] = self.ata;
        b[8..20].copy_from_slice(&self.cdb);
        b
    }

    /// The SCSI operation of an ATAPI packet (`None` for other ATA commands or unknown opcodes).
    pub fn scsi(&self) -> Option<ScsiOp> {
        (self.ata == 0xA0)
            .then(|| ScsiOp::from_byte(self.cdb[0]))
            .flatten()
    }

    /// For logs: the operation in words.
    pub fn describe(&self) -> String {
        match (AtaCommand::from_byte(self.ata), self.scsi()) {
            (Some(AtaCommand::Packet), Some(op)) => format!("{op:?}"),
            (Some(AtaCommand::Packet), None) => format!("SCSI opcode {:#04x}", self.cdb[0]),
            (Some(ata), _) => format!("ATA {ata:?}"),
            (None, _) => format!("ATA command {:#04x}", self.ata),
        }
    }
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// The body of a 0x51 COMMAND_END_RESPONSE: the command completed, good or with `sense`
/// (CHECK CONDITION; for ATA commands an abort).
pub fn command_end_body(drive: Drive, sense: Option<Sense>) -> [u8; 23] {
    let mut b = [0u8; 23];
    // [0] cable select, [1..3] bytes transferred, [3] packet number, [4..12] input registers:
    // unused in a completion. [12..20] the output registers, [20..23] sense.
    let out = &mut b[12..20];
    out[2] = reg::REASON_IO | reg::REASON_CD;
    out[6] = drive.select();
    match sense {
        None => {
            out[0] = reg::MASK_INTERRUPT
                | reg::MASK_SECTOR_COUNT
                | reg::MASK_DRIVE_SELECT
                | reg::MASK_STATUS;
            out[7] = reg::STATUS_DRDY | reg::STATUS_DSC;
        }
        Some(sense) => {
            out[0] =
                reg::MASK_INTERRUPT | reg::MASK_ERROR | reg::MASK_SECTOR_COUNT | reg::MASK_STATUS;
            // ATAPI puts the sense key in the error register's high nibble.
            out[1] = sense.key << 4 | reg::ERROR_ABORT;
            out[7] = reg::STATUS_DRDY | reg::STATUS_DSC | reg::STATUS_ERR;
            b[20] = sense.key;
            b[21] = sense.asc;
            b[22] = sense.ascq;
        }
    }
    b
}

/// The sense a 0x51 body reports (`None`: good status).
pub fn command_end_sense(body: &[u8]) -> Result<Option<Sense>, StorageError> {
    let b = body.get(..23).ok_or(StorageError::Short {
        what: "COMMAND_END_RESPONSE",
        len: body.len(),
        need: 23,
    })?;
    Ok((b[19] & reg::STATUS_ERR != 0).then(|| Sense::new(b[20], b[21], b[22])))
}

/// The length of the header of a 0x54 DATA_TO_HOST body; the data follows it.
pub const DATA_TO_HOST_HEADER: usize = 26;

/// The header of a 0x54 DATA_TO_HOST body carrying `len` bytes; `last` completes the command
/// (the message's attributes then carry bit 1, see [`data_attributes`]).
pub fn data_to_host_header(
    command: &CommandWritten,
    len: u16,
    last: bool,
) -> [u8; DATA_TO_HOST_HEADER] {
    let mut b = [0u8; DATA_TO_HOST_HEADER];
    b[1..3].copy_from_slice(&len.to_le_bytes());
    let input = &mut b[4..12];
    input[0] = reg::MASK_SECTOR_COUNT | reg::MASK_BYTE_COUNT | reg::MASK_STATUS;
    if !command.dma {
        // PIO: every block of data raises an interrupt.
        input[0] |= reg::MASK_INTERRUPT;
    }
    input[2] = reg::REASON_IO;
    input[4..6].copy_from_slice(&len.to_le_bytes());
    input[6] = command.drive.select();
    input[7] = reg::STATUS_DRDY | reg::STATUS_DSC | reg::STATUS_DRQ;
    if last {
        let out = &mut b[12..20];
        out[0] = reg::MASK_INTERRUPT | reg::MASK_SECTOR_COUNT | reg::MASK_STATUS;
        out[2] = reg::REASON_IO | reg::REASON_CD;
        out[6] = command.drive.select();
        out[7] = reg::STATUS_DRDY | reg::STATUS_DSC;
    }
    b
}

/// The attributes byte of a DATA_TO_HOST message: bit 1 completes the command, bit 0 DMA.
pub const fn data_attributes(command: &CommandWritten, last: bool) -> u8 {
    (if last { 2 } else { 0 }) | (if command.dma { 1 } else { 0 })
}

/// The data of a 0x54 body, after its header.
pub fn data_to_host_payload(body: &[u8]) -> Result<&[u8], StorageError> {
    body.get(DATA_TO_HOST_HEADER..).ok_or(StorageError::Short {
        what: "DATA_TO_HOST",
        len: body.len(),
        need: DATA_TO_HOST_HEADER,
    })
}

/// A read the caller serves from an image: `len` bytes at `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadPlan {
    /// The command being answered.
    pub command: CommandWritten,
    /// Byte offset in the image.
    pub offset: u64,
    /// Bytes to send (never 0; never past the end of the image).
    pub len: u64,
}

impl ReadPlan {
    /// The pieces to send: `(offset, len, last)`, each at most `max` bytes (the device's read
    /// buffer; see [`crate::ClientSession::ider_chunk`]).
    pub fn chunks(&self, max: usize) -> impl Iterator<Item = (u64, usize, bool)> + use<> {
        let max = max.max(1) as u64;
        let (start, end) = (self.offset, self.offset + self.len);
        (0..self.len.div_ceil(max)).map(move |i| {
            let at = start + i * max;
            let n = max.min(end - at);
            (at, n as usize, at + n == end)
        })
    }
}

/// The console's answer to one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Complete: good (`None`) or CHECK CONDITION with this sense.
    Status(Option<Sense>),
    /// Send these bytes (already cut to the host's allocation length) and complete.
    Data(Vec<u8>),
    /// Read from the image and send; the last chunk completes.
    Read(ReadPlan),
}

#[derive(Debug, Clone, Copy)]
struct Medium {
    /// Addressable blocks (a partial block at the end of the file is not addressable).
    blocks: u64,
    /// The change is reported once, as drives report a new medium.
    changed: bool,
    /// Event status notification: a new medium not yet reported.
    event_pending: bool,
}

/// The console side of IDE-R storage: answers every command from the images' sizes.
///
/// Knows nothing of files: reads come back as [`ReadPlan`]s. Keeps what a drive keeps
/// between commands: the sense of the last command (for REQUEST SENSE) and the medium-changed
/// condition.
#[derive(Debug, Clone, Default)]
pub struct MediaServer {
    cd: Option<Medium>,
    floppy: Option<Medium>,
    last_sense: [Option<Sense>; 2],
}

fn slot(drive: Drive) -> usize {
    match drive {
        Drive::Floppy => 0,
        Drive::Cdrom => 1,
    }
}

impl MediaServer {
    /// A server with a CD image of `cd_bytes` and/or a floppy image of `floppy_bytes`.
    pub fn new(cd_bytes: Option<u64>, floppy_bytes: Option<u64>) -> Result<Self, StorageError> {
        let mut server = Self::default();
        server.insert(Drive::Cdrom, cd_bytes)?;
        server.insert(Drive::Floppy, floppy_bytes)?;
        Ok(server)
    }

    /// Puts a medium of `bytes` in `drive` (`None`: ejects it); the host hears of the change.
    pub fn insert(&mut self, drive: Drive, bytes: Option<u64>) -> Result<(), StorageError> {
        let medium = match bytes {
            None => None,
            Some(bytes) => {
                let blocks = bytes / u64::from(drive.block_size());
                if blocks == 0 {
                    return Err(StorageError::EmptyImage {
                        drive: drive.name(),
                        block: drive.block_size(),
                    });
                }
                Some(Medium {
                    blocks,
                    changed: true,
                    event_pending: true,
                })
            }
        };
        match drive {
            Drive::Cdrom => self.cd = medium,
            Drive::Floppy => self.floppy = medium,
        }
        Ok(())
    }

    fn medium(&mut self, drive: Drive) -> Option<&mut Medium> {
        match drive {
            Drive::Cdrom => self.cd.as_mut(),
            Drive::Floppy => self.floppy.as_mut(),
        }
    }

    /// The answer to a command; remembers its sense for a following REQUEST SENSE.
    pub fn answer(&mut self, command: &CommandWritten) -> Answer {
        let answer = self.decide(command);
        self.last_sense[slot(command.drive)] = match &answer {
            Answer::Status(sense) => *sense,
            _ => None,
        };
        answer
    }

    fn decide(&mut self, command: &CommandWritten) -> Answer {
        let drive = command.drive;
        match AtaCommand::from_byte(command.ata) {
            Some(AtaCommand::Packet) => {}
            Some(AtaCommand::ReadSectors | AtaCommand::ReadDma) => return self.ata_read(command),
            None => return Answer::Status(Some(Sense::INVALID_COMMAND)),
        }
        let cdb = &command.cdb;
        let Some(op) = ScsiOp::from_byte(cdb[0]) else {
            return Answer::Status(Some(Sense::INVALID_COMMAND));
        };
        // Commands that work without a medium and do not report its change (SPC: INQUIRY and
        // REQUEST SENSE never report a unit attention; MMC: nor do the two feature queries).
        match op {
            ScsiOp::Inquiry => return Answer::Data(cut(inquiry(drive), u16::from(cdb[4]))),
            ScsiOp::RequestSense => {
                let sense = self.last_sense[slot(drive)].take();
                return Answer::Data(cut(request_sense(sense), u16::from(cdb[4])));
            }
            ScsiOp::GetConfiguration if drive == Drive::Cdrom => {
                let present = self.cd.is_some();
                return Answer::Data(cut(configuration(cdb, present), be16(&cdb[7..])));
            }
            ScsiOp::GetEventStatusNotification => {
                if cdb[1] & 1 == 0 {
                    // Asynchronous notification is not supported; only polling is.
                    return Answer::Status(Some(Sense::INVALID_FIELD));
                }
                let medium = self.medium(drive);
                let present = medium.is_some();
                let new = medium.is_some_and(|m| std::mem::take(&mut m.event_pending));
                return Answer::Data(cut(media_event(cdb[4], present, new), be16(&cdb[7..])));
            }
            _ => {}
        }
        let Some(medium) = self.medium(drive) else {
            return Answer::Status(Some(Sense::NO_MEDIUM));
        };
        if std::mem::take(&mut medium.changed) {
            return Answer::Status(Some(Sense::MEDIUM_CHANGED));
        }
        let blocks = medium.blocks;
        let block = u64::from(drive.block_size());
        match op {
            ScsiOp::TestUnitReady
            | ScsiOp::StartStopUnit
            | ScsiOp::PreventAllowMediumRemoval
            | ScsiOp::Seek10 => Answer::Status(None),
            ScsiOp::Write => Answer::Status(Some(Sense::WRITE_PROTECTED)),
            ScsiOp::ReadCapacity => {
                let last = u32::try_from(blocks - 1).unwrap_or(u32::MAX);
                let mut data = last.to_be_bytes().to_vec();
                data.extend_from_slice(&drive.block_size().to_be_bytes());
                Answer::Data(data)
            }
            ScsiOp::ReadFormatCapacities => {
                let mut data = vec![0, 0, 0, 8];
                data.extend_from_slice(&u32::try_from(blocks).unwrap_or(u32::MAX).to_be_bytes());
                // Descriptor type 2: formatted media; then the block length in three bytes.
                data.push(0x02);
                data.extend_from_slice(&drive.block_size().to_be_bytes()[1..]);
                Answer::Data(cut(data, be16(&cdb[7..])))
            }
            ScsiOp::Read10 | ScsiOp::Read12 => {
                let lba = u64::from(be32(&cdb[2..]));
                let count = if op == ScsiOp::Read10 {
                    u64::from(be16(&cdb[7..]))
                } else {
                    u64::from(be32(&cdb[6..]))
                };
                read(command, lba, count, blocks, block)
            }
            ScsiOp::ModeSense6 | ScsiOp::ModeSense10 => {
                mode_sense(drive, blocks, op == ScsiOp::ModeSense10, cdb)
            }
            ScsiOp::ReadToc if drive == Drive::Cdrom => toc(cdb, blocks),
            ScsiOp::ReadDiscInformation if drive == Drive::Cdrom => {
                Answer::Data(cut(disc_information(), be16(&cdb[7..])))
            }
            _ => Answer::Status(Some(Sense::INVALID_COMMAND)),
        }
    }

    /// ATA READ SECTORS / READ DMA: 28-bit LBA in the registers, 0 blocks meaning 256.
    fn ata_read(&mut self, command: &CommandWritten) -> Answer {
        let drive = command.drive;
        let Some(medium) = self.medium(drive) else {
            return Answer::Status(Some(Sense::NO_MEDIUM));
        };
        medium.changed = false;
        let blocks = medium.blocks;
        let [cyl_low, cyl_high] = command.byte_count.to_le_bytes();
        let lba = u64::from(command.sector_number)
            | u64::from(cyl_low) << 8
            | u64::from(cyl_high) << 16
            | u64::from(command.drive_select & 0x0F) << 24;
        let count = match command.sector_count {
            0 => 256,
            n => u64::from(n),
        };
        read(command, lba, count, blocks, u64::from(drive.block_size()))
    }
}

fn read(command: &CommandWritten, lba: u64, count: u64, blocks: u64, block: u64) -> Answer {
    if count == 0 {
        return Answer::Status(None);
    }
    if lba.checked_add(count).is_none_or(|end| end > blocks) {
        return Answer::Status(Some(Sense::LBA_OUT_OF_RANGE));
    }
    Answer::Read(ReadPlan {
        command: *command,
        offset: lba * block,
        len: count * block,
    })
}

/// Replies are cut to the allocation length the host gave.
fn cut(mut data: Vec<u8>, allocation: u16) -> Vec<u8> {
    data.truncate(usize::from(allocation));
    data
}

fn inquiry(drive: Drive) -> Vec<u8> {
    let mut data = vec![0u8; 36];
    // Peripheral type 5 (CD/DVD) or 0 (direct access); removable; SPC-3; response format 2.
    data[0] = if drive == Drive::Cdrom { 0x05 } else { 0x00 };
    data[1] = 0x80;
    data[2] = 0x05;
    data[3] = 0x02;
    data[4] = 31;
    data[8..16].copy_from_slice(b"oobkit  ");
    data[16..32].copy_from_slice(if drive == Drive::Cdrom {
        b"IDE-R CD-ROM    "
    } else {
        b"IDE-R floppy    "
    });
    data[32..36].copy_from_slice(b"1.0 ");
    data
}

fn request_sense(sense: Option<Sense>) -> Vec<u8> {
    let sense = sense.unwrap_or(Sense::new(0, 0, 0));
    let mut data = vec![0u8; 18];
    // Fixed format, current error; 10 more bytes.
    data[0] = 0x70;
    data[2] = sense.key;
    data[7] = 10;
    data[12] = sense.asc;
    data[13] = sense.ascq;
    data
}

/// Mode pages: 0x01 error recovery, 0x05 flexible disk (floppy), 0x2A CD capabilities (CD),
/// 0x3F every page of the drive.
fn mode_sense(drive: Drive, blocks: u64, ten: bool, cdb: &[u8; 12]) -> Answer {
    let page = cdb[2] & 0x3F;
    let error_recovery = [0x01, 0x0A, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0];
    let pages: Vec<u8> = match (page, drive) {
        (0x01, _) => error_recovery.to_vec(),
        (0x05, Drive::Floppy) => flexible_disk_page(blocks),
        (0x2A, Drive::Cdrom) => cd_capabilities_page(),
        (0x3F, Drive::Floppy) => [error_recovery.to_vec(), flexible_disk_page(blocks)].concat(),
        (0x3F, Drive::Cdrom) => [error_recovery.to_vec(), cd_capabilities_page()].concat(),
        _ => return Answer::Status(Some(Sense::INVALID_FIELD)),
    };
    // Medium type: 0x01 CD-ROM data, 0x00 default; device-specific 0x80: write protected.
    let medium = if drive == Drive::Cdrom { 0x01 } else { 0x00 };
    let (mut data, allocation) = if ten {
        let len = u16::try_from(pages.len() + 6).unwrap_or(u16::MAX);
        let mut d = len.to_be_bytes().to_vec();
        d.extend_from_slice(&[medium, 0x80, 0, 0, 0, 0]);
        (d, be16(&cdb[7..]))
    } else {
        let len = u8::try_from(pages.len() + 3).unwrap_or(u8::MAX);
        (vec![len, medium, 0x80, 0], u16::from(cdb[4]))
    };
    data.extend_from_slice(&pages);
    Answer::Data(cut(data, allocation))
}

/// Flexible disk page: a 1.44 MB geometry (80 cylinders, 2 heads, 18 sectors) for standard
/// images, else 2 heads and 63 sectors per track with as many cylinders as it takes.
fn flexible_disk_page(blocks: u64) -> Vec<u8> {
    let (heads, sectors) = if blocks == 2880 { (2u8, 18u8) } else { (2, 63) };
    let cylinders =
        u16::try_from(blocks.div_ceil(u64::from(heads) * u64::from(sectors))).unwrap_or(u16::MAX);
    let mut page = vec![0u8; 32];
    page[0] = 0x05;
    page[1] = 0x1E;
    page[2..4].copy_from_slice(&500u16.to_be_bytes()); // transfer rate, kbit/s
    page[4] = heads;
    page[5] = sectors;
    page[6..8].copy_from_slice(&512u16.to_be_bytes());
    page[8..10].copy_from_slice(&cylinders.to_be_bytes());
    page[28..30].copy_from_slice(&300u16.to_be_bytes()); // rotation, rpm
    page
}

/// CD capabilities and mechanical status: reads CD-ROM media; tray, lock and eject supported.
fn cd_capabilities_page() -> Vec<u8> {
    let mut page = vec![0u8; 22];
    page[0] = 0x2A;
    page[1] = 0x14;
    page[6] = 0x29; // lock, eject, tray loading mechanism
    page
}

/// READ TOC: format 0 (one data track and the lead-out) or 1 (one session), in LBA or MSF.
fn toc(cdb: &[u8; 12], blocks: u64) -> Answer {
    let msf = cdb[1] & 0x02 != 0;
    let address = |lba: u64| -> [u8; 4] {
        if msf {
            // Minutes, seconds, frames, counting the 2-second (150-frame) pregap.
            let frames = lba + 150;
            let m = u8::try_from(frames / (60 * 75)).unwrap_or(u8::MAX);
            [0, m, (frames / 75 % 60) as u8, (frames % 75) as u8]
        } else {
            u32::try_from(lba).unwrap_or(u32::MAX).to_be_bytes()
        }
    };
    let data = match cdb[2] & 0x0F {
        0 => {
            let mut d = vec![0, 18, 1, 1];
            // Track 1: data track (control 4), ADR 1.
            d.extend_from_slice(&[0, 0x14, 1, 0]);
            d.extend_from_slice(&address(0));
            d.extend_from_slice(&[0, 0x14, 0xAA, 0]);
            d.extend_from_slice(&address(blocks));
            d
        }
        1 => {
            let mut d = vec![0, 10, 1, 1, 0, 0x14, 1, 0];
            d.extend_from_slice(&address(0));
            d
        }
        _ => return Answer::Status(Some(Sense::INVALID_FIELD)),
    };
    Answer::Data(cut(data, be16(&cdb[7..])))
}

/// READ DISC INFORMATION: a finalized disc with one complete session of one track.
fn disc_information() -> Vec<u8> {
    let mut d = vec![0u8; 34];
    d[1] = 32;
    d[2] = 0x0E; // last session complete, disc complete
    d[3] = 1; // first track
    d[4] = 1; // sessions
    d[5] = 1; // first track of the last session
    d[6] = 1; // last track of the last session
    d
}

/// GET CONFIGURATION for a CD-ROM drive: the profile list and the features a reader has.
fn configuration(cdb: &[u8; 12], present: bool) -> Vec<u8> {
    const CD_ROM: u16 = 0x0008;
    let current = 0x01 | 0x02; // persistent, current
    let features: [(u16, Vec<u8>); 6] = [
        (0x0000, vec![0x00, 0x08, u8::from(present), 0]),
        (0x0001, vec![0, 0, 0, 2]),                   // core: ATAPI
        (0x0002, vec![0, 0, 0, 0]),                   // morphing
        (0x0003, vec![0x29, 0, 0, 0]),                // removable medium: tray, eject, lock
        (0x0010, vec![0, 0, 0x08, 0x00, 0, 1, 0, 0]), // random readable, 2048-byte blocks
        (0x001E, vec![]),                             // CD read
    ];
    let requested = cdb[1] & 0x03;
    let start = be16(&cdb[2..]);
    let mut data = vec![0u8; 8];
    if present {
        data[6..8].copy_from_slice(&CD_ROM.to_be_bytes());
    }
    for (code, body) in features {
        let wanted = match requested {
            2 => code == start,
            _ => code >= start,
        };
        if wanted {
            data.extend_from_slice(&code.to_be_bytes());
            data.push(current);
            data.push(body.len() as u8);
            data.extend_from_slice(&body);
        }
    }
    let len = u32::try_from(data.len() - 4).unwrap_or(u32::MAX);
    data[..4].copy_from_slice(&len.to_be_bytes());
    data
}

/// GET EVENT STATUS NOTIFICATION (polled): the media class if asked, else "no event".
fn media_event(classes: u8, present: bool, new: bool) -> Vec<u8> {
    const MEDIA: u8 = 0x10;
    if classes & MEDIA == 0 {
        // No supported class requested: NEA set, supported classes listed.
        return vec![0, 2, 0x80, MEDIA];
    }
    // Event: 2 new media (once), else 0 no change; status bit 1: media present.
    vec![
        0,
        6,
        0x04,
        MEDIA,
        if new { 2 } else { 0 },
        if present { 0x02 } else { 0 },
        0,
        0,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cd(cdb: &[u8]) -> CommandWritten {
        let mut block = [0u8; 12];
        block[..cdb.len()].copy_from_slice(cdb);
        CommandWritten::packet(Drive::Cdrom, block)
    }

    fn ready(server: &mut MediaServer) {
        let _ = server.answer(&cd(&[0x00]));
    }

    #[test]
    fn command_written_round_trips() {
        let mut command = cd(&[0x28, 0, 0, 0, 0, 17, 0, 0, 1]);
        command.dma = true;
        assert_eq!(CommandWritten::parse(&command.body()), Ok(command));
        assert!(matches!(
            CommandWritten::parse(&[0u8; 19]),
            Err(StorageError::Short { need: 20, .. })
        ));
    }

    #[test]
    fn no_medium_then_unit_attention_then_ready() {
        let mut server = MediaServer::new(None, None).unwrap();
        assert_eq!(
            server.answer(&cd(&[0x00])),
            Answer::Status(Some(Sense::NO_MEDIUM))
        );
        // REQUEST SENSE tells the last sense, then it is cleared.
        let Answer::Data(sense) = server.answer(&cd(&[0x03, 0, 0, 0, 18])) else {
            panic!()
        };
        assert_eq!((sense[2], sense[12], sense[13]), (0x02, 0x3A, 0x00));
        server.insert(Drive::Cdrom, Some(4096)).unwrap();
        assert_eq!(
            server.answer(&cd(&[0x25])),
            Answer::Status(Some(Sense::MEDIUM_CHANGED))
        );
        assert_eq!(
            server.answer(&cd(&[0x25])),
            Answer::Data(vec![0, 0, 0, 1, 0, 0, 8, 0])
        );
    }

    #[test]
    fn reads_past_the_end_are_refused_and_ata_reads_use_registers() {
        let mut server = MediaServer::new(Some(2048 * 10), Some(512 * 2880)).unwrap();
        ready(&mut server);
        assert_eq!(
            server.answer(&cd(&[0x28, 0, 0, 0, 0, 9, 0, 0, 2])),
            Answer::Status(Some(Sense::LBA_OUT_OF_RANGE))
        );
        // READ(12) with a count that would overflow.
        assert_eq!(
            server.answer(&cd(&[0xA8, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF])),
            Answer::Status(Some(Sense::LBA_OUT_OF_RANGE))
        );
        let floppy = CommandWritten {
            sector_count: 2,
            sector_number: 0x10,
            byte_count: 0x0001,
            ata: 0x20,
            ..CommandWritten::packet(Drive::Floppy, [0; 12])
        };
        let Answer::Read(plan) = server.answer(&floppy) else {
            panic!()
        };
        assert_eq!((plan.offset, plan.len), (0x110 * 512, 1024));
    }

    #[test]
    fn unknown_commands_get_check_condition() {
        let mut server = MediaServer::new(Some(2048), None).unwrap();
        ready(&mut server);
        for opcode in [0x04, 0x15, 0xBB, 0xFF] {
            assert_eq!(
                server.answer(&cd(&[opcode])),
                Answer::Status(Some(Sense::INVALID_COMMAND))
            );
        }
        let odd_ata = CommandWritten {
            ata: 0xEC,
            ..cd(&[])
        };
        assert_eq!(
            server.answer(&odd_ata),
            Answer::Status(Some(Sense::INVALID_COMMAND))
        );
        assert_eq!(
            server.answer(&cd(&[0x2A])),
            Answer::Status(Some(Sense::WRITE_PROTECTED))
        );
    }

    #[test]
    fn replies_respect_the_allocation_length() {
        let mut server = MediaServer::new(Some(2048 * 1000), None).unwrap();
        ready(&mut server);
        let Answer::Data(inq) = server.answer(&cd(&[0x12, 0, 0, 0, 5])) else {
            panic!()
        };
        assert_eq!(inq.len(), 5);
        let Answer::Data(toc) = server.answer(&cd(&[0x43, 2, 0, 0, 0, 0, 0, 0, 20])) else {
            panic!()
        };
        // Lead-out at 1000 blocks + 150 frames = 00:15:25 in MSF.
        assert_eq!(&toc[16..20], &[0, 0, 15, 25]);
        let Answer::Data(config) = server.answer(&cd(&[0x46, 0, 0, 0, 0, 0, 0, 1, 0])) else {
            panic!()
        };
        assert_eq!(be32(&config) as usize, config.len() - 4);
        assert_eq!(be16(&config[6..]), 0x0008);
        let Answer::Data(mode) = server.answer(&cd(&[0x5A, 0, 0x3F, 0, 0, 0, 0, 0, 8])) else {
            panic!()
        };
        assert_eq!(mode.len(), 8);
        assert_eq!(
            server.answer(&cd(&[0x5A, 0, 0x07])),
            Answer::Status(Some(Sense::INVALID_FIELD))
        );
    }

    #[test]
    fn read_plans_split_at_the_buffer_size() {
        let plan = ReadPlan {
            command: cd(&[]),
            offset: 4096,
            len: 20000,
        };
        let chunks: Vec<_> = plan.chunks(8192).collect();
        assert_eq!(
            chunks,
            [
                (4096, 8192, false),
                (12288, 8192, false),
                (20480, 3616, true)
            ]
        );
    }

    #[test]
    fn completions_round_trip_their_sense() {
        for sense in [None, Some(Sense::LBA_OUT_OF_RANGE)] {
            let body = command_end_body(Drive::Cdrom, sense);
            assert_eq!(command_end_sense(&body), Ok(sense));
        }
        let header = data_to_host_header(&cd(&[]), 100, true);
        assert_eq!(u16::from_le_bytes([header[1], header[2]]), 100);
    }
}
