//! Random input, and a rough throughput figure.

use super::*;

/// A small deterministic generator (xorshift64*), so the fuzz test needs no
/// dependency and replays the same inputs every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Feeds `data` in random pieces; returns the events and the error
/// condition, checking the stream's memory stays within its limits.
fn fuzz_feed(
    limits: &StreamLimits,
    data: &[u8],
    rng: &mut Rng,
) -> (Vec<StreamEvent>, Option<StreamErrorCondition>) {
    let mut s = XmlStream::new(limits.clone());
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let n = 1 + rng.below(64);
        let end = data.len().min(pos + n);
        let r = s.feed(&data[pos..end], &mut out);
        assert!(s.stack.len() <= limits.max_depth);
        assert!(s.unit_size() <= limits.max_stanza_size + 1);
        if let Err(e) = r {
            return (out, Some(e.condition));
        }
        pos = end;
    }
    let _ = s.eof();
    (out, None)
}

#[test]
fn random_input_never_panics() {
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let alphabet: &[u8] = b"<>/='\"&;!?-[]: \n\tabmsxyz01#\xC3\xA9\xFF";
    let seed = transcript();
    let all_limits = [
        StreamLimits::default(),
        StreamLimits {
            max_stanza_size: 120,
            max_depth: 3,
        },
        StreamLimits {
            max_stanza_size: 1,
            max_depth: 1,
        },
    ];
    for round in 0..15_000 {
        let limits = all_limits[round % all_limits.len()].clone();
        let input: Vec<u8> = match round % 3 {
            // Noise.
            0 => (0..rng.below(300)).map(|_| rng.next() as u8).collect(),
            // XML-ish noise behind a valid header.
            1 => {
                let mut v = C2S_HEADER.as_bytes().to_vec();
                v.extend((0..rng.below(400)).map(|_| alphabet[rng.below(alphabet.len())]));
                v
            }
            // A valid transcript with a few bytes changed, dropped or added.
            _ => {
                let mut v = seed.clone();
                for _ in 0..1 + rng.below(4) {
                    let i = rng.below(v.len());
                    match rng.below(3) {
                        0 => v[i] = alphabet[rng.below(alphabet.len())],
                        1 => {
                            v.remove(i);
                        }
                        _ => v.insert(i, rng.next() as u8),
                    }
                }
                v
            }
        };
        let (events, err) = fuzz_feed(&limits, &input, &mut rng);
        // However the bytes are split, the outcome is the same (but for
        // which of several errors is found first).
        let (whole, r) = parse_with(&limits, &input);
        assert_eq!(events, whole, "round {round}");
        assert_eq!(
            err.is_some(),
            r.is_err(),
            "round {round}: {:?}",
            String::from_utf8_lossy(&input)
        );
    }
}

/// Rough throughput on a 1 KiB message. Run with
/// `cargo test --release -p xmpp-core stream::tests::fuzz::throughput -- --ignored --nocapture`.
#[test]
#[ignore]
fn throughput() {
    let mut message = String::from(
        "<message to='juliet@example.com/balcony' from='romeo@example.net/orchard' type='chat' id='m-1'><body>",
    );
    while message.len() < 1024 - "</body></message>".len() {
        message.push_str("Art thou not Romeo, and a Montague? ");
    }
    message.truncate(1024 - "</body></message>".len());
    message.push_str("</body></message>");
    assert_eq!(message.len(), 1024);
    let batch = message.repeat(64);
    let mut s = XmlStream::new(StreamLimits::default());
    let mut out = Vec::new();
    s.feed(C2S_HEADER.as_bytes(), &mut out).unwrap();
    let start = std::time::Instant::now();
    let mut n = 0usize;
    while start.elapsed() < std::time::Duration::from_secs(3) {
        // 4 KiB reads, as a socket would give them.
        for piece in batch.as_bytes().chunks(4096) {
            out.clear();
            s.feed(piece, &mut out).unwrap();
            n += out.len();
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{n} stanzas of 1 KiB in {secs:.2}s: {:.0} stanzas/s, {:.1} MiB/s",
        n as f64 / secs,
        n as f64 * 1024.0 / secs / (1 << 20) as f64
    );
}
