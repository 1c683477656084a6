//! El Torito, the bootable CD format: where a BIOS finds the boot image on an ISO 9660 disc.
//!
//! Block 17 holds the Boot Record Volume Descriptor, naming the block of the boot catalog; the
//! catalog's validation entry is followed by the initial (default) entry: the boot image's
//! first block, its size in 512-byte "virtual sectors" and the emulation it asks for. The
//! simulated AMT's BIOS reads them to boot; a console reads them to tell the user what the
//! host is reading.
//!
//! ```
//! use oobkit_redir::el_torito::{BootRecord, Emulation};
//! let mut record = [0u8; 2048];
//! record[1..6].copy_from_slice(b"CD001");
//! record[6] = 1;
//! record[7..30].copy_from_slice(b"EL TORITO SPECIFICATION");
//! record[0x47..0x4B].copy_from_slice(&19u32.to_le_bytes());
//! assert_eq!(BootRecord::parse(&record).unwrap().catalog, 19);
//! assert_eq!(Emulation::NoEmulation.image_bytes(4), 2048);
//! ```

/// The block of the Boot Record Volume Descriptor (2048-byte blocks).
pub const BOOT_RECORD_LBA: u32 = 17;

/// Why a block is not what El Torito says it should be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ElToritoError {
    /// Fewer bytes than a block.
    #[error("the block has {0} bytes, fewer than the structure needs")]
    Short(usize),
    /// Block 17 is not an El Torito boot record: the disc is not bootable.
    #[error("block 17 is not an El Torito boot record: the image is not a bootable CD")]
    NotBootRecord,
    /// The catalog's validation entry is wrong (header, key bytes or checksum).
    #[error("the boot catalog's validation entry is invalid ({0})")]
    BadValidationEntry(&'static str),
    /// The default entry is not marked bootable.
    #[error("the boot catalog's default entry is not bootable")]
    NotBootable,
    /// An emulation type El Torito does not define.
    #[error("the default entry asks for an unknown emulation type {0:#04x}")]
    UnknownEmulation(u8),
}

/// The Boot Record Volume Descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootRecord {
    /// Block of the boot catalog.
    pub catalog: u32,
}

impl BootRecord {
    /// Parses block 17.
    pub fn parse(block: &[u8]) -> Result<Self, ElToritoError> {
        let b = block.get(..0x4B).ok_or(ElToritoError::Short(block.len()))?;
        // Type 0 (boot record), "CD001", version 1, the boot system identifier.
        if b[0] != 0 || &b[1..6] != b"CD001" || b[6] != 1 || &b[7..30] != b"EL TORITO SPECIFICATION"
        {
            return Err(ElToritoError::NotBootRecord);
        }
        Ok(Self {
            catalog: u32::from_le_bytes([b[0x47], b[0x48], b[0x49], b[0x4A]]),
        })
    }
}

/// What the BIOS makes of the boot image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emulation {
    /// Loaded as is (`sectors` 512-byte sectors), as isolinux and GRUB images are.
    NoEmulation,
    /// A 1.2 MB floppy.
    Floppy1200,
    /// A 1.44 MB floppy.
    Floppy1440,
    /// A 2.88 MB floppy.
    Floppy2880,
    /// A hard disk: the image starts with a master boot record.
    HardDisk,
}

impl Emulation {
    /// The emulation of a media-type byte.
    pub const fn from_byte(byte: u8) -> Option<Self> {
        Some(match byte & 0x0F {
            0 => Self::NoEmulation,
            1 => Self::Floppy1200,
            2 => Self::Floppy1440,
            3 => Self::Floppy2880,
            4 => Self::HardDisk,
            _ => return None,
        })
    }

    /// Bytes the BIOS loads for an entry of `sectors` virtual sectors: those sectors without
    /// emulation, the whole floppy with floppy emulation, the master boot record for a disk.
    pub const fn image_bytes(self, sectors: u16) -> u64 {
        match self {
            Self::NoEmulation => sectors as u64 * 512,
            Self::Floppy1200 => 1_228_800,
            Self::Floppy1440 => 1_474_560,
            Self::Floppy2880 => 2_949_120,
            Self::HardDisk => 512,
        }
    }
}

/// The boot catalog's initial (default) entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootEntry {
    /// Platform of the validation entry (0 x86, 0xEF UEFI).
    pub platform: u8,
    /// Emulation.
    pub emulation: Emulation,
    /// Real-mode segment the image is loaded to (0: the default 0x7C0).
    pub load_segment: u16,
    /// Virtual (512-byte) sectors loaded.
    pub sectors: u16,
    /// First block (2048 bytes) of the image.
    pub load_rba: u32,
}

impl BootEntry {
    /// Parses the first block of the boot catalog: the validation entry, then the default entry.
    pub fn parse(catalog: &[u8]) -> Result<Self, ElToritoError> {
        let b = catalog
            .get(..64)
            .ok_or(ElToritoError::Short(catalog.len()))?;
        let validation = &b[..32];
        if validation[0] != 1 {
            return Err(ElToritoError::BadValidationEntry("header id is not 1"));
        }
        if validation[30..32] != [0x55, 0xAA] {
            return Err(ElToritoError::BadValidationEntry("key bytes are not 55 AA"));
        }
        // The sixteen little-endian words of the entry add up to zero.
        let sum = validation.chunks_exact(2).fold(0u16, |sum, w| {
            sum.wrapping_add(u16::from_le_bytes([w[0], w[1]]))
        });
        if sum != 0 {
            return Err(ElToritoError::BadValidationEntry(
                "checksum does not add up",
            ));
        }
        let entry = &b[32..64];
        if entry[0] != 0x88 {
            return Err(ElToritoError::NotBootable);
        }
        Ok(Self {
            platform: validation[1],
            emulation: Emulation::from_byte(entry[1])
                .ok_or(ElToritoError::UnknownEmulation(entry[1]))?,
            load_segment: u16::from_le_bytes([entry[2], entry[3]]),
            sectors: u16::from_le_bytes([entry[6], entry[7]]),
            load_rba: u32::from_le_bytes([entry[8], entry[9], entry[10], entry[11]]),
        })
    }

    /// The 2048-byte blocks the image covers (at least one).
    pub fn blocks(&self) -> u64 {
        self.emulation
            .image_bytes(self.sectors)
            .div_ceil(2048)
            .max(1)
    }
}

/// What a block of a CD is to a BIOS booting from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DiscPart {
    /// The ISO 9660 volume descriptors (blocks 16 to 17 and on), the boot record among them.
    VolumeDescriptors,
    /// The El Torito boot catalog.
    BootCatalog,
    /// The boot image the catalog names.
    BootImage,
    /// A floppy's (or disk's) first sector.
    BootSector,
    /// Anything else: the file system and files.
    Data,
}

impl DiscPart {
    /// For progress lines.
    pub const fn describe(self) -> &'static str {
        match self {
            Self::VolumeDescriptors => "volume descriptors",
            Self::BootCatalog => "boot catalog",
            Self::BootImage => "boot image",
            Self::BootSector => "boot sector",
            Self::Data => "data",
        }
    }
}

/// Where the boot structures of a disc are, to tell what a host is reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BootLayout {
    /// The catalog's block, when the disc is bootable.
    pub catalog: Option<u32>,
    /// The boot image's blocks `[start, end)`, when the catalog names one.
    pub image: Option<(u64, u64)>,
}

impl BootLayout {
    /// The layout from block 17 and the catalog's first block (`None` when not read, for
    /// example because block 17 is not a boot record).
    pub fn from_blocks(boot_record: &[u8], catalog: Option<&[u8]>) -> Self {
        let Ok(record) = BootRecord::parse(boot_record) else {
            return Self::default();
        };
        let image = catalog
            .and_then(|c| BootEntry::parse(c).ok())
            .map(|e| (u64::from(e.load_rba), u64::from(e.load_rba) + e.blocks()));
        Self {
            catalog: Some(record.catalog),
            image,
        }
    }

    /// What block `lba` is.
    pub fn part(&self, lba: u64) -> DiscPart {
        if self.catalog.is_some_and(|c| u64::from(c) == lba) {
            DiscPart::BootCatalog
        } else if self
            .image
            .is_some_and(|(start, end)| (start..end).contains(&lba))
        {
            DiscPart::BootImage
        } else if (16..=u64::from(BOOT_RECORD_LBA)).contains(&lba) {
            DiscPart::VolumeDescriptors
        } else {
            DiscPart::Data
        }
    }
}

/// The validation entry and default entry of a catalog for `entry` (how an ISO maker writes
/// them; used by tests and by image builders).
pub fn catalog_bytes(entry: &BootEntry) -> [u8; 64] {
    let mut b = [0u8; 64];
    b[0] = 1;
    b[1] = entry.platform;
    b[30] = 0x55;
    b[31] = 0xAA;
    let sum = b[..32].chunks_exact(2).fold(0u16, |sum, w| {
        sum.wrapping_add(u16::from_le_bytes([w[0], w[1]]))
    });
    b[28..30].copy_from_slice(&0u16.wrapping_sub(sum).to_le_bytes());
    b[32] = 0x88;
    b[33] = match entry.emulation {
        Emulation::NoEmulation => 0,
        Emulation::Floppy1200 => 1,
        Emulation::Floppy1440 => 2,
        Emulation::Floppy2880 => 3,
        Emulation::HardDisk => 4,
    };
    b[34..36].copy_from_slice(&entry.load_segment.to_le_bytes());
    b[38..40].copy_from_slice(&entry.sectors.to_le_bytes());
    b[40..44].copy_from_slice(&entry.load_rba.to_le_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_round_trips_and_checks_its_checksum() {
        let entry = BootEntry {
            platform: 0,
            emulation: Emulation::NoEmulation,
            load_segment: 0,
            sectors: 4,
            load_rba: 35,
        };
        let mut bytes = catalog_bytes(&entry);
        assert_eq!(BootEntry::parse(&bytes), Ok(entry));
        assert_eq!(entry.blocks(), 1);
        bytes[4] ^= 1;
        assert!(matches!(
            BootEntry::parse(&bytes),
            Err(ElToritoError::BadValidationEntry(_))
        ));
        assert_eq!(
            BootEntry::parse(&bytes[..10]),
            Err(ElToritoError::Short(10))
        );
        assert_eq!(
            BootRecord::parse(&[0u8; 2048]),
            Err(ElToritoError::NotBootRecord)
        );
    }
}
