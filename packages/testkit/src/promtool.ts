import { spawn } from 'node:child_process';

/**
 * `promtool check metrics` (Debian's prometheus package) over an exposition `text`: its exit code and what it
 * printed (nothing on success). Prometheus' own linter: naming, suffixes, HELP/TYPE, histogram shape.
 */
export function promtoolCheckMetrics(text: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('promtool', ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c));
    child.stderr.on('data', (c: Buffer) => (output += c));
    child.on('error', (err) => reject(new Error('this test needs promtool (apt-get install prometheus)', { cause: err })));
    child.on('close', (code) => resolve({ code, output }));
    child.stdin.end(text);
  });
}
