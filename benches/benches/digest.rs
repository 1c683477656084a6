//! oobkit-digest: challenge parse, client answer, server verify (operations per second), each
//! beside the cost of the hashing it cannot avoid, measured in the same run.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use md5::{Digest, Md5};
use oobkit_digest::{Algorithm, Client, DigestChallenge, Request, Secret, Server, ServerConfig};

const AMT_CHALLENGE: &str = r#"Digest realm="Digest:2517B2332AFD88353D5F5FD352697901", nonce="QYePBLMVAAAAAAAAjfXveceOM5bNfu/K",stale="false",qop="auth-int, auth""#;

/// The floor of an MD5 answer or verification: four MD5s over inputs of that size.
fn four_md5(b: &mut criterion::Bencher<'_>) {
    b.iter(|| {
        for _ in 0..4 {
            black_box(Md5::digest(black_box(
                b"admin:Digest:2517B2332AFD88353D5F5FD352697901:P@ssw0rd",
            )));
        }
    })
}

fn challenge_parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("digest/challenge_parse");
    g.throughput(Throughput::Elements(1));
    g.bench_function("baseline_memcpy_header", |b| {
        b.iter(|| black_box(black_box(AMT_CHALLENGE).as_bytes().to_vec()))
    });
    g.bench_function("amt_challenge", |b| {
        b.iter(|| DigestChallenge::select([black_box(AMT_CHALLENGE)]).unwrap())
    });
    g.finish();
}

fn client_answer(c: &mut Criterion) {
    let mut g = c.benchmark_group("digest/client_answer");
    g.throughput(Throughput::Elements(1));
    // An MD5 answer is four MD5 computations over short inputs: the floor.
    g.bench_function("baseline_4_md5", four_md5);
    for alg in [Algorithm::Md5, Algorithm::Sha256] {
        let mut challenge = DigestChallenge::select([AMT_CHALLENGE]).unwrap();
        challenge.algorithm = alg;
        let mut client = Client::new("admin", "P@ssw0rd").prefer_auth_int(false);
        client.use_challenge(challenge);
        g.bench_function(format!("authorize_and_render_{}", alg.name()), |b| {
            b.iter(|| {
                client
                    .authorize("POST", "/wsman", None, "0123456789abcdef0123456789abcdef")
                    .unwrap()
                    .to_header_value()
                    .unwrap()
            })
        });
    }
    g.finish();
}

fn server_verify(c: &mut Criterion) {
    let mut g = c.benchmark_group("digest/server_verify");
    g.throughput(Throughput::Elements(1));
    g.bench_function("baseline_4_md5", four_md5);
    let mut config = ServerConfig::new("Digest:2517B2332AFD88353D5F5FD352697901", [9; 32]);
    config.algorithms = vec![Algorithm::Md5];
    let mut server = Server::new(config);
    let challenges = server.challenges(1000, [1; 8], false).unwrap();
    let mut client = Client::new("admin", "P@ssw0rd");
    client
        .handle_challenge(challenges.iter().map(String::as_str))
        .unwrap();
    let request = Request {
        method: "POST",
        uri: "/wsman",
        body: None,
    };
    g.bench_function("parse_check_verify_MD5", |b| {
        b.iter_batched(
            // Each answer needs a fresh nc, or the replay check refuses it.
            || {
                client
                    .authorize("POST", "/wsman", None, "0123456789abcdef")
                    .unwrap()
                    .to_header_value()
                    .unwrap()
            },
            |header| {
                server
                    .verify(&header, &request, 1001, |_| {
                        Some(("admin", Secret::Password("P@ssw0rd")))
                    })
                    .unwrap()
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, challenge_parse, client_answer, server_verify);
criterion_main!(benches);
