//! Serving disk images to an AMT over IDE-R: the console side of storage redirection.
//!
//! [`serve`] answers the drive commands of an open IDE-R session (see
//! [`crate::redirection::open_session`]) with [`oobkit_redir::storage::MediaServer`], reading
//! the images lazily in pieces as the host asks (a 4 GiB ISO is never held in memory), and
//! waiting for the device to take each piece before reading the next.
//!
//! ```no_run
//! # async fn demo(target: oobkit_io::redirection::RedirTarget) -> Result<(), oobkit_io::ider::IderError> {
//! use oobkit_io::ider::{Images, Image, ServeOptions, serve};
//! use oobkit_io::redirection::open_session;
//! use oobkit_redir::codec::SessionKind;
//! use oobkit_redir::storage::Drive;
//! let images = Images { cd: Some(Image::open("debian.iso".as_ref(), Drive::Cdrom)?), floppy: None };
//! let mut session = open_session(&target, SessionKind::Ider).await?;
//! let end = serve(&mut session, &images, &ServeOptions::default(), |notice| println!("{notice:?}")).await?;
//! println!("{end:?}");
//! session.end().await;
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use oobkit_redir::codec::IderCommand;
use oobkit_redir::el_torito::{BOOT_RECORD_LBA, BootLayout, DiscPart};
use oobkit_redir::storage::{Answer, CommandWritten, Drive, MediaServer, ReadPlan, StorageError};
use oobkit_redir::{CloseReason, Event};

use crate::redirection::{MAX_SEND_BACKLOG, RedirError, Session};

/// Bytes read from an image at a time: a multiple of the device's read buffer, large enough
/// that reading costs little beside sending.
const READ_PIECE: usize = 256 * 1024;

/// An image file served as one drive.
#[derive(Debug)]
pub struct Image {
    path: PathBuf,
    file: Arc<std::fs::File>,
    len: u64,
    layout: BootLayout,
    drive: Drive,
}

impl Image {
    /// Opens an image for `drive`; a CD's El Torito boot structures are read now, to tell
    /// what the host reads later.
    pub fn open(path: &Path, drive: Drive) -> Result<Self, IderError> {
        let open_error = |source| IderError::Open {
            path: path.to_owned(),
            source,
        };
        let file = std::fs::File::open(path).map_err(open_error)?;
        let meta = file.metadata().map_err(open_error)?;
        if !meta.is_file() {
            return Err(open_error(std::io::Error::other("not a regular file")));
        }
        let mut image = Self {
            path: path.to_owned(),
            file: Arc::new(file),
            len: meta.len(),
            layout: BootLayout::default(),
            drive,
        };
        // Checked here so that a useless image is refused before connecting.
        MediaServer::new(Some(image.len), None).map_err(IderError::Storage)?;
        if drive == Drive::Cdrom {
            let block = |lba: u64| {
                let mut b = vec![0u8; 2048];
                std::os::unix::fs::FileExt::read_exact_at(&*image.file, &mut b, lba * 2048)
                    .ok()
                    .map(|()| b)
            };
            if let Some(record) = block(u64::from(BOOT_RECORD_LBA)) {
                let catalog = oobkit_redir::el_torito::BootRecord::parse(&record)
                    .ok()
                    .and_then(|r| block(u64::from(r.catalog)));
                image.layout = BootLayout::from_blocks(&record, catalog.as_deref());
            }
        }
        Ok(image)
    }

    /// Its size in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it is empty (never: [`Image::open`] refuses images under one block).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Where its El Torito boot structures are (empty for a floppy or a non-bootable disc).
    pub fn layout(&self) -> BootLayout {
        self.layout
    }

    /// What the block at byte `offset` is to a booting host.
    pub fn part(&self, offset: u64) -> DiscPart {
        let lba = offset / u64::from(self.drive.block_size());
        match self.drive {
            Drive::Cdrom => self.layout.part(lba),
            Drive::Floppy if lba == 0 => DiscPart::BootSector,
            Drive::Floppy => DiscPart::Data,
        }
    }

    async fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>, IderError> {
        let file = Arc::clone(&self.file);
        let read = tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; len];
            std::os::unix::fs::FileExt::read_exact_at(&*file, &mut buf, offset).map(|()| buf)
        })
        .await
        .map_err(|e| IderError::Read {
            path: self.path.clone(),
            offset,
            source: std::io::Error::other(e),
        })?;
        read.map_err(|source| {
            if source.kind() == std::io::ErrorKind::UnexpectedEof {
                IderError::ShortRead {
                    path: self.path.clone(),
                    offset,
                    len,
                    opened: self.len,
                }
            } else {
                IderError::Read {
                    path: self.path.clone(),
                    offset,
                    source,
                }
            }
        })
    }
}

/// The images served: a CD, a floppy, or both (many BIOSes want both).
#[derive(Debug, Default)]
pub struct Images {
    /// The CD-ROM image (an ISO).
    pub cd: Option<Image>,
    /// The floppy image.
    pub floppy: Option<Image>,
}

impl Images {
    fn get(&self, drive: Drive) -> Option<&Image> {
        match drive {
            Drive::Cdrom => self.cd.as_ref(),
            Drive::Floppy => self.floppy.as_ref(),
        }
    }
}

/// How [`serve`] runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServeOptions {
    /// Return [`ServeEnd::Idle`] once the host sent no command for this long after its first
    /// (scripts: "serve the installer until the host stops reading").
    pub idle_exit: Option<Duration>,
}

/// Why [`serve`] returned.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServeEnd {
    /// The session ended (the device closed it, or the connection).
    Closed(CloseReason),
    /// The host was idle for [`ServeOptions::idle_exit`]; end the session with
    /// [`Session::end`].
    Idle,
}

/// What [`serve`] tells its observer (for progress displays and logs).
#[derive(Debug)]
#[non_exhaustive]
pub enum Notice<'a> {
    /// The device enabled the drives (the features reply).
    Enabled,
    /// A drive command and the answer decided for it.
    Command(&'a CommandWritten, &'a Answer),
    /// Bytes of an image sent.
    Served {
        /// The drive.
        drive: Drive,
        /// What the host is reading.
        part: DiscPart,
        /// Bytes in this piece.
        bytes: usize,
    },
    /// The device reported an error (0x4A) or a host reset (0x46).
    Device(&'static str),
}

/// Why serving failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IderError {
    /// The image could not be opened.
    #[error("cannot open image {}: {source}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Reading the image failed.
    #[error("reading image {} at byte {offset}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Where.
        offset: u64,
        /// Why.
        source: std::io::Error,
    },
    /// The image ended before what the host asked for (it shrank after it was opened).
    #[error(
        "image {} ended inside the {len} bytes at byte {offset} the host asked for; it had {opened} bytes when opened (changed while served?)",
        path.display()
    )]
    ShortRead {
        /// The file.
        path: PathBuf,
        /// Where the read started.
        offset: u64,
        /// Bytes asked for.
        len: usize,
        /// The size when opened.
        opened: u64,
    },
    /// The image cannot be served (smaller than a block), or the device sent a malformed
    /// command.
    #[error("{0}")]
    Storage(StorageError),
    /// The session failed.
    #[error(transparent)]
    Session(#[from] RedirError),
}

/// Answers the drive commands of `session` from `images` until the session ends (or the host
/// is idle, see [`ServeOptions::idle_exit`]).
pub async fn serve(
    session: &mut Session,
    images: &Images,
    options: &ServeOptions,
    mut observe: impl FnMut(Notice<'_>),
) -> Result<ServeEnd, IderError> {
    let mut server = MediaServer::new(
        images.cd.as_ref().map(Image::len),
        images.floppy.as_ref().map(Image::len),
    )
    .map_err(IderError::Storage)?;
    let mut commands = 0u64;
    loop {
        let event = match options.idle_exit.filter(|_| commands > 0) {
            Some(idle) => match tokio::time::timeout(idle, session.event()).await {
                Ok(event) => event?,
                Err(_) => return Ok(ServeEnd::Idle),
            },
            None => session.event().await?,
        };
        let (command, body) = match event {
            Event::Closed(reason) => return Ok(ServeEnd::Closed(reason)),
            Event::Ider { command, body, .. } => (command, body),
            _ => continue,
        };
        match command {
            IderCommand::FeaturesReply => observe(Notice::Enabled),
            IderCommand::ErrorOccurred => observe(Notice::Device("the device reported an error")),
            IderCommand::ResetOccurred => {
                observe(Notice::Device("the host reset"));
                session.with_client(|c| c.send_ider(IderCommand::ResetOccurredResponse, 0, &[]));
            }
            IderCommand::CommandWritten => {
                commands += 1;
                let written = CommandWritten::parse(&body).map_err(IderError::Storage)?;
                let answer = server.answer(&written);
                observe(Notice::Command(&written, &answer));
                if let Some(plan) = session.with_client(|c| c.ider_answer(&written, answer)) {
                    // The server answers reads only for drives that have an image.
                    if let Some(image) = images.get(written.drive) {
                        send_read(session, image, &plan, &mut observe).await?;
                    }
                }
            }
            _ => {}
        }
    }
}

/// Sends a read: a piece of the image at a time, each once the device took the one before.
async fn send_read(
    session: &mut Session,
    image: &Image,
    plan: &ReadPlan,
    observe: &mut impl FnMut(Notice<'_>),
) -> Result<(), IderError> {
    let chunk = session.with_client(|c| c.ider_chunk());
    let piece = READ_PIECE / chunk * chunk;
    for (offset, len, last) in plan.chunks(piece) {
        let data = image.read_at(offset, len).await?;
        session.with_client(|c| c.ider_data(&plan.command, &data, last));
        observe(Notice::Served {
            drive: plan.command.drive,
            part: image.part(offset),
            bytes: len,
        });
        session.drain_to(MAX_SEND_BACKLOG).await?;
    }
    Ok(())
}
