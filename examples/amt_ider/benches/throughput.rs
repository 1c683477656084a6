//! IDE-R throughput: a sparse 1 GiB bootable image served by `oobkit_io::ider::serve` to the
//! simulated AMT over loopback, whose BIOS boots it and then reads every block in order
//! (64 KiB per READ(10), SHA-256 of everything), beside a plain sequential read of the same
//! file, and a plain read with SHA-256, in the same run. `-- --test` (CI) uses 32 MiB.

use std::io::Read;
use std::time::{Duration, Instant};

use oobkit_io::ider::{Image, Images, ServeOptions, serve};
use oobkit_io::redirection::{RedirTarget, open_session};
use oobkit_redir::codec::SessionKind;
use oobkit_redir::el_torito::{BootEntry, Emulation, catalog_bytes};
use oobkit_redir::storage::Drive;
use sha2::{Digest, Sha256};

/// A sparse image of `size` bytes with an El Torito boot record, catalog and 4-sector image.
fn sparse_bootable(path: &std::path::Path, size: u64) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::create(path).unwrap();
    file.set_len(size).unwrap();
    let mut record = vec![0u8; 2048];
    record[1..6].copy_from_slice(b"CD001");
    record[6] = 1;
    record[7..30].copy_from_slice(b"EL TORITO SPECIFICATION");
    record[0x47..0x4B].copy_from_slice(&18u32.to_le_bytes());
    file.write_all_at(&record, 17 * 2048).unwrap();
    let entry = BootEntry {
        platform: 0,
        emulation: Emulation::NoEmulation,
        load_segment: 0,
        sectors: 4,
        load_rba: 19,
    };
    file.write_all_at(&catalog_bytes(&entry), 18 * 2048)
        .unwrap();
    file.write_all_at(&[0xEB; 2048], 19 * 2048).unwrap();
}

fn plain_read(path: &std::path::Path, hash: bool) -> (Duration, [u8; 32]) {
    let start = Instant::now();
    let mut file = std::fs::File::open(path).unwrap();
    let mut buf = vec![0u8; 256 * 1024];
    let mut hasher = Sha256::new();
    loop {
        let n = file.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        if hash {
            hasher.update(&buf[..n]);
        }
    }
    (start.elapsed(), hasher.finalize().into())
}

fn mib_s(bytes: u64, took: Duration) -> f64 {
    bytes as f64 / 1_048_576.0 / took.as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let smoke = std::env::args().any(|a| a == "--test");
    let size: u64 = if smoke { 32 << 20 } else { 1 << 30 };
    let dir = std::env::temp_dir().join(format!("amt_ider-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("sparse.iso");
    sparse_bootable(&path, size);

    let (read_took, _) = plain_read(&path, false);
    let (hash_took, file_sha) = plain_read(&path, true);

    let mut config = amt_sim::SimConfig::loopback("bench-pw");
    config.redir_listen = Some("127.0.0.1:0".parse().unwrap());
    config.ider_read = oobkit_sim::bios::ReadScope::Everything;
    let sim = amt_sim::Simulator::start(config).await.unwrap();
    let target = RedirTarget {
        endpoint: oobkit_io::Endpoint::plain("127.0.0.1", sim.redir_addr.unwrap().port()),
        transport: oobkit_redir::Transport::Tcp,
        user: "admin".into(),
        password: "bench-pw".into(),
    };
    let images = Images {
        cd: Some(Image::open(&path, Drive::Cdrom).unwrap()),
        floppy: None,
    };
    let start = Instant::now();
    let mut session = open_session(&target, SessionKind::Ider).await.unwrap();
    let serving = tokio::spawn(async move {
        let options = ServeOptions {
            idle_exit: Some(Duration::from_secs(1)),
        };
        let end = serve(&mut session, &images, &options, |_| {}).await;
        session.end().await;
        end
    });
    let report = loop {
        if let Some(report) = sim.ider_boots().pop() {
            break report;
        }
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "the BIOS did not finish"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let ider_took = start.elapsed();
    serving.await.unwrap().unwrap();
    let whole = report.regions.last().expect("the whole medium was read");
    assert_eq!(whole.sha256, file_sha, "the BIOS read what the file holds");
    assert!(
        matches!(report.boot, oobkit_sim::bios::Boot::ElTorito(_)),
        "{report}"
    );
    let _ = std::fs::remove_dir_all(&dir);

    let read = mib_s(size, read_took);
    let hashed = mib_s(size, hash_took);
    let ider = mib_s(report.bytes, ider_took);
    println!(
        "IDE-R serving a {} MiB sparse image end to end (boot + every block, {} commands):",
        size >> 20,
        report.commands
    );
    println!("  plain sequential read:            {read:9.0} MiB/s");
    println!("  plain read + SHA-256:             {hashed:9.0} MiB/s");
    println!(
        "  IDE-R over loopback (BIOS hashes): {ider:9.0} MiB/s  = {:.2} of the plain read, {:.2} of read + SHA-256",
        ider / read,
        ider / hashed
    );
    println!(
        "FIGURE ider_throughput_mib_s={ider:.0} plain_read_mib_s={read:.0} read_sha256_mib_s={hashed:.0}"
    );
}
