//! Writes `docs/performance.md` and its SVG charts from one run of `benches/report.sh`: the
//! `FIGURE key=value` lines the benchmarks printed, and criterion's estimates.
//!
//! `perf_report FIGURES CRITERION_DIR OUT.md SVG_DIR MACHINE DATE`

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Every `key=value` of every `FIGURE` line.
fn figures(path: &Path) -> BTreeMap<String, f64> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.trim().strip_prefix("FIGURE ") else {
            continue;
        };
        for pair in rest.split_whitespace() {
            if let Some((k, v)) = pair.split_once('=')
                && let Ok(v) = v.parse()
            {
                out.insert(k.to_owned(), v);
            }
        }
    }
    out
}

/// Criterion's mean (ns) of every function, by group directory.
fn criterion(dir: &Path) -> BTreeMap<String, Vec<(String, f64)>> {
    let mut groups = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return groups;
    };
    for group in entries.flatten() {
        let mut functions = Vec::new();
        for function in std::fs::read_dir(group.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let estimates = function.path().join("new/estimates.json");
            let Ok(json) = std::fs::read_to_string(&estimates) else {
                continue;
            };
            if let Some(mean) = mean_ns(&json) {
                functions.push((function.file_name().to_string_lossy().into_owned(), mean));
            }
        }
        if !functions.is_empty() {
            functions.sort_by(|a, b| a.0.cmp(&b.0));
            groups.insert(group.file_name().to_string_lossy().into_owned(), functions);
        }
    }
    groups
}

/// `"mean":{..."point_estimate":N` without a JSON parser for one number.
fn mean_ns(json: &str) -> Option<f64> {
    let at = json.find("\"mean\"")?;
    let rest = &json[at..];
    let at = rest.find("\"point_estimate\":")? + "\"point_estimate\":".len();
    let end = rest[at..].find([',', '}'])?;
    rest[at..at + end].trim().parse().ok()
}

/// A horizontal bar chart: one bar per (label, value), the value written after the bar.
fn bars(title: &str, unit: &str, rows: &[(String, f64)]) -> String {
    let (label_w, bar_w, row_h, top) = (260.0, 380.0, 26.0, 36.0);
    let height = top + row_h * rows.len() as f64 + 12.0;
    let max = rows
        .iter()
        .map(|r| r.1)
        .fold(0.0, f64::max)
        .max(f64::MIN_POSITIVE);
    let mut svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="760" height="{height}" font-family="sans-serif" font-size="13"><rect width="100%" height="100%" fill="#fff"/><text x="10" y="22" font-size="15" font-weight="bold">{}</text>"##,
        escape(title)
    );
    for (i, (label, value)) in rows.iter().enumerate() {
        let y = top + row_h * i as f64;
        let w = (value / max * bar_w).max(1.0);
        let colour = if label.starts_with("oobkit") || label.starts_with("amt_ider") {
            "#2b6cb0"
        } else {
            "#a0aec0"
        };
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text><rect x="{}" y="{}" width="{w:.1}" height="{}" fill="{colour}"/><text x="{}" y="{}">{} {}</text>"#,
            label_w - 8.0,
            y + 16.0,
            escape(label),
            label_w,
            y + 4.0,
            row_h - 8.0,
            label_w + w + 6.0,
            y + 16.0,
            number(*value),
            escape(unit)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn number(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

struct Report {
    md: String,
    svg_dir: PathBuf,
}

impl Report {
    fn chart(&mut self, file: &str, title: &str, unit: &str, rows: &[(String, f64)]) {
        if rows.is_empty() {
            return;
        }
        std::fs::write(self.svg_dir.join(file), bars(title, unit, rows)).expect("svg written");
        let _ = writeln!(self.md, "\n![{title}](perf/{file})\n");
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [figures_path, criterion_dir, out, svg_dir, machine, date] = args.as_slice() else {
        eprintln!("usage: perf_report FIGURES CRITERION_DIR OUT.md SVG_DIR MACHINE DATE");
        std::process::exit(2);
    };
    let f = figures(Path::new(figures_path));
    let groups = criterion(Path::new(criterion_dir));
    std::fs::create_dir_all(svg_dir).expect("svg dir");
    let mut r = Report {
        md: String::new(),
        svg_dir: PathBuf::from(svg_dir),
    };
    let get = |k: &str| f.get(k).copied();
    let _ = writeln!(
        r.md,
        "# Performance\n\nEvery figure here comes from one run of `benches/report.sh` on {machine}, {date}; each is shown beside a baseline measured in the same run (ratios travel between machines, absolute numbers do not). Regenerate with:\n\n    ./test.sh --setup-only   # peers: valgrind, lxml, xmltodict\n    benches/report.sh        # about 10 minutes; rewrites this file and docs/perf/*.svg\n"
    );

    // WS-Man parse.
    let _ = writeln!(r.md, "## WS-Management reply parsing\n");
    if let (Some(floor), Some(view), Some(owned)) = (
        get("wsman_ns_reader_us"),
        get("wsman_oobkit_view_us"),
        get("wsman_oobkit_us"),
    ) {
        let seed = get("wsman_seed_lxml_us").unwrap_or(f64::NAN);
        let xmltodict = get("wsman_xmltodict_us").unwrap_or(f64::NAN);
        let reader = get("wsman_reader_us").unwrap_or(f64::NAN);
        let _ = writeln!(
            r.md,
            "The benches' 100-item PullResponse ({} bytes, real instances from the fixture corpus), best of 40 rounds of 100 parses per parser, the parsers taking turns, in one process (Python in the next, best of 5 rounds of 50). `oobkit` builds every instance with owned strings (`Response::parse`); `oobkit view` the same instances borrowing names and text from the document (`ResponseView::parse`). The floor is quick-xml's namespace-resolving event loop over the same bytes, doing nothing with the events.\n",
            get("wsman_bytes").unwrap_or(0.0)
        );
        let _ = writeln!(
            r.md,
            "| parser | µs per parse | × the NsReader floor | seed's path ÷ this |\n| --- | ---: | ---: | ---: |"
        );
        for (name, us) in [
            ("quick-xml Reader loop (no namespaces)", reader),
            ("quick-xml NsReader loop (floor)", floor),
            ("oobkit view", view),
            ("oobkit (owned)", owned),
            ("xmltodict 1.0.4", xmltodict),
            ("seed: lxml 6.1.3 → OrderedDict", seed),
        ] {
            let _ = writeln!(
                r.md,
                "| {name} | {} | {:.2} | {:.1} |",
                number(us),
                us / floor,
                seed / us
            );
        }
        if let (Some(cf), Some(cv), Some(co)) = (
            get("callgrind_ns_reader_ir"),
            get("callgrind_oobkit_view_ir"),
            get("callgrind_oobkit_ir"),
        ) {
            let _ = writeln!(
                r.md,
                "\nInstructions per parse under callgrind (stable from run to run): floor {}, oobkit view {} ({:.2}×), oobkit {} ({:.2}×).",
                number(cf),
                number(cv),
                cv / cf,
                number(co),
                co / cf
            );
            if let (Some(cr), Some(utf8)) =
                (get("callgrind_reader_ir"), get("callgrind_reader_utf8_ir"))
            {
                let _ = writeln!(
                    r.md,
                    "quick-xml's bare Reader loop takes {} instructions per parse, {} of them ({:.0}%) checking that each slice it hands out is UTF-8 (quick-xml 0.42 does so even for a `str` document). oobkit cuts the markup with quick-xml's grammar pieces over the `str` instead (`crates/wsman/src/scan.rs`, held to the reader's tokens by a property test and a fuzz target), reads a property's text and end tag at once, and plain attributes without the byte-at-a-time iterator: oobkit view, which builds every instance, is {:.2}× that bare loop, oobkit {:.2}×.",
                    number(cr),
                    number(utf8),
                    100.0 * utf8 / cr,
                    cv / cr,
                    co / cr
                );
            }
            if let Some(cs) = get("callgrind_seed_lxml_ir") {
                let _ = writeln!(
                    r.md,
                    "The seed's path takes {} instructions per parse (interpreter start-up subtracted): {:.1}× oobkit view, {:.1}× oobkit.",
                    number(cs),
                    cs / cv,
                    cs / co
                );
            }
        }
        r.chart(
            "wsman.svg",
            "WS-Man 100-item Pull: microseconds per parse",
            "µs",
            &[
                ("quick-xml NsReader (floor)".into(), floor),
                ("oobkit view".into(), view),
                ("oobkit (owned)".into(), owned),
                ("xmltodict".into(), xmltodict),
                ("seed: lxml → OrderedDict".into(), seed),
            ],
        );
    }

    // Codecs.
    let _ = writeln!(
        r.md,
        "## Codecs beside memcpy and their peers (criterion)\n\nEach group's functions as multiples of its baseline (`baseline_*`, `floor_*`); `peer_*` is the library a user would otherwise pick on the same bytes: tokio-util's `LengthDelimitedCodec` for RRMT frames, tungstenite reading and rewriting the messages for the websocket passthrough (whose baseline is one memcpy: a relay copies in and out, so 2.0 is its floor).\n\n| group | function | mean | × baseline |\n| --- | --- | ---: | ---: |"
    );
    let mut ratios = Vec::new();
    for (group, functions) in &groups {
        let baseline = functions
            .iter()
            .find(|(n, _)| n.starts_with("baseline") || n.starts_with("floor_quick_xml_ns"))
            .map(|(_, ns)| *ns);
        for (name, ns) in functions {
            let ratio = baseline.map(|b| ns / b);
            let _ = writeln!(
                r.md,
                "| {group} | {name} | {} | {} |",
                if *ns >= 1000.0 {
                    format!("{} µs", number(ns / 1000.0))
                } else {
                    format!("{} ns", number(*ns))
                },
                ratio.map_or("".into(), |x| format!("{x:.2}"))
            );
            if let Some(x) = ratio
                && !name.starts_with("baseline")
                && !name.starts_with("floor")
            {
                ratios.push((format!("{group}: {name}"), x));
            }
        }
    }
    r.chart(
        "codecs.svg",
        "Codecs: time as a multiple of the same run's baseline",
        "×",
        &ratios,
    );

    // Programs.
    let _ = writeln!(r.md, "## Programs over loopback\n");
    if let (Some(sol50), Some(sol99), Some(tcp50), Some(tcp99)) = (
        get("sol_echo_p50_us"),
        get("sol_echo_p99_us"),
        get("tcp_echo_p50_us"),
        get("tcp_echo_p99_us"),
    ) {
        let _ = writeln!(
            r.md,
            "- **sol_telnet keystroke echo** (telnet → sol_telnet → simulated AMT's SOL → back): p50 {} µs, p99 {} µs; a plain loopback TCP echo in the same run: p50 {} µs, p99 {} µs.",
            number(sol50),
            number(sol99),
            number(tcp50),
            number(tcp99)
        );
    }
    if let (Some(relay), Some(copy), Some(direct)) = (
        get("kvm_relay_gib_s"),
        get("tcp_copy_gib_s"),
        get("amt_direct_gib_s"),
    ) {
        let _ = writeln!(
            r.md,
            "- **kvm_vnc relay**: {relay:.2} GiB/s through the simulated AMT and kvm_vnc; {direct:.2} GiB/s from the simulated AMT without kvm_vnc (the hop keeps {:.0}%); a plain loopback copy {copy:.2} GiB/s.",
            100.0 * relay / direct
        );
        r.chart(
            "kvm_relay.svg",
            "KVM relay throughput (GiB/s)",
            "GiB/s",
            &[
                ("loopback TCP copy".into(), copy),
                ("simulated AMT, direct".into(), direct),
                ("oobkit kvm_vnc hop".into(), relay),
            ],
        );
    }
    if let (Some(ider), Some(read), Some(hashed)) = (
        get("ider_throughput_mib_s"),
        get("plain_read_mib_s"),
        get("read_sha256_mib_s"),
    ) {
        let _ = writeln!(
            r.md,
            "- **IDE-R** (`amt_ider`'s serving loop → simulated AMT whose BIOS boots and then reads every block, hashing it): {ider:.0} MiB/s; in the same run a plain sequential read of the file {read:.0} MiB/s and a read with SHA-256 {hashed:.0} MiB/s (the simulated BIOS hashes everything it reads, on the same two cores)."
        );
        r.chart(
            "ider.svg",
            "IDE-R: serving a sparse image end to end (MiB/s)",
            "MiB/s",
            &[
                ("plain read".into(), read),
                ("plain read + SHA-256".into(), hashed),
                ("amt_ider → simulated BIOS".into(), ider),
            ],
        );
    }
    if let (Some(ours), Some(seed), Some(direct)) = (
        get("vnc_proxy_mib_s"),
        get("seed_proxy_mib_s"),
        get("direct_ws_mib_s"),
    ) {
        let _ = writeln!(
            r.md,
            "- **vnc_proxy** (a VM console streaming through the KubeVirt stand-in, which writes each 32 KiB frame at once as virt-handler does, from a console held in memory; the stand-in and the client on one core, the proxy on the other; frames relayed as they are, headers parsed only): {ours:.0} MiB/s; the seed (LabOrchestrator's WebsocketProxyLib 1.0.0 from PyPI) {seed:.0} MiB/s ({:.1}×); a client talking to the stand-in directly {direct:.0} MiB/s (vnc_proxy keeps {:.0}%; no proxy at all is {:.1}× the seed; the direct path's two copies of each byte stay in one core's cache, a proxy adds two more across cores). Connect p99: {} µs through vnc_proxy, {} µs direct, {} µs through the seed. Memory per idle session: {} bytes, the seed {} bytes.",
            ours / seed,
            100.0 * ours / direct,
            direct / seed,
            number(get("vnc_proxy_connect_p99_us").unwrap_or(f64::NAN)),
            number(get("direct_connect_p99_us").unwrap_or(f64::NAN)),
            number(get("seed_connect_p99_us").unwrap_or(f64::NAN)),
            number(get("vnc_proxy_bytes_per_idle").unwrap_or(f64::NAN)),
            number(get("seed_bytes_per_idle").unwrap_or(f64::NAN)),
        );
        if let (Some(websockify), Some(hop)) = (get("websockify_mib_s"), get("oobkit_hop_mib_s")) {
            let _ = writeln!(
                r.md,
                "  One websocket-to-TCP hop in front of the same console: oobkit's (the stand-in joining console bytes already waiting into one write) {hop:.0} MiB/s, Debian's websockify {websockify:.0} MiB/s ({:.1}×; websockify relays {} MiB per second of its own processor time).",
                hop / websockify,
                number(get("websockify_mib_per_cpu_s").unwrap_or(f64::NAN)),
            );
        }
        if let (Some(ours_cpu), Some(seed_cpu)) = (
            get("vnc_proxy_mib_per_cpu_s"),
            get("seed_proxy_mib_per_cpu_s"),
        ) {
            let _ = writeln!(
                r.md,
                "  Per second of each proxy's own processor time, vnc_proxy relays {ours_cpu:.0} MiB and the seed {seed_cpu:.0} MiB ({:.1}×); half of vnc_proxy's time is the kernel copying bytes in and out, most of the rest the kernel's TCP.",
                ours_cpu / seed_cpu
            );
        }
        r.chart(
            "vnc_proxy.svg",
            "VNC websocket relay (MiB/s)",
            "MiB/s",
            &[
                ("direct to the upstream".into(), direct),
                ("oobkit vnc_proxy".into(), ours),
                ("seed: WebsocketProxyLib".into(), seed),
            ],
        );
    }
    if let (Some(ours), Some(webssh), Some(source)) = (
        get("web_console_mb_s"),
        get("webssh_mb_s"),
        get("xterm_source_mb_s"),
    ) {
        let _ = writeln!(
            r.md,
            "- **web_console** (`cat` of 52 MB over SSH, rendered by xterm.js in headless Chromium): {ours:.1} MB/s; webssh 1.6.3 (PyPI) on the same sshd and browser {webssh:.1} MB/s ({:.1}×); xterm.js in the same page fed the same bytes from an in-page source in alternate rounds (the terminal's own limit; best round of each) {source:.1} MB/s (web_console reaches {:.0}%; round by round, against the source timed just before it, a median {}%). Keystroke echo seen in the page, p50/p99: {}/{} ms, webssh {}/{} ms.",
            ours / webssh,
            100.0 * ours / source,
            number(get("web_console_paired_pct").unwrap_or(f64::NAN)),
            number(get("web_console_echo_p50_ms").unwrap_or(f64::NAN)),
            number(get("web_console_echo_p99_ms").unwrap_or(f64::NAN)),
            number(get("webssh_echo_p50_ms").unwrap_or(f64::NAN)),
            number(get("webssh_echo_p99_ms").unwrap_or(f64::NAN)),
        );
        r.chart(
            "web_console.svg",
            "Terminal output rendered in the browser (MB/s)",
            "MB/s",
            &[
                ("xterm.js, in-page source".into(), source),
                ("oobkit web_console".into(), ours),
                ("webssh".into(), webssh),
            ],
        );
    }
    if let (Some(browser), Some(native)) = (get("kvm_browser_fps"), get("kvm_native_fps")) {
        let _ = writeln!(
            r.md,
            "- **KVM in the browser** (the simulated AMT's 1024×768 32-bit screen, whole frames back to back): {browser:.1} frames/s drawn by noVNC in headless Chromium through web_console; {native:.1} frames/s read by a native RFB client through kvm_vnc (it decodes nothing and draws nothing: the transport's ceiling, not a viewer's). The serial console's keystroke echo in the page: p50/p99 {}/{} ms.",
            number(get("web_console_sol_echo_p50_ms").unwrap_or(f64::NAN)),
            number(get("web_console_sol_echo_p99_ms").unwrap_or(f64::NAN)),
        );
    }
    if let (Some(agents), Some(bytes), Some(execs)) = (
        get("rrmt_agents"),
        get("rrmt_bytes_per_agent"),
        get("rrmt_exec_per_s"),
    ) {
        let _ = writeln!(
            r.md,
            "- **RRMT**: {agents:.0} idle authorized agents held by one rrmt-server: {} bytes of resident memory per agent (connected in {} s); exec round trips through the admin endpoint to random agents: {execs:.0} per second (p50 {} µs, p99 {} µs).",
            number(bytes),
            number(get("rrmt_connect_s").unwrap_or(f64::NAN)),
            number(get("rrmt_exec_p50_us").unwrap_or(f64::NAN)),
            number(get("rrmt_exec_p99_us").unwrap_or(f64::NAN)),
        );
    }
    if let (Some(agents), Some(bytes), Some(same), Some(cross)) = (
        get("cluster_rrmt_agents"),
        get("cluster_rrmt_bytes_per_agent"),
        get("cluster_rrmt_exec_per_s"),
        get("cluster_rrmt_cross_exec_per_s"),
    ) {
        let _ = writeln!(
            r.md,
            "- **RRMT cluster** (two rrmt-servers sharing one PostgreSQL, docs/rrmt-cluster.md): {agents:.0} idle agents, {} bytes of resident memory per agent on the fuller server; exec round trips through one server to random agents it holds: {same:.0} per second, to agents the other server holds (over a server-to-server link): {cross:.0} per second ({}x; the median of five alternating rounds each).",
            number(bytes),
            number(same / cross),
        );
    }
    if let (Some(rrmt), Some(ssh), Some(mux)) = (
        get("vs_ssh_rrmt_exec_per_s"),
        get("vs_ssh_ssh_exec_per_s"),
        get("vs_ssh_mux_exec_per_s"),
    ) {
        let _ = writeln!(
            r.md,
            "- **RRMT exec beside OpenSSH** (`true` on this machine, one after another): through an rrmt-agent {rrmt:.0} per second (p50 {} µs); ssh multiplexed over one connection (ControlMaster) {mux:.0} per second (p50 {} µs, {:.1}×); ssh with a new connection each {ssh:.1} per second (p50 {} µs, {:.0}×). Memory per idle connection: sshd {} bytes per session (proportional set size of its processes), rrmt-server {} bytes per agent.",
            number(get("vs_ssh_rrmt_p50_us").unwrap_or(f64::NAN)),
            number(get("vs_ssh_mux_p50_us").unwrap_or(f64::NAN)),
            rrmt / mux,
            number(get("vs_ssh_ssh_p50_us").unwrap_or(f64::NAN)),
            rrmt / ssh,
            number(get("vs_ssh_sshd_bytes_per_session").unwrap_or(f64::NAN)),
            number(get("rrmt_bytes_per_agent").unwrap_or(f64::NAN)),
        );
    }
    let _ = writeln!(
        r.md,
        "\n## Not measured here yet\n\n- The launchers beside the seed's own launchers (pyws `amtsol.py` / `amtkvm.py`): pyws is not published on PyPI, so no peer runs here."
    );
    std::fs::write(out, &r.md).expect("report written");
    eprintln!("wrote {out} and the charts in {svg_dir}");
}
