// How long an fdatasync of a small append takes in the directory the scenarios put their --db in
// (os.tmpdir()): the floor under every `--fsync always` latency, and so the bound on rows whose
// clients wait for each answer (one stream-mode consumer settles at most 1 / (fsync + round trip)
// messages a second). Printed before and after the scenarios, and kept in the results file.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/**
 * Appends SAMPLES (default 400) 64-byte records to a fresh file, each followed by fdatasync.
 * @returns {{ samples: number, p50Us: number, p90Us: number, p99Us: number }} fdatasync times in µs
 */
export function probeFdatasync(samples = 400, dir = os.tmpdir()) {
  const file = path.join(dir, `mq-fsync-probe-${process.pid}.bin`);
  const fd = fs.openSync(file, 'w');
  const record = Buffer.alloc(64, 0x61);
  const times = [];
  try {
    for (let i = 0; i < samples; i++) {
      fs.writeSync(fd, record);
      const t = process.hrtime.bigint();
      fs.fdatasyncSync(fd);
      times.push(Number(process.hrtime.bigint() - t) / 1000);
    }
  } finally {
    fs.closeSync(fd);
    fs.rmSync(file, { force: true });
  }
  times.sort((a, b) => a - b);
  const at = (q) => Math.round(times[Math.min(times.length - 1, Math.floor(q * times.length))]);
  return { samples, p50Us: at(0.5), p90Us: at(0.9), p99Us: at(0.99) };
}

/** One line for the report. */
export function fsyncText(p) {
  return `fdatasync of a 64-byte append in ${os.tmpdir()}: p50 ${p.p50Us} µs, p90 ${p.p90Us} µs, p99 ${p.p99Us} µs (${p.samples} samples)`;
}
