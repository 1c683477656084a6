//! End to end: `amt_ider` serves images built by xorriso (a tool nobody here wrote) to the
//! simulated AMT over loopback, whose BIOS boots them; every region it read is compared with
//! the file by SHA-256.

use std::path::{Path, PathBuf};
use std::time::Duration;

use amt_sim::{SimConfig, Simulator};
use oobkit_io::ider::{IderError, Image, Images, ServeOptions, serve};
use oobkit_io::redirection::{RedirTarget, open_session};
use oobkit_redir::codec::SessionKind;
use oobkit_redir::storage::Drive;
use oobkit_sim::bios::{Boot, BootReport, Part};
use sha2::{Digest, Sha256};

const PASSWORD: &str = "Sim-P@ss1";

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("amt_ider-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Bytes that differ everywhere, so a read of the wrong block cannot hash right.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A bootable ISO made by xorriso: a 4-sector no-emulation boot image and 3 MiB of files.
fn bootable_iso(dir: &Path) -> PathBuf {
    let tree = dir.join("tree");
    std::fs::create_dir_all(tree.join("boot")).unwrap();
    std::fs::write(tree.join("boot/boot.img"), noise(2048, 7)).unwrap();
    std::fs::write(tree.join("data.bin"), noise(3 << 20, 11)).unwrap();
    let iso = dir.join("test.iso");
    let out = std::process::Command::new("xorriso")
        .args(["-as", "mkisofs", "-quiet", "-R", "-b", "boot/boot.img"])
        .args(["-no-emul-boot", "-boot-load-size", "4", "-o"])
        .arg(&iso)
        .arg(&tree)
        .output()
        .expect("xorriso runs (./test.sh installs it)");
    assert!(
        out.status.success(),
        "xorriso: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    iso
}

async fn simulator() -> Simulator {
    let mut config = SimConfig::loopback(PASSWORD);
    config.redir_listen = Some("127.0.0.1:0".parse().unwrap());
    Simulator::start(config).await.expect("simulator starts")
}

async fn amt_ider(sim: Option<&Simulator>, args: &[&str]) -> std::process::Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_amt_ider"));
    if let Some(sim) = sim {
        let port = sim.redir_addr.unwrap().port().to_string();
        command.args(["--host", "127.0.0.1", "--port", &port]);
    }
    let run = command
        .args(args)
        .env("AMT_PASSWORD", PASSWORD)
        .env_remove("AMT_HOST")
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("amt_ider ends within 60 s")
        .expect("amt_ider runs")
}

/// Every region the BIOS read hashes like the same blocks of the file.
fn check_regions(report: &BootReport, image: &[u8]) {
    assert!(!report.regions.is_empty(), "{report}");
    let block = report.block_size as usize;
    for region in &report.regions {
        let start = region.lba as usize * block;
        let end = start + region.blocks as usize * block;
        let expected: [u8; 32] = Sha256::digest(&image[start..end]).into();
        assert_eq!(region.sha256, expected, "{region:?} differs from the file");
    }
}

#[tokio::test]
async fn the_simulated_bios_boots_an_iso_served_by_amt_ider() {
    let dir = scratch("iso");
    let iso = bootable_iso(&dir);
    let bytes = std::fs::read(&iso).unwrap();
    let sim = simulator().await;
    let out = amt_ider(
        Some(&sim),
        &["--cd", iso.to_str().unwrap(), "--idle-exit", "2"],
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("El Torito boot image in blocks"),
        "{stdout}"
    );
    assert!(stdout.contains("the host went idle"), "{stdout}");
    // Not a terminal: plain log lines say what the host reads.
    assert!(stderr.contains("boot catalog"), "{stderr}");
    assert!(stderr.contains("boot image"), "{stderr}");

    let boots = sim.ider_boots();
    assert_eq!(boots.len(), 1, "{boots:?}");
    let report = &boots[0];
    assert_eq!(report.drive, Some(Drive::Cdrom));
    assert_eq!(report.blocks as usize * 2048, bytes.len());
    let Boot::ElTorito(entry) = report.boot else {
        panic!("not booted: {report}")
    };
    assert_eq!(entry.sectors, 4);
    let parts: Vec<Part> = report.regions.iter().map(|r| r.part).collect();
    assert_eq!(
        &parts[..3],
        [Part::BootRecord, Part::Catalog, Part::BootImage]
    );
    assert_eq!(parts.iter().filter(|p| **p == Part::Sample).count(), 8);
    // The boot image is the file xorriso was given.
    let image = report.regions[2].clone();
    let start = image.lba as usize * 2048;
    assert_eq!(&bytes[start..start + 2048], noise(2048, 7).as_slice());
    check_regions(report, &bytes);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn without_host_the_in_process_simulator_boots_a_floppy() {
    let dir = scratch("floppy");
    let mut floppy = noise(1_474_560, 3);
    floppy[510] = 0x55;
    floppy[511] = 0xAA;
    let path = dir.join("floppy.img");
    std::fs::write(&path, &floppy).unwrap();
    let out = amt_ider(None, &["--floppy", path.to_str().unwrap()]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("floppy of 2880 blocks of 512 bytes: booted the boot sector"),
        "{stdout}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn image_errors_are_clear() {
    let dir = scratch("errors");
    let out = amt_ider(None, &["--cd", dir.join("missing.iso").to_str().unwrap()]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot open image"), "{stderr}");
    let tiny = dir.join("tiny.iso");
    std::fs::write(&tiny, [0u8; 100]).unwrap();
    let out = amt_ider(None, &["--cd", tiny.to_str().unwrap()]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("at least one 2048-byte block"), "{stderr}");
    let out = amt_ider(None, &[]).await;
    assert_eq!(out.status.code(), Some(2), "no image is bad usage");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn an_image_that_shrinks_while_served_ends_the_session_with_the_reason() {
    let dir = scratch("shrink");
    let iso = bootable_iso(&dir);
    let sim = simulator().await;
    let images = Images {
        cd: Some(Image::open(&iso, Drive::Cdrom).unwrap()),
        floppy: None,
    };
    // Cut after the boot record: the BIOS's next read (the catalog) finds the file short.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&iso)
        .unwrap()
        .set_len(18 * 2048)
        .unwrap();
    let target = RedirTarget {
        endpoint: oobkit_io::Endpoint::plain("127.0.0.1", sim.redir_addr.unwrap().port()),
        transport: oobkit_redir::Transport::Tcp,
        user: "admin".into(),
        password: PASSWORD.into(),
    };
    let mut session = open_session(&target, SessionKind::Ider).await.unwrap();
    let served = tokio::time::timeout(
        Duration::from_secs(20),
        serve(&mut session, &images, &ServeOptions::default(), |_| {}),
    )
    .await
    .expect("serve returns");
    let error = served.expect_err("a short read is an error");
    assert!(matches!(error, IderError::ShortRead { .. }), "{error}");
    assert!(
        error.to_string().contains("changed while served"),
        "{error}"
    );
    session.end().await;
    let _ = std::fs::remove_dir_all(dir);
}
