// Argon2id ceiling of the peer's hashing library (@node-rs/argon2, a fresh arena per hash),
// for comparison with the ceiling that bounds Portcullis (`argon2-rust`, one reused arena per
// thread): verifications/s of one hash made with the given cost, `PEER_ARGON2_THREADS`
// verifications in flight, for `PEER_ARGON2_SECONDS`.
//
//   PEER_ARGON2_M=65536 PEER_ARGON2_T=3 PEER_ARGON2_P=4 PEER_ARGON2_THREADS=1 \
//   PEER_ARGON2_SECONDS=5 node benches/peer/argon2-ceiling.mjs     -> one JSON line on stdout
import { Algorithm, hash, verify } from '@node-rs/argon2';

const int = (name, def) => Number.parseInt(process.env[name] || def, 10);
const opts = {
  memoryCost: int('PEER_ARGON2_M', '65536'),
  timeCost: int('PEER_ARGON2_T', '3'),
  parallelism: int('PEER_ARGON2_P', '4'),
  algorithm: Algorithm.Argon2id,
};
const threads = Math.max(1, int('PEER_ARGON2_THREADS', '1'));
const seconds = Number.parseFloat(process.env.PEER_ARGON2_SECONDS || '5');

const stored = await hash('correct horse battery staple', opts);
const start = performance.now();
const end = start + seconds * 1000;
let done = 0;
let last = start;
await Promise.all(Array.from({ length: threads }, async () => {
  while (performance.now() < end) {
    if (!(await verify(stored, 'correct horse battery staple'))) throw new Error('verify failed');
    done += 1;
    last = performance.now();
  }
}));
const elapsed = (last - start) / 1000;
process.stdout.write(`${JSON.stringify({
  m_kib: opts.memoryCost, t: opts.timeCost, p: opts.parallelism, threads, verifications: done,
  seconds: Math.round(elapsed * 1000) / 1000, hashes_per_s: Math.round((done / elapsed) * 100) / 100,
})}\n`);
