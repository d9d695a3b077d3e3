/**
 * `node loadtest/k6-runner/cli.ts run SCRIPT [-e KEY=VALUE]... [--summary-export FILE]
 *   [--max-duration 10m] [--max-requests N]`: runs a k6 script with Node, prints k6's end-of-test summary and
 * exits as k6 does: 0, 99 when a threshold failed, 104 when the script uses something this runner refuses,
 * 107 when the script's init code throws, 108 when the runner's own bound (time or requests) stopped the run.
 * `__ENV` holds the process environment plus `-e` pairs, as `k6 run` (which includes system env vars).
 */
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseDuration } from './options.ts';
import { isRefusal, K6Unsupported, REFUSED_EXIT } from './refusal.ts';
import { runScript } from './runner.ts';
import { formatSummary, summaryExport, thresholdResults } from './summary.ts';

export const USAGE = 'usage: k6-runner run SCRIPT [-e KEY=VALUE]... [--summary-export FILE] [--max-duration DURATION] [--max-requests N]';

interface Args {
  script: string;
  env: Record<string, string>;
  summaryExport?: string;
  maxDurationMs: number;
  maxRequests: number;
}

function parseArgs(argv: string[]): Args {
  const args = argv[0] === 'run' ? argv.slice(1) : argv;
  const out: Args = { script: '', env: {}, maxDurationMs: 2 * 3_600_000, maxRequests: 2_000_000 };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const [flag, inline] =
      arg.startsWith('--') && arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = () => {
      const v = inline ?? args[++i];
      if (v === undefined) throw new Error(`${flag} needs a value\n${USAGE}`);
      return v;
    };
    switch (flag) {
      case '-e':
      case '--env': {
        const pair = value();
        const eq = pair.indexOf('=');
        if (eq <= 0) throw new Error(`${flag} ${pair}: expected KEY=VALUE`);
        out.env[pair.slice(0, eq)] = pair.slice(eq + 1);
        break;
      }
      case '--summary-export':
        out.summaryExport = value();
        break;
      case '--max-duration':
        out.maxDurationMs = parseDuration(value(), '--max-duration');
        break;
      case '--max-requests':
        out.maxRequests = Number(value());
        if (!Number.isInteger(out.maxRequests) || out.maxRequests < 1)
          throw new Error(`--max-requests: expected a positive integer\n${USAGE}`);
        break;
      default:
        if (flag.startsWith('-')) throw new K6Unsupported(`the k6 run flag ${flag}`);
        if (out.script) throw new Error(`one script only (got ${out.script} and ${flag})\n${USAGE}`);
        out.script = flag;
    }
  }
  if (!out.script) throw new Error(USAGE);
  return out;
}

export async function main(argv: string[]): Promise<number> {
  let args: Args;
  try {
    args = parseArgs(argv);
  } catch (err) {
    console.error(`ERRO ${(err as Error).message}`);
    return isRefusal(err) ? REFUSED_EXIT : 2;
  }
  const env = { ...(process.env as Record<string, string>), ...args.env };
  let result: Awaited<ReturnType<typeof runScript>>;
  try {
    result = await runScript({
      script: pathToFileURL(resolve(args.script)).href,
      env,
      maxDurationMs: args.maxDurationMs,
      maxRequests: args.maxRequests,
      log: (line) => console.error(line),
    });
  } catch (err) {
    const e = err as Error;
    if (isRefusal(e)) {
      console.error(`ERRO refused: ${e.message}`);
      return REFUSED_EXIT;
    }
    console.error(`ERRO ${e.name === 'ScriptError' ? '' : `${e.name}: `}${e.stack && e.name !== 'ScriptError' ? e.stack : e.message}`);
    return 107;
  }
  const input = {
    store: result.store,
    thresholds: result.plan.thresholds,
    trendStats: result.plan.summaryTrendStats,
    elapsedMs: result.elapsedMs,
  };
  const results = thresholdResults(input);
  process.stdout.write(formatSummary(input, results));
  if (args.summaryExport) writeFileSync(args.summaryExport, `${JSON.stringify(summaryExport(input, results), null, 2)}\n`);
  if (result.iterationErrors > 0) console.error(`WARN ${result.iterationErrors} iteration(s) ended with an error`);
  if (result.aborted) {
    console.error(`ERRO the run was stopped: ${result.aborted}`);
    return 108;
  }
  const failed = results.filter((r) => !r.ok);
  if (failed.length > 0) {
    console.error(`ERRO thresholds on metrics '${[...new Set(failed.map((r) => r.metricKey))].join("', '")}' have been crossed`);
    return 99;
  }
  return 0;
}

if (import.meta.main) process.exitCode = await main(process.argv.slice(2));
