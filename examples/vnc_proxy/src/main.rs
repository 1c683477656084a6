//! `vnc_proxy`: the JWT-gated VNC websocket proxy for KubeVirt, with the noVNC page.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use oobkit_gate::{Algorithm, Gate, GateConfig, VerifyingKey};
use oobkit_io::{Endpoint, TlsPolicy};
use vnc_proxy::standin::{Console, StandInConfig};
use vnc_proxy::upstream::TokenFile;
use vnc_proxy::{Limits, ProxyConfig, Upstream};

/// A JWT-gated websocket proxy to KubeVirt's VNC subresource, and the noVNC page to use it.
///
/// A web application mints a short-lived token naming the VMs a user may see (LabOrchestrator's
/// format: HS256 with a shared secret, or RS256/ES256/EdDSA with --public-key); the browser
/// opens vnc.html?path=TOKEN/VMI here; the proxy checks the token before the websocket upgrade
/// (401 bad or expired, 403 VMI not allowed, 404 bad path), then relays to
/// {api}/apis/subresources.kubevirt.io/{version}/namespaces/{ns}/virtualmachineinstances/{vmi}/vnc
/// with the service account's token, and cuts the session when the token expires.
///
/// With nothing configured, it runs a demo: a stand-in KubeVirt showing the simulated AMT's
/// colour bars, a random secret, and a printed URL with a token for it.
#[derive(Parser)]
#[command(
    version,
    after_help = "Examples:\n  vnc_proxy                                             # demo, prints a URL to open\n  VNC_PROXY_SECRET=... vnc_proxy --listen 0.0.0.0:8080   # in a pod: service account from /var/run/secrets\n  VNC_PROXY_SECRET=... vnc_proxy --dev --api 127.0.0.1:8001  # through `kubectl proxy`"
)]
struct Cli {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Path prefix: /PREFIX/TOKEN/VMI instead of /TOKEN/VMI.
    #[arg(long)]
    prefix: Option<String>,
    /// File holding the HS256 secret (its bytes as written, trailing newline stripped); or set
    /// VNC_PROXY_SECRET. Never on the command line.
    #[arg(long, value_name = "FILE")]
    secret_file: Option<PathBuf>,
    /// Accept tokens signed with this public key instead: ALG:PEMFILE, ALG one of RS256,
    /// ES256, EdDSA (repeatable). With it and no secret, HS256 is not accepted at all.
    #[arg(long, value_name = "ALG:PEMFILE")]
    public_key: Vec<String>,
    /// Tolerance on token expiry, seconds.
    #[arg(long, default_value_t = 5)]
    leeway: u64,
    /// The Kubernetes API server, HOST:PORT (default: KUBERNETES_SERVICE_HOST and
    /// KUBERNETES_SERVICE_PORT, as in a pod).
    #[arg(long)]
    api: Option<String>,
    /// The subresource API version.
    #[arg(long, default_value = "v1")]
    api_version: String,
    /// The service-account directory (token and ca.crt).
    #[arg(long, default_value = "/var/run/secrets/kubernetes.io/serviceaccount")]
    service_account: PathBuf,
    /// Talk to `kubectl proxy` (plain websocket, no credentials) instead of the API server.
    #[arg(long)]
    dev: bool,
    /// Origins allowed to open sessions besides this proxy's own (repeatable).
    #[arg(long = "allowed-origin", value_name = "ORIGIN")]
    allowed_origins: Vec<String>,
    /// Sessions at once.
    #[arg(long, default_value_t = 256)]
    max_sessions: usize,
    /// Seconds without traffic before a session is closed.
    #[arg(long, default_value_t = 600)]
    idle_timeout: u64,
    /// Largest websocket message, bytes.
    #[arg(long, default_value_t = 4 << 20)]
    max_message: usize,
}

fn read_secret(cli: &Cli) -> Result<Option<Vec<u8>>, String> {
    if let Some(path) = &cli.secret_file {
        let text =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let trimmed = text.strip_suffix(b"\n").unwrap_or(&text);
        let trimmed = trimmed.strip_suffix(b"\r").unwrap_or(trimmed);
        return Ok(Some(trimmed.to_vec()));
    }
    Ok(std::env::var("VNC_PROXY_SECRET")
        .ok()
        .map(String::into_bytes))
}

fn keys(cli: &Cli, secret: Option<Vec<u8>>) -> Result<Vec<VerifyingKey>, String> {
    let mut keys = Vec::new();
    if let Some(secret) = secret {
        keys.push(VerifyingKey::hs256(&secret).map_err(|e| e.to_string())?);
    }
    for spec in &cli.public_key {
        let (alg, file) = spec
            .split_once(':')
            .ok_or_else(|| format!("--public-key {spec}: expected ALG:PEMFILE"))?;
        let algorithm = Algorithm::from_name(alg)
            .filter(|a| *a != Algorithm::Hs256)
            .ok_or_else(|| format!("--public-key: {alg} is not RS256, ES256 or EdDSA"))?;
        let pem = std::fs::read_to_string(file).map_err(|e| format!("cannot read {file}: {e}"))?;
        keys.push(VerifyingKey::public_pem(algorithm, &pem).map_err(|e| format!("{file}: {e}"))?);
    }
    Ok(keys)
}

fn limits(cli: &Cli) -> Limits {
    Limits {
        max_sessions: cli.max_sessions,
        idle: Duration::from_secs(cli.idle_timeout.max(1)),
        max_message: cli.max_message.max(64 * 1024),
        ..Limits::default()
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let secret = read_secret(&cli)?;
    let demo = secret.is_none() && cli.public_key.is_empty() && cli.api.is_none() && !cli.dev;
    let listener = tokio::net::TcpListener::bind(cli.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", cli.listen))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let (keys, upstream) = if demo {
        let secret = oobkit_io::random_hex16();
        let api = vnc_proxy::standin::start(StandInConfig {
            vmis: vec![(
                "demo".into(),
                "demo-vm".into(),
                Console::Pattern {
                    width: 800,
                    height: 600,
                },
            )],
            bearer: None,
            tls: None,
            coalesce: false,
        })
        .await
        .map_err(|e| format!("cannot start the stand-in KubeVirt: {e}"))?;
        let token = vnc_proxy::token_valid_for(
            secret.as_bytes(),
            Duration::from_secs(3600),
            "demo",
            &["demo-vm"],
        );
        let prefix = cli
            .prefix
            .as_deref()
            .map_or(String::new(), |p| format!("{}/", p.trim_matches('/')));
        println!(
            "demo: a stand-in KubeVirt on {api} with VM demo/demo-vm (the simulated AMT's colour bars)"
        );
        println!(
            "open: http://{local}/vnc.html?path={prefix}{token}/demo-vm   (token valid one hour)"
        );
        let upstream = Upstream {
            api: Endpoint::plain("127.0.0.1", api.port()),
            version: cli.api_version.clone(),
            token: None,
        };
        (
            vec![VerifyingKey::hs256(secret.as_bytes()).map_err(|e| e.to_string())?],
            upstream,
        )
    } else {
        let keys = keys(&cli, secret)?;
        if keys.is_empty() {
            return Err("no key: set VNC_PROXY_SECRET, --secret-file or --public-key".into());
        }
        let api = match (
            &cli.api,
            std::env::var("KUBERNETES_SERVICE_HOST"),
            std::env::var("KUBERNETES_SERVICE_PORT"),
        ) {
            (Some(api), ..) => api.clone(),
            (None, Ok(host), Ok(port)) => format!("{host}:{port}"),
            _ => return Err("no API server: --api HOST:PORT, or run in a pod".into()),
        };
        let (host, port) = api
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.trim_matches(['[', ']']), p.parse::<u16>().ok()?)))
            .ok_or_else(|| format!("--api {api}: expected HOST:PORT"))?;
        let mut endpoint = Endpoint::plain(host, port);
        let token = if cli.dev {
            None
        } else {
            // Only the cluster's CA is needed; the Mozilla roots stay in but never sign an
            // in-cluster API server's certificate.
            endpoint.tls = Some(TlsPolicy::Verify {
                ca_file: Some(cli.service_account.join("ca.crt")),
            });
            Some(TokenFile::new(cli.service_account.join("token")))
        };
        (
            keys,
            Upstream {
                api: endpoint,
                version: cli.api_version.clone(),
                token,
            },
        )
    };
    let mut gate = GateConfig::new(keys);
    gate.prefix = cli.prefix.clone().map(|p| p.trim_matches('/').to_owned());
    gate.leeway = Duration::from_secs(cli.leeway);
    println!("listening on http://{local}");
    vnc_proxy::serve(
        listener,
        ProxyConfig {
            gate: Gate::new(gate),
            upstream,
            allowed_origins: cli.allowed_origins.clone(),
            limits: limits(&cli),
        },
    )
    .await;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    oobkit_io::init_logging("info");
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vnc_proxy: {e}");
            ExitCode::FAILURE
        }
    }
}
