//! `digest_demo`: HTTP Digest authentication with oobkit-digest, both sides, on loopback.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use digest_demo::{DemoServer, Settings, fetch};
use oobkit_digest::{Algorithm, Client};

/// HTTP Digest authentication (RFC 7616) with oobkit-digest, both sides, on loopback.
///
/// Without a subcommand: starts a Digest-protected server on a free loopback port, then
/// answers it with the oobkit client, once with the right password and once with a wrong one,
/// and prints every header exchanged.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// User name of the protected resource.
    #[arg(long, short = 'u', default_value = "admin", global = true)]
    user: String,
    /// Password (better from the environment, so that it stays out of `ps` and shell history).
    #[arg(
        long,
        env = "DIGEST_DEMO_PASSWORD",
        default_value = "P@ssw0rd",
        hide_env_values = true,
        hide_default_value = true,
        global = true
    )]
    password: String,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a Digest-protected resource until interrupted (try it with `curl --digest`).
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// Offer only MD5, as an Intel AMT does (default: SHA-256 and MD5).
        #[arg(long)]
        md5_only: bool,
        /// Seconds a nonce is valid before the server answers `stale=true`.
        #[arg(long, default_value_t = 300)]
        nonce_lifetime: u32,
    },
}

fn main() -> ExitCode {
    oobkit_io::init_logging("info");
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Serve {
            listen,
            md5_only,
            nonce_lifetime,
        }) => serve(&cli.user, &cli.password, &listen, md5_only, nonce_lifetime),
        None => demo(&cli.user, &cli.password),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("digest_demo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(
    user: &str,
    password: &str,
    listen: &str,
    md5_only: bool,
    nonce_lifetime: u32,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut settings = Settings::new(user, password);
    settings.nonce_lifetime = nonce_lifetime;
    if md5_only {
        settings.algorithms = vec![Algorithm::Md5];
    }
    let server = DemoServer::bind(listen, settings)
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = server.local_addr()?;
    println!(
        "listening on http://{addr}/ (user {user}); try: curl --digest -u {user} http://{addr}/"
    );
    server.serve()?;
    Ok(())
}

fn demo(user: &str, password: &str) -> Result<(), Box<dyn std::error::Error>> {
    let addr = DemoServer::bind("127.0.0.1:0", Settings::new(user, password))?.spawn()?;
    println!("Digest-protected server on http://{addr}/ (user {user})\n");

    println!("== with the right password");
    let mut client = Client::new(user, password);
    for exchange in fetch(addr, "/", &mut client)? {
        print_exchange(&exchange);
    }

    println!("== with a wrong password");
    let mut client = Client::new(user, format!("{password}-wrong"));
    match fetch(addr, "/", &mut client) {
        Err(e) => println!("refused as it should be: {e}\n"),
        Ok(_) => return Err("the server accepted a wrong password".into()),
    }

    println!(
        "To try it with curl: digest_demo serve, then curl --digest -u {user} http://127.0.0.1:8080/"
    );
    Ok(())
}

fn print_exchange(exchange: &digest_demo::Exchange) {
    match &exchange.authorization {
        Some(a) => println!("> GET / with Authorization: {a}"),
        None => println!("> GET / without credentials"),
    }
    println!("< {}", exchange.status);
    for c in &exchange.challenges {
        println!("< WWW-Authenticate: {c}");
    }
    if exchange.status == 200 {
        print!("< {}", exchange.body);
    }
    println!();
}
